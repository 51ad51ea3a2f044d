import { Option, type Command } from '@commander-js/extra-typings';
import type { Context } from '../../core/context.js';

export function registerTargetDiscover(target: Command, ctx: Context): void {
  target
    .command('discover')
    .description(
      'scan Deployments, StatefulSets and DaemonSets that read Secrets (or Vault Agent annotations) and write a MigrationPlan',
    )
    .option('-o, --output-plan <file>', 'write a MigrationPlan to this file ("-" for stdout)')
    .option('-n, --namespace <namespace>', 'scan only this namespace')
    .option(
      '--from <source>',
      'also read where the Secrets come from: sealed-secrets (only workloads reading Secrets a SealedSecret owns, as sealed-secret/<name>), sops (with --path DIR), eso (Secrets External Secrets Operator writes, mapped to the vault paths ESO reads)',
    )
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('--kv-mount <path>', 'KV v2 mount for suggested vault paths', 'secret')
    .option('--name <name>', 'plan name (metadata.name)', 'migration-plan')
    .option('--created-by <who>', 'metadata.createdBy (default: the OS user)')
    .option('--force', 'overwrite an existing plan file')
    .option('--path <dir>', '--from sops: the directory of SOPS-encrypted manifests to match')
    .option(
      '--decrypt-metadata',
      '--from sops: decrypt files whose kind or metadata is encrypted, to match them (only names are kept)',
    )
    .option('--sops-binary <file>', '--from sops: the sops program to run (default: sops on PATH)')
    .addOption(
      new Option(
        '--vault-address <url>',
        'vault address for SecretMapping output (without -o); with --from eso, flags stores reading another vault',
      ),
    )
    .addOption(
      new Option('--vault-role <role>', 'vault role for SecretMapping output (without -o)'),
    )
    .action(async (opts) => {
      // Loaded on use: the Kubernetes client is large and other commands do not need it.
      const { runDiscover } = await import('../../discovery/run.js');
      await runDiscover(opts, ctx);
    });
}
