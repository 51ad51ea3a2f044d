import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { readPlan } from '../../plan/load.js';
import { concurrency, vaultFlags } from '../options.js';

export function registerTargetCleanup(target: Command, ctx: Context): void {
  target
    .command('cleanup')
    .description(
      'delete the native Secrets the plan migrated, once nothing references them and vault holds every value (a dry run unless --yes or --interactive)',
    )
    .requiredOption('--plan <file>', 'MigrationPlan file')
    .option('--yes', 'delete every Secret that passes the checks')
    .option('--interactive', 'ask before deleting each Secret that passes the checks')
    .option('--dry-run', 'list each Secret and its verdict; delete nothing (the default)')
    .option('-n, --namespace <namespace>', 'only Secrets in this namespace')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('--openbao-addr <url>', 'OpenBao/Vault address (default: $BAO_ADDR, $VAULT_ADDR)')
    .option(
      '--token <token>',
      'vault token (default: $BAO_TOKEN, $VAULT_TOKEN; prefer the environment)',
    )
    .option('--ca-cert <file>', 'CA certificate for TLS (default: $BAO_CACERT, $VAULT_CACERT)')
    .option('--tls-skip-verify', 'do not verify the server certificate (insecure)')
    .option('--vault-namespace <ns>', 'OpenBao/Vault namespace (default: $BAO_NAMESPACE)')
    .option(
      '--allow-insecure-vault',
      'allow a plain-http address that is not loopback (the token and values travel in clear)',
    )
    .addOption(
      new Option('--concurrency <n>', 'parallel requests while checking')
        .default(8)
        .argParser(concurrency),
    )
    .action(async (o) => {
      // Loaded on use: the Kubernetes client is large and other commands do not need it.
      const { resolveCleanupMode, runCleanup } = await import('../../cleanup/run.js');
      const mode = resolveCleanupMode(o);
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
      await runCleanup(
        loaded,
        {
          mode,
          namespace: o.namespace,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
          vault: vaultFlags(o),
          concurrency: o.concurrency,
        },
        ctx,
      );
    });
}
