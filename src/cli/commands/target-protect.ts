import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { readPlan } from '../../plan/load.js';

function positiveInt(flag: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new UserError(`${flag} must be a whole number from 1 to ${max}, not "${value}"`);
    }
    return n;
  };
}

export function registerTargetProtect(target: Command, ctx: Context): void {
  target
    .command('protect')
    .description(
      'annotate the pod templates of pending workloads in the plan and roll them; resumable',
    )
    .requiredOption('--plan <file>', 'MigrationPlan file')
    .option('--vault-address <url>', 'vault address the pods use (default: $BAO_ADDR, $VAULT_ADDR)')
    .option('--interactive', 'prompt for each workload')
    .option('--yes', 'approve every workload (CI mode)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <namespace>', 'only workloads in this namespace')
    .option('--dry-run', 'print the patches without changing anything', false)
    .option('--wait', 'follow each rollout until it completes or --timeout passes', false)
    .addOption(
      new Option('--timeout <seconds>', 'rollout wait limit per workload')
        .default(300)
        .argParser(positiveInt('--timeout', 86_400)),
    )
    .addOption(
      new Option('--concurrency <n>', 'workloads patched in parallel with --yes')
        .default(10)
        .argParser(positiveInt('--concurrency', 100)),
    )
    .action(async (o) => {
      const vaultAddress = o.vaultAddress ?? ctx.env.BAO_ADDR ?? ctx.env.VAULT_ADDR;
      if (!vaultAddress) {
        throw new UserError('--vault-address is required (the address pods use to reach vault)');
      }
      if (!/^https?:\/\/[^\s,]+$/.test(vaultAddress)) {
        throw new UserError(`--vault-address "${vaultAddress}" must be an http(s) URL`);
      }
      const { resolveMode, runProtect } = await import('../../protect/run.js');
      const mode = resolveMode(o, ctx);
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
      await runProtect(
        loaded,
        {
          display: o.plan,
          vaultAddress,
          mode,
          namespace: o.namespace,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
          concurrency: o.concurrency,
          dryRun: o.dryRun,
          wait: o.wait,
          timeoutMs: o.timeout * 1000,
        },
        ctx,
      );
    });

  target
    .command('unprotect')
    .description('remove exactly the annotations protect added and set workloads back to pending')
    .requiredOption('--plan <file>', 'MigrationPlan file')
    .option('--interactive', 'prompt for each workload')
    .option('--yes', 'approve every workload (CI mode)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <namespace>', 'only workloads in this namespace')
    .option('--dry-run', 'print what would be removed without changing anything', false)
    .addOption(
      new Option('--concurrency <n>', 'workloads patched in parallel with --yes')
        .default(10)
        .argParser(positiveInt('--concurrency', 100)),
    )
    .action(async (o) => {
      const { resolveMode, runUnprotect } = await import('../../protect/run.js');
      const mode = resolveMode(o, ctx);
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
      await runUnprotect(
        loaded,
        {
          display: o.plan,
          mode,
          namespace: o.namespace,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
          concurrency: o.concurrency,
          dryRun: o.dryRun,
          wait: false,
          timeoutMs: 0,
        },
        ctx,
      );
    });
}
