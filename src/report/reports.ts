// `target status`, `target validate` and `target audit`. All read-only.
import { rfc3339, say, type Context } from '../core/context.js';
import { allSettledOrThrow } from '../core/concurrency.js';
import { CheckFailed } from '../core/errors.js';
import { loadKubeFor, type KubeOptions } from '../kube/config.js';
import type { LoadedPlan } from '../plan/read.js';
import type { MigrationPlan } from '../plan/schema.js';
import { vaultClient } from '../vault/apply.js';
import type { VaultFlags } from '../vault/client.js';
import { auditReport, type AuditReport } from './audit-schema.js';
import {
  auditFindings,
  migratedValueFindings,
  migratedValueSecrets,
  subjectOf,
  validateWorkload,
  type Finding,
} from './findings.js';
import { readInventory, readSecretKeys, type Inventory, type WorkloadFacts } from './inventory.js';
import { readVaultFacts, type VaultFacts } from './vault-facts.js';

export interface StatusRow {
  kind: string;
  namespace: string;
  name: string;
  state: string;
  problems: string[];
  pods: string;
  rollout: string;
  plan?: string | undefined;
  mismatch?: string | undefined;
  /** Native Secrets a protected (or partly protected) template still references. */
  nativeSecrets?: string[] | undefined;
}

/** The native Secrets a workload under protection still reads: their values stay in etcd. */
function lingeringSecrets(w: WorkloadFacts): string[] {
  if (w.protection.state !== 'protected' && w.protection.state !== 'partial') return [];
  return w.sources
    .filter((s) => s.startsWith('k8s-secret/'))
    .map((s) => s.slice('k8s-secret/'.length));
}

/** Plan status vs what the cluster shows; undefined when they agree. */
function planMismatch(planStatus: string | undefined, w: WorkloadFacts): string | undefined {
  if (planStatus === undefined) return undefined;
  const protectedNow = w.protection.state === 'protected';
  if (planStatus === 'migrated' && !protectedNow)
    return `plan says migrated, cluster shows ${w.protection.state}`;
  if (
    planStatus !== 'migrated' &&
    w.protection.state !== 'unprotected' &&
    w.protection.state !== 'not-applicable'
  ) {
    return `plan says ${planStatus}, cluster shows ${w.protection.state}`;
  }
  return undefined;
}

export function statusRows(inv: Inventory, plan?: LoadedPlan): StatusRow[] {
  const planStatus = new Map<string, string>();
  for (const t of plan?.plan.tenants ?? []) {
    for (const w of t.workloads) planStatus.set(`${t.namespace}/${w.kind}/${w.name}`, w.status);
  }
  return inv.workloads.map((w) => {
    const ps = plan ? planStatus.get(`${w.namespace}/${w.kind}/${w.name}`) : undefined;
    const lingering = lingeringSecrets(w);
    return {
      kind: w.kind,
      namespace: w.namespace,
      name: w.name,
      state: w.protection.state,
      problems: w.protection.problems,
      pods:
        w.pods.total === 0
          ? '-'
          : `${w.pods.injected}/${w.pods.total} injected` +
            (w.pods.ready < w.pods.total ? `, ${w.pods.total - w.pods.ready} not Ready` : ''),
      rollout:
        w.protection.state === 'protected' || w.protection.state === 'partial' ? w.rollout : '-',
      ...(plan ? { plan: ps ?? '-', mismatch: planMismatch(ps, w) } : {}),
      ...(lingering.length > 0 ? { nativeSecrets: lingering } : {}),
    };
  });
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

export interface StatusOptions {
  kube: KubeOptions;
  namespace?: string | undefined;
  plan?: LoadedPlan | undefined;
  output: 'table' | 'json';
}

export async function runStatus(o: StatusOptions, ctx: Context): Promise<void> {
  const inv = await readInventory(loadKubeFor(o.kube, ctx), o.namespace);
  const rows = statusRows(inv, o.plan);
  if (o.output === 'json') {
    ctx.stdout.write(`${JSON.stringify({ cluster: inv.server, workloads: rows }, null, 2)}\n`);
    return;
  }
  const header = [
    'NAMESPACE',
    'KIND',
    'NAME',
    'STATE',
    'PODS',
    'ROLLOUT',
    ...(o.plan ? ['PLAN'] : []),
  ];
  const body = rows.map((r) => [
    r.namespace,
    r.kind,
    r.name,
    r.state,
    r.pods,
    r.rollout,
    ...(o.plan
      ? [r.mismatch ? `${r.plan ?? '-'} (MISMATCH: ${r.mismatch})` : (r.plan ?? '-')]
      : []),
  ]);
  for (const line of table([header, ...body])) say(ctx.stdout, line);
  for (const r of rows.filter((x) => x.problems.length > 0)) {
    say(ctx.stdout, `  ${r.kind} ${r.namespace}/${r.name}: ${r.problems.join('; ')}`);
  }
  const count = (s: string): number => rows.filter((r) => r.state === s).length;
  say(ctx.stdout);
  say(
    ctx.stdout,
    `${rows.length} workload(s): ${count('protected')} protected, ${count('partial')} partial, ${count('unprotected')} unprotected, ${count('not-applicable')} not applicable.`,
  );
  const lingering = rows.filter((r) => r.nativeSecrets);
  if (lingering.length > 0) {
    say(
      ctx.stdout,
      `${lingering.length} protected workload(s) still reference native Secrets (their values stay in etcd):`,
    );
    for (const r of lingering) {
      say(
        ctx.stdout,
        `  ${r.kind} ${r.namespace}/${r.name}: ${(r.nativeSecrets ?? []).join(', ')}`,
      );
    }
  }
}

export interface VaultReportOptions extends VaultFlags {
  kube: KubeOptions;
  /** audit --plan: lets the Secrets the plan's entries came from be found by name and key. */
  plan?: MigrationPlan | undefined;
  /** Kubernetes namespace filter (VaultFlags.namespace is the vault namespace). */
  kubeNamespace?: string | undefined;
  authPath: string;
  concurrency: number;
}

async function gather(
  o: VaultReportOptions,
  ctx: Context,
): Promise<{ inv: Inventory; facts: VaultFacts; address: string }> {
  const client = vaultClient(o, ctx, '--vault-address');
  try {
    const inv = await readInventory(loadKubeFor(o.kube, ctx), o.kubeNamespace);
    const relevant = inv.workloads.filter(
      (w) => w.protection.state === 'protected' || w.protection.state === 'partial',
    );
    const facts = await readVaultFacts(
      client,
      o.authPath,
      relevant.flatMap((w) => (w.protection.role ? [w.protection.role] : [])),
      relevant.flatMap((w) => w.protection.paths),
      o.concurrency,
    );
    return { inv, facts, address: client.address };
  } finally {
    client.close();
  }
}

export async function runValidate(o: VaultReportOptions, ctx: Context): Promise<void> {
  const { inv, facts, address } = await gather(o, ctx);
  const checked = inv.workloads.filter(
    (w) => w.protection.state === 'protected' || w.protection.state === 'partial',
  );
  say(
    ctx.stdout,
    `Validating ${checked.length} protected workload(s) against ${address} (auth/${o.authPath})`,
  );
  let bad = 0;
  let findings = 0;
  for (const w of checked) {
    const f = validateWorkload(w, facts);
    if (f.length === 0) {
      const fields = w.protection.envMap.length;
      say(
        ctx.stdout,
        `  ✓ ${subjectOf(w)}: role ${w.protection.role ?? '?'}, ${w.protection.paths.length} path(s), ${fields} field(s)`,
      );
    } else {
      bad++;
      findings += f.length;
      for (const x of f) say(ctx.stdout, `  ✗ ${subjectOf(w)}: ${x.message}`);
    }
  }
  say(ctx.stdout);
  say(
    ctx.stdout,
    `Result: ${checked.length - bad}/${checked.length} workloads valid.${findings > 0 ? ` ${findings} finding(s).` : ''}`,
  );
  if (bad > 0) throw new CheckFailed(`${bad} protected workload(s) would not get their secrets`);
}

export async function buildAudit(o: VaultReportOptions, ctx: Context): Promise<AuditReport> {
  const [{ inv, facts, address }, secrets] = await allSettledOrThrow([
    gather(o, ctx),
    readSecretKeys(loadKubeFor(o.kube, ctx), o.kubeNamespace),
  ]);
  const remaining = secrets ? migratedValueSecrets(inv, secrets, o.plan) : undefined;
  const findings: Finding[] = [
    ...auditFindings(inv, facts),
    ...migratedValueFindings(remaining ?? []),
  ];
  return auditReport(inv, findings, {
    generatedAt: rfc3339(ctx.now()),
    vaultAddress: address,
    authPath: o.authPath,
    nativeSecrets: remaining ? remaining.length : null,
  });
}
