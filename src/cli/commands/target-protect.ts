import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { readPlan } from '../../plan/load.js';
import { isPlainHttp } from '../../contract/annotations.js';
import { checkSignature, withRequireSignature } from './plan-sign.js';
import { MISMATCH_FLAG, MISMATCH_HELP } from '../../cluster/mismatch.js';
import { normalizeMount } from '../../contract/annotations.js';

export function positiveInt(flag: string, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new UserError(`${flag} must be a whole number from 1 to ${max}, not "${value}"`);
    }
    return n;
  };
}

export function registerTargetProtect(target: Command, ctx: Context): void {
  withRequireSignature(target.command('protect'))
    .description(
      'annotate the pod templates of pending workloads in the plan and roll them; resumable',
    )
    .requiredOption('--plan <file>', 'MigrationPlan file')
    .option('--vault-address <url>', 'vault address the pods use (default: $BAO_ADDR, $VAULT_ADDR)')
    .option(
      '--allow-insecure-vault',
      'let pods reach vault over plain http (their token and secrets travel in clear)',
      false,
    )
    .option(
      '--keep-native-refs',
      "keep the pod templates' references to the migrated Secrets (env secretKeyRef, envFrom secretRef) instead of removing them in the same patch",
      false,
    )
    .option(
      '--auth-path <path>',
      "vault's Kubernetes auth mount for this cluster, written on each template (cloudtaser.io/vault-auth-path); default: the webhook's (kubernetes)",
    )
    .option(MISMATCH_FLAG, MISMATCH_HELP, false)
    .option('--interactive', 'prompt for each workload')
    .option('--yes', 'approve every workload (CI mode)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <namespace>', 'only workloads in this namespace')
    .option('--dry-run', 'print the patches without changing anything', false)
    .option(
      '--wait',
      'follow each rollout until every new pod is Ready, a new pod is stuck (crash loop, image, config: exit 1 with its reason) or --timeout passes',
      false,
    )
    .option(
      '--restart-ondelete',
      'with --yes: also restart OnDelete StatefulSets/DaemonSets, deleting one pod at a time and waiting until its replacement is Ready (without it their pods keep the old template until deleted)',
      false,
    )
    .addOption(
      new Option(
        '--timeout <seconds>',
        'rollout wait limit per workload; with OnDelete restarts, per pod',
      )
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
      // The address pods use: even a loopback one would be the pod's own,
      // so there is no safe plain-http case to allow silently.
      if (isPlainHttp(vaultAddress) && !o.allowInsecureVault) {
        throw new UserError(
          `--vault-address "${vaultAddress}" is plain http: pods would send their login token and receive their secrets unencrypted`,
          'use https, or pass --allow-insecure-vault if that is really intended',
        );
      }
      const { resolveMode, runProtect } = await import('../../protect/run.js');
      const mode = resolveMode(o, ctx);
      const authPath =
        o.authPath === undefined ? undefined : normalizeMount(o.authPath, '--auth-path');
      const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
      const kube = { kubeconfig: o.kubeconfig, context: o.context };
      const { checkPlanCluster } = await import('../../cluster/check.js');
      await checkPlanCluster(loaded.plan, o.plan, kube, o.clusterMismatchOk, ctx);
      await runProtect(
        loaded,
        {
          display: o.plan,
          vaultAddress,
          ...(authPath === undefined ? {} : { authPath }),
          allowInsecureVault: o.allowInsecureVault,
          keepNativeRefs: o.keepNativeRefs,
          mode,
          namespace: o.namespace,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
          concurrency: o.concurrency,
          dryRun: o.dryRun,
          wait: o.wait,
          timeoutMs: o.timeout * 1000,
          restartOnDelete: o.restartOndelete,
          // Checked on the plan the run uses: the one read again under its lock.
          checkPlan: (current) => checkSignature(current, o.plan, o.requireSignature, ctx),
        },
        ctx,
      );
    });

  target
    .command('unprotect')
    .description(
      'remove exactly the annotations protect added, put back the Secret references it removed, and set workloads back to pending',
    )
    .requiredOption('--plan <file>', 'MigrationPlan file')
    .option('--interactive', 'prompt for each workload')
    .option('--yes', 'approve every workload (CI mode)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <namespace>', 'only workloads in this namespace')
    .option('--dry-run', 'print what would be removed without changing anything', false)
    .option(
      '--restart-ondelete',
      'with --yes: also restart OnDelete StatefulSets/DaemonSets, deleting one pod at a time and waiting until its replacement is Ready (without it their pods keep the old template until deleted)',
      false,
    )
    .addOption(
      new Option('--timeout <seconds>', 'with OnDelete restarts: wait limit per pod')
        .default(300)
        .argParser(positiveInt('--timeout', 86_400)),
    )
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
          timeoutMs: o.timeout * 1000,
          restartOnDelete: o.restartOndelete,
        },
        ctx,
      );
    });
}
