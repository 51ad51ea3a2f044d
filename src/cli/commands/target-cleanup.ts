import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { readPlan } from '../../plan/load.js';
import { concurrency, vaultFlags, withVaultOptions } from '../options.js';

export function registerTargetCleanup(target: Command, ctx: Context): void {
  withVaultOptions(
    target
      .command('cleanup')
      .description(
        'delete the native Secrets the plan migrated, once nothing references them and vault holds every value (a dry run unless --yes or --interactive)',
      )
      .requiredOption('--plan <file>', 'MigrationPlan file'),
  )
    .option('--yes', 'delete every Secret that passes the checks')
    .option('--interactive', 'ask before deleting each Secret that passes the checks')
    .option('--dry-run', 'list each Secret and its verdict; delete nothing (the default)')
    .option('-n, --namespace <namespace>', 'only Secrets in this namespace')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option(
      '--repo <dir>',
      'a git checkout to search for the manifests of the SealedSecrets deleted (sealed-secret/<name> sources)',
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
          repo: o.repo,
        },
        ctx,
      );
    });
}
