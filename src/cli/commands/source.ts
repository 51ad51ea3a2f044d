import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { concurrency, vaultFlags, withVaultOptions } from '../options.js';
import { CheckFailed, ServerError } from '../../core/errors.js';
import { planCache, type PlanCache } from '../../plan/cache.js';
import { readPlan } from '../../plan/load.js';
import { runApplyPlan, vaultClient } from '../../vault/apply.js';
import { printVerifyReport, verifyPlan } from '../../vault/verify.js';
import { checkSignature, withRequireSignature } from './plan-sign.js';

/** Re-runs on an unchanged plan skip its validation (see plan/cache.ts). */
function cacheFor(ctx: Context): PlanCache | undefined {
  return planCache(
    ctx.env,
    ctx.debug
      ? (line) => {
          ctx.stderr.write(`debug: ${line}\n`);
        }
      : undefined,
  );
}

export function registerSourceCommands(source: Command, ctx: Context): void {
  withRequireSignature(
    withVaultOptions(
      source
        .command('apply-plan')
        .description(
          'provision OpenBao/Vault from a plan: KV v2 mount, Kubernetes auth, one read policy and one role per tenant (never secret values)',
        )
        .argument('<plan>', 'MigrationPlan file'),
    ),
  )
    .option('--dry-run', 'print what would change without changing anything', false)
    .option('--auth-path <path>', 'Kubernetes auth mount path', 'kubernetes')
    .option('--kv-mount <path>', 'KV v2 mount path', 'secret')
    .option('-v, --verbose', 'with --dry-run, print each policy (HCL) and role', false)
    .addOption(
      new Option('--concurrency <n>', 'parallel requests').default(16).argParser(concurrency),
    )
    .action(async (file, o) => {
      const loaded = await readPlan(resolve(ctx.cwd, file), file, { cache: cacheFor(ctx) });
      await checkSignature(loaded, file, o.requireSignature, ctx);
      await runApplyPlan(
        loaded,
        {
          ...vaultFlags(o),
          dryRun: o.dryRun,
          authPath: o.authPath,
          kvMount: o.kvMount,
          verbose: o.verbose,
          concurrency: o.concurrency,
        },
        ctx,
      );
    });

  withVaultOptions(
    source
      .command('verify-plan')
      .description(
        'check that every vault path in the plan exists with every mapped field; exits 1 when any is not ready',
      )
      .argument('<plan>', 'MigrationPlan file'),
  )
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['text', 'json'])
        .default('text'),
    )
    .addOption(
      new Option('--concurrency <n>', 'parallel requests').default(16).argParser(concurrency),
    )
    .action(async (file, o) => {
      const loaded = await readPlan(resolve(ctx.cwd, file), file, { cache: cacheFor(ctx) });
      const client = vaultClient(vaultFlags(o), ctx, '--openbao-addr');
      try {
        const report = await verifyPlan(loaded, file, client, o.concurrency);
        if (o.output === 'json') ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        else printVerifyReport(report, ctx);
        if (report.errors > 0) {
          throw new ServerError(
            `${report.errors} of ${report.total} secret(s) could not be checked (the server refused or failed)`,
          );
        }
        if (report.needAttention > 0) {
          throw new CheckFailed(`${report.needAttention} of ${report.total} secret(s) not ready`);
        }
      } finally {
        client.close();
      }
    });
}
