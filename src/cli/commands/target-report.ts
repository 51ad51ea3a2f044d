import { Option, type Command } from '@commander-js/extra-typings';
import { isAbsolute, resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { MISMATCH_FLAG, MISMATCH_HELP } from '../../cluster/mismatch.js';
import { readPlan } from '../../plan/load.js';
import type { LoadedPlan } from '../../plan/read.js';
import type { VaultReportOptions } from '../../report/reports.js';
import { normalizeMount } from '../../contract/annotations.js';

const KUBECONFIG_HELP = 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)';
const ADDRESS_HELP = 'OpenBao/Vault address (default: $BAO_ADDR, $VAULT_ADDR)';
const TOKEN_HELP = 'vault token (default: $BAO_TOKEN, $VAULT_TOKEN; prefer the environment)';
const INSECURE_HELP =
  'allow a plain-http address that is not loopback (the token travels in clear)';

interface ReportFlags {
  vaultAddress?: string | undefined;
  token?: string | undefined;
  caCert?: string | undefined;
  tlsSkipVerify?: true | undefined;
  vaultNamespace?: string | undefined;
  allowInsecureVault?: true | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  authPath: string;
}

function reportOptions(o: ReportFlags): VaultReportOptions {
  return {
    address: o.vaultAddress,
    token: o.token,
    caCert: o.caCert,
    skipVerify: o.tlsSkipVerify,
    namespace: o.vaultNamespace,
    allowInsecure: o.allowInsecureVault,
    kube: { kubeconfig: o.kubeconfig, context: o.context },
    kubeNamespace: o.namespace,
    authPath: normalizeMount(o.authPath, '--auth-path'),
    concurrency: 16,
  };
}

const PLAN_CHECK_HELP =
  "refuse (exit 2) unless the current context's cluster is the one this plan was made from";

/**
 * status, validate and audit need no plan; given one, they check they run
 * against its cluster, and status and audit read it too. Returns the plan.
 */
async function checkCluster(
  o: {
    plan?: string | undefined;
    clusterMismatchOk: boolean;
    kubeconfig?: string | undefined;
    context?: string | undefined;
  },
  ctx: Context,
): Promise<LoadedPlan | undefined> {
  if (o.plan === undefined) return undefined;
  const loaded = await readPlan(resolve(ctx.cwd, o.plan), o.plan);
  const { checkPlanCluster } = await import('../../cluster/check.js');
  await checkPlanCluster(
    loaded.plan,
    o.plan,
    { kubeconfig: o.kubeconfig, context: o.context },
    o.clusterMismatchOk,
    ctx,
  );
  return loaded;
}

export function registerTargetReports(target: Command, ctx: Context): void {
  target
    .command('status')
    .description(
      'protection state of every workload, and whether its pods run the injected template',
    )
    .option('-n, --namespace <namespace>', 'only this namespace')
    .option('--plan <file>', "show the plan's status beside the cluster's and flag mismatches")
    .option(MISMATCH_FLAG, MISMATCH_HELP, false)
    .option('--kubeconfig <file>', KUBECONFIG_HELP)
    .option('--context <name>', 'kubeconfig context to use')
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .action(async (o) => {
      const plan = await checkCluster(o, ctx);
      const { runStatus } = await import('../../report/reports.js');
      await runStatus(
        {
          kube: { kubeconfig: o.kubeconfig, context: o.context },
          namespace: o.namespace,
          plan,
          output: o.output,
        },
        ctx,
      );
    });

  target
    .command('validate')
    .description(
      'check every protected workload against vault: role, bindings, policy grants, paths and fields; exits 1 on any finding',
    )
    .option('--vault-address <url>', ADDRESS_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--auth-path <path>', 'Kubernetes auth mount path', 'kubernetes')
    .option('--ca-cert <file>', 'CA certificate for TLS (default: $BAO_CACERT, $VAULT_CACERT)')
    .option('--tls-skip-verify', 'do not verify the server certificate (insecure)')
    .option('--vault-namespace <ns>', 'OpenBao/Vault namespace (default: $BAO_NAMESPACE)')
    .option('--allow-insecure-vault', INSECURE_HELP)
    .option('-n, --namespace <namespace>', 'only this namespace')
    .option('--kubeconfig <file>', KUBECONFIG_HELP)
    .option('--context <name>', 'kubeconfig context to use')
    .option('--plan <file>', PLAN_CHECK_HELP)
    .option(MISMATCH_FLAG, MISMATCH_HELP, false)
    .action(async (o) => {
      await checkCluster(o, ctx);
      const { runValidate } = await import('../../report/reports.js');
      await runValidate(reportOptions(o), ctx);
    });

  target
    .command('audit')
    .description(
      'compliance report: every workload, its secret sources, protection and rollout state, and findings',
    )
    .option('--vault-address <url>', ADDRESS_HELP)
    .option('--token <token>', TOKEN_HELP)
    .option('--auth-path <path>', 'Kubernetes auth mount path', 'kubernetes')
    .option('--ca-cert <file>', 'CA certificate for TLS (default: $BAO_CACERT, $VAULT_CACERT)')
    .option('--tls-skip-verify', 'do not verify the server certificate (insecure)')
    .option('--vault-namespace <ns>', 'OpenBao/Vault namespace (default: $BAO_NAMESPACE)')
    .option('--allow-insecure-vault', INSECURE_HELP)
    .option('-n, --namespace <namespace>', 'only this namespace')
    .option('--kubeconfig <file>', KUBECONFIG_HELP)
    .option('--context <name>', 'kubeconfig context to use')
    .addOption(
      new Option('-o, --output <format>', 'report format')
        .choices(['markdown', 'json', 'html'])
        .default('markdown'),
    )
    .option('--output-file <file>', 'write the report to a file instead of stdout')
    .option('--plan <file>', PLAN_CHECK_HELP)
    .option(MISMATCH_FLAG, MISMATCH_HELP, false)
    .action(async (o) => {
      if (o.outputFile === '') throw new UserError('--output-file needs a path');
      const plan = (await checkCluster(o, ctx))?.plan;
      const { buildAudit } = await import('../../report/reports.js');
      const { renderHtml, renderMarkdown } = await import('../../report/audit-schema.js');
      const report = await buildAudit({ ...reportOptions(o), plan }, ctx);
      const text =
        o.output === 'json'
          ? `${JSON.stringify(report, null, 2)}\n`
          : o.output === 'html'
            ? renderHtml(report)
            : renderMarkdown(report);
      if (o.outputFile) {
        const { writeFileAtomic } = await import('../../core/files.js');
        await writeFileAtomic(
          isAbsolute(o.outputFile) ? o.outputFile : resolve(ctx.cwd, o.outputFile),
          text,
        );
        ctx.stderr.write(
          `Wrote ${o.outputFile}: ${report.summary.workloads} workload(s), ${report.summary.errors} error(s), ${report.summary.warnings} warning(s).\n`,
        );
      } else ctx.stdout.write(text);
    });
}
