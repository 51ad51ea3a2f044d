import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { concurrency, vaultFlags, withVaultOptions } from '../options.js';
import { readPlan } from '../../plan/load.js';
import { checkSignature, withRequireSignature } from './plan-sign.js';

export function registerTargetImport(target: Command, ctx: Context): void {
  withRequireSignature(
    withVaultOptions(
      target
        .command('import')
        .description(
          "write the plan's vault paths from where the values are today (KV v2 check-and-set; values are never printed), then verify the plan",
        )
        .requiredOption('--plan <file>', 'MigrationPlan file'),
    ),
  )
    .requiredOption(
      '--from <source>',
      "where the values are: kubernetes (the Secrets the plan names, in the current kubeconfig context), sealed-secrets (the Secrets the Sealed Secrets controller unsealed, or with --sealing-key the SealedSecrets themselves), sops (the plan's sops/<file>#<doc> sources, decrypted with your sops keys), aws, gcp or azure (the cloud secret manager)",
    )
    .option(
      '--sealing-key <file>',
      "with --from sealed-secrets: unseal the SealedSecrets offline with the controller's private key(s) (PEM, or its key Secrets as YAML)",
    )
    .option(
      '--repo <dir>',
      'with --sealing-key: read the SealedSecrets from the manifests in this git checkout instead of the cluster',
    )
    .option(
      '--path <dir>',
      '--from sops: the directory discover scanned (default: the current one)',
    )
    .option('--sops-binary <file>', '--from sops: the sops program to run (default: sops on PATH)')
    .option('--overwrite', 'write a new version of paths that already have a value', false)
    .option(
      '--merge',
      'add missing fields to a path that has some (with --overwrite: keep fields the plan does not map)',
      false,
    )
    .option('--dry-run', 'list path, field names and action; write nothing', false)
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option(
      '--name-template <template>',
      'aws/gcp/azure: the provider secret of a plan Secret, from {namespace} and {secret} (default aws {namespace}/{secret}, gcp and azure {namespace}-{secret})',
    )
    .option(
      '--name-map <file>',
      'aws/gcp/azure: YAML/JSON mapping of plan vault paths to provider secret names (paths it lists ignore the template)',
    )
    .option(
      '--string-field <field>',
      'aws/gcp/azure: the vault field a provider secret that is a plain string (not a JSON object) fills',
    )
    .option(
      '--endpoint <url>',
      'aws/gcp: the provider endpoint (private endpoint); azure: the vault URL (https://NAME.vault.azure.net)',
    )
    .option('--region <region>', 'aws: region (default: $AWS_REGION, then the AWS profile)')
    .option('--project <id>', 'gcp: project (default: $GOOGLE_CLOUD_PROJECT, then the credentials)')
    .addOption(
      new Option('--concurrency <n>', 'parallel requests').default(16).argParser(concurrency),
    )
    .action(async (o) => {
      // Loaded on use: the Kubernetes client is large and other commands do not need it.
      const { checkSource, runImport } = await import('../../import/run.js');
      const source = {
        kubeconfig: o.kubeconfig,
        context: o.context,
        nameTemplate: o.nameTemplate,
        nameMap: o.nameMap,
        stringField: o.stringField,
        endpoint: o.endpoint,
        region: o.region,
        project: o.project,
        sealingKey: o.sealingKey,
        repo: o.repo,
        sops:
          o.from === 'sops' ? { path: o.path ?? '.', binary: o.sopsBinary ?? 'sops' } : undefined,
      };
      checkSource(o.from, source);
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
      await checkSignature(loaded, o.plan, o.requireSignature, ctx);
      await runImport(
        loaded,
        o.plan,
        {
          from: o.from,
          overwrite: o.overwrite,
          merge: o.merge,
          dryRun: o.dryRun,
          concurrency: o.concurrency,
          source,
          vault: vaultFlags(o),
        },
        ctx,
      );
    });
}
