// The audit report: one versioned schema (zod → TypeScript types and the
// published JSON Schema) and three renderings of it: JSON, Markdown, HTML.
import { z } from 'zod';
import type { Finding } from './findings.js';
import type { Inventory } from './inventory.js';

export const AUDIT_API_VERSION = 'cloudtaser.io/audit/v1';

const FindingSchema = z.object({
  severity: z.enum(['error', 'warning']),
  code: z
    .string()
    .describe('stable machine-readable finding type, e.g. "native-secret-referenced"'),
  subject: z.string().describe('"Kind namespace/name" of a workload, or "role <name>"'),
  message: z.string(),
});

export const AuditReportSchema = z
  .object({
    apiVersion: z.literal(AUDIT_API_VERSION),
    generatedAt: z.string().describe('RFC 3339 time the report was made'),
    cluster: z.object({
      server: z.string().describe('Kubernetes API server URL'),
      kubeSystemUid: z
        .string()
        .nullable()
        .describe('UID of the kube-system namespace: identifies the cluster'),
    }),
    vault: z.object({ address: z.string(), authPath: z.string() }),
    summary: z.object({
      workloads: z.number().int(),
      protected: z.number().int(),
      partial: z.number().int(),
      unprotected: z.number().int(),
      notApplicable: z.number().int(),
      rolledOut: z
        .number()
        .int()
        .describe('protected workloads whose every pod has cloudtaser-init'),
      nativeSecretsWithMigratedValues: z
        .number()
        .int()
        .nullable()
        .describe(
          'native Secrets still holding values protected workloads read from vault; null when Secrets could not be listed',
        ),
      errors: z.number().int(),
      warnings: z.number().int(),
    }),
    workloads: z.array(
      z.object({
        kind: z.enum(['Deployment', 'StatefulSet', 'DaemonSet']),
        namespace: z.string(),
        name: z.string(),
        serviceAccount: z.string(),
        secretSources: z
          .array(z.string())
          .describe('k8s-secret/<name> and vault-agent/<file> still referenced'),
        protection: z.enum(['protected', 'partial', 'unprotected', 'not-applicable']),
        vaultRole: z.string().nullable(),
        vaultPaths: z.array(z.string()),
        rollout: z
          .enum(['rolled-out', 'not-ready', 'old-template', 'no-pods', 'not-applicable'])
          .describe(
            'whether live pods run the injected template and are Ready; not-applicable when unprotected',
          ),
        pods: z.object({
          total: z.number().int(),
          injected: z.number().int(),
          ready: z.number().int(),
        }),
      }),
    ),
    findings: z.array(FindingSchema),
  })
  .describe('cloudtaser compliance audit report');

export type AuditReport = z.infer<typeof AuditReportSchema>;

export function auditJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(AuditReportSchema),
    $id: 'https://cloudtaser.io/schemas/audit-report-v1.json',
    title: 'cloudtaser audit report v1',
  };
}

export function auditReport(
  inv: Inventory,
  findings: Finding[],
  meta: {
    generatedAt: string;
    vaultAddress: string;
    authPath: string;
    /** Native Secrets still holding migrated values; null when Secrets could not be listed. */
    nativeSecrets?: number | null;
  },
): AuditReport {
  const count = (s: string): number => inv.workloads.filter((w) => w.protection.state === s).length;
  return {
    apiVersion: AUDIT_API_VERSION,
    generatedAt: meta.generatedAt,
    cluster: { server: inv.server, kubeSystemUid: inv.clusterUid ?? null },
    vault: { address: meta.vaultAddress, authPath: meta.authPath },
    summary: {
      workloads: inv.workloads.length,
      protected: count('protected'),
      partial: count('partial'),
      unprotected: count('unprotected'),
      notApplicable: count('not-applicable'),
      rolledOut: inv.workloads.filter(
        (w) => w.protection.state === 'protected' && w.rollout === 'rolled-out',
      ).length,
      nativeSecretsWithMigratedValues: meta.nativeSecrets ?? null,
      errors: findings.filter((f) => f.severity === 'error').length,
      warnings: findings.filter((f) => f.severity === 'warning').length,
    },
    workloads: inv.workloads.map((w) => ({
      kind: w.kind,
      namespace: w.namespace,
      name: w.name,
      serviceAccount: w.serviceAccount,
      secretSources: w.sources,
      protection: w.protection.state,
      vaultRole: w.protection.role ?? null,
      vaultPaths: w.protection.paths,
      rollout:
        w.protection.state === 'protected' || w.protection.state === 'partial'
          ? w.rollout
          : 'not-applicable',
      pods: w.pods,
    })),
    findings,
  };
}

const nativeText = (n: number | null): string =>
  n === null ? 'unknown (Secrets could not be listed)' : String(n);

const mdCell = (s: string): string => s.replace(/\|/g, '\\|');

export function renderMarkdown(r: AuditReport): string {
  const s = r.summary;
  const lines = [
    '# cloudtaser audit report',
    '',
    `- Generated: ${r.generatedAt}`,
    `- Cluster: ${r.cluster.server} (kube-system UID ${r.cluster.kubeSystemUid ?? 'unknown'})`,
    `- Vault: ${r.vault.address} (auth/${r.vault.authPath})`,
    '',
    '## Summary',
    '',
    '| workloads | protected | rolled out | partial | unprotected | not applicable | errors | warnings |',
    '|---|---|---|---|---|---|---|---|',
    `| ${s.workloads} | ${s.protected} | ${s.rolledOut} | ${s.partial} | ${s.unprotected} | ${s.notApplicable} | ${s.errors} | ${s.warnings} |`,
    '',
    `Native Secrets still holding migrated values: ${nativeText(s.nativeSecretsWithMigratedValues)}`,
    '',
    '## Findings',
    '',
  ];
  if (r.findings.length === 0) lines.push('None.');
  else {
    lines.push('| severity | subject | finding |', '|---|---|---|');
    for (const f of r.findings)
      lines.push(`| ${f.severity} | ${mdCell(f.subject)} | ${mdCell(f.message)} |`);
  }
  lines.push(
    '',
    '## Workloads',
    '',
    '| workload | protection | rollout | pods | role | vault paths | secret sources |',
    '|---|---|---|---|---|---|---|',
  );
  for (const w of r.workloads) {
    lines.push(
      `| ${w.kind} ${w.namespace}/${w.name} | ${w.protection} | ${w.rollout} | ${w.pods.injected}/${w.pods.total} | ${w.vaultRole ?? '-'} | ${mdCell(w.vaultPaths.join(', ') || '-')} | ${mdCell(w.secretSources.join(', ') || '-')} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A single self-contained HTML file: inline CSS, no scripts, no external requests. */
export function renderHtml(r: AuditReport): string {
  const s = r.summary;
  const card = (label: string, value: number, tone = ''): string =>
    `<div class="card ${tone}"><div class="n">${value}</div><div class="l">${esc(label)}</div></div>`;
  const findings =
    r.findings.length === 0
      ? '<p class="ok">No findings.</p>'
      : `<table><thead><tr><th>Severity</th><th>Subject</th><th>Finding</th></tr></thead><tbody>${r.findings
          .map(
            (f) =>
              `<tr class="${f.severity}"><td><span class="badge ${f.severity}">${f.severity}</span></td><td>${esc(f.subject)}</td><td>${esc(f.message)}</td></tr>`,
          )
          .join('')}</tbody></table>`;
  const workloads = r.workloads
    .map(
      (w) =>
        `<tr><td>${esc(`${w.kind} ${w.namespace}/${w.name}`)}</td><td><span class="badge ${w.protection}">${w.protection}</span></td><td>${w.rollout}</td><td>${w.pods.injected}/${w.pods.total}</td><td>${esc(w.vaultRole ?? '-')}</td><td>${w.vaultPaths.map(esc).join('<br>') || '-'}</td><td>${w.secretSources.map(esc).join('<br>') || '-'}</td></tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cloudtaser audit ${esc(r.generatedAt)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1d2433}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:2rem 0 .6rem;border-bottom:1px solid #dde2ea;padding-bottom:.3rem}
.meta{color:#5a6478}.meta code{background:#f1f3f7;padding:0 .3rem;border-radius:3px}
.cards{display:flex;flex-wrap:wrap;gap:.7rem;margin-top:1rem}.card{border:1px solid #dde2ea;border-radius:8px;padding:.6rem 1rem;min-width:7.5rem}
.card .n{font-size:1.5rem;font-weight:600}.card .l{color:#5a6478;font-size:.85rem}.card.bad .n{color:#b42318}.card.warn .n{color:#b54708}.card.good .n{color:#067647}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .55rem;border-bottom:1px solid #eef0f4;vertical-align:top}th{background:#f7f8fa;font-weight:600}
.badge{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;background:#eef0f4}
.badge.error,.badge.unprotected{background:#fee4e2;color:#b42318}.badge.warning,.badge.partial{background:#fef0c7;color:#b54708}.badge.protected{background:#dcfae6;color:#067647}
.ok{color:#067647}
</style></head><body>
<h1>cloudtaser audit report</h1>
<div class="meta">Generated <code>${esc(r.generatedAt)}</code> · cluster <code>${esc(r.cluster.server)}</code> (kube-system UID <code>${esc(r.cluster.kubeSystemUid ?? 'unknown')}</code>) · vault <code>${esc(r.vault.address)}</code> (auth/${esc(r.vault.authPath)})</div>
<div class="cards">${card('workloads', s.workloads)}${card('protected', s.protected, 'good')}${card('rolled out', s.rolledOut, 'good')}${card('partial', s.partial, s.partial ? 'warn' : '')}${card('unprotected', s.unprotected, s.unprotected ? 'bad' : '')}${card('not applicable', s.notApplicable)}${s.nativeSecretsWithMigratedValues === null ? '' : card('native Secrets holding migrated values', s.nativeSecretsWithMigratedValues, s.nativeSecretsWithMigratedValues ? 'warn' : 'good')}${card('errors', s.errors, s.errors ? 'bad' : '')}${card('warnings', s.warnings, s.warnings ? 'warn' : '')}</div>
<h2>Findings</h2>${findings}
<h2>Workloads</h2>
<table><thead><tr><th>Workload</th><th>Protection</th><th>Rollout</th><th>Pods</th><th>Role</th><th>Vault paths</th><th>Secret sources</th></tr></thead><tbody>${workloads}</tbody></table>
<p class="meta">Report format ${esc(r.apiVersion)}. No secret values are read or shown.</p>
</body></html>
`;
}
