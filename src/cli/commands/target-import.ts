import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { concurrency, vaultFlags, withVaultOptions } from '../options.js';
import { readPlan } from '../../plan/load.js';

export function registerTargetImport(target: Command, ctx: Context): void {
  withVaultOptions(
    target
      .command('import')
      .description(
        "write the plan's vault paths from where the values are today (KV v2 check-and-set; values are never printed), then verify the plan",
      )
      .requiredOption('--plan <file>', 'MigrationPlan file'),
  )
    .requiredOption(
      '--from <source>',
      'where the values are: kubernetes (the Secrets the plan names, in the current kubeconfig context), aws, gcp or azure (the cloud secret manager)',
    )
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
      };
      checkSource(o.from, source);
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
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
