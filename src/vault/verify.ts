// `source verify-plan`: every mapped vault path exists, its latest version is
// live, and it has every mapped field. Field names come from the KV v2
// `subkeys` endpoint, so no secret value is ever read; servers too old for it
// fall back to reading the data and keeping only its key names.
import { say, type Context } from '../core/context.js';
import { mapLimit } from '../core/concurrency.js';
import type { LoadedPlan } from '../plan/read.js';
import { mappedFields, type WorkloadKind } from '../plan/model.js';
import { VaultError, type VaultClient } from './client.js';
import { mountOf } from './provision.js';

export type PathState =
  | { kind: 'found'; keys: string[] }
  | { kind: 'missing' }
  | { kind: 'deleted'; version: number }
  | { kind: 'destroyed'; version: number }
  | { kind: 'error'; message: string; status: number | undefined };

interface KvMetadata {
  version?: number;
  deletion_time?: string;
  destroyed?: boolean;
}

interface SubkeysBody {
  data?: { subkeys?: Record<string, unknown> | null; metadata?: KvMetadata } | null;
  errors?: string[];
}

interface DataBody {
  data?: { data?: Record<string, unknown> | null; metadata?: KvMetadata } | null;
}

function fromMetadata(meta: KvMetadata | undefined): PathState | undefined {
  if (!meta) return undefined;
  const version = meta.version ?? 0;
  if (meta.destroyed) return { kind: 'destroyed', version };
  if (meta.deletion_time) return { kind: 'deleted', version };
  return undefined;
}

/** Looks at one KV v2 path without reading its values. */
export async function inspectPath(client: VaultClient, vaultPath: string): Promise<PathState> {
  const mount = mountOf(vaultPath);
  const rel = vaultPath.slice(mount.length + '/data/'.length);
  try {
    const res = await client.request<SubkeysBody>('GET', `${mount}/subkeys/${rel}?depth=1`);
    const unsupported =
      res.status === 404 && (res.body?.errors ?? []).some((e) => /unsupported path/i.test(e));
    if (!unsupported) {
      const gone = fromMetadata(res.body?.data?.metadata ?? undefined);
      if (gone) return gone;
      if (res.status === 404) return { kind: 'missing' };
      return { kind: 'found', keys: Object.keys(res.body?.data?.subkeys ?? {}).sort() };
    }
    // Servers before KV v2 subkeys: read the data, keep key names only.
    const data = await client.request<DataBody>('GET', `${mount}/data/${rel}`);
    const gone = fromMetadata(data.body?.data?.metadata ?? undefined);
    if (gone) return gone;
    if (data.status === 404) return { kind: 'missing' };
    return { kind: 'found', keys: Object.keys(data.body?.data?.data ?? {}).sort() };
  } catch (e) {
    // A refusal for one path is a finding about that path; a server that
    // cannot be reached at all (status undefined) is the whole run's error.
    if (e instanceof VaultError && e.status !== undefined) {
      return { kind: 'error', message: e.message, status: e.status };
    }
    throw e;
  }
}

export interface SecretCheck {
  source: string;
  vaultPath: string;
  ready: boolean;
  message: string;
  presentFields: string[];
  missingFields: string[];
  error: boolean;
}

export interface VerifyReport {
  file: string;
  plan: string;
  address: string;
  tenants: {
    name: string;
    namespace: string;
    workloads: { kind: WorkloadKind; name: string; secrets: SecretCheck[] }[];
  }[];
  ready: number;
  total: number;
  needAttention: number;
  errors: number;
}

/** Whether one path's state holds the given fields, as verify-plan says it (cleanup reuses it). */
export function judge(
  fields: readonly string[],
  state: PathState,
): Omit<SecretCheck, 'source' | 'vaultPath'> {
  const base = { presentFields: [] as string[], missingFields: [] as string[], error: false };
  switch (state.kind) {
    case 'missing':
      return { ...base, ready: false, message: 'path not found', missingFields: [...fields] };
    case 'deleted':
      return { ...base, ready: false, message: `latest version (v${state.version}) is deleted` };
    case 'destroyed':
      return { ...base, ready: false, message: `latest version (v${state.version}) is destroyed` };
    case 'error':
      return { ...base, ready: false, error: true, message: `cannot check: ${state.message}` };
    case 'found': {
      if (state.keys.length === 0)
        return { ...base, ready: false, message: 'exists but holds no data' };
      if (fields.length === 0) {
        return { ...base, ready: false, message: 'exists, but the plan maps no fields from it' };
      }
      const have = new Set(state.keys);
      const present = fields.filter((f) => have.has(f));
      const missing = fields.filter((f) => !have.has(f));
      if (missing.length > 0) {
        return {
          ...base,
          presentFields: present,
          missingFields: missing,
          ready: false,
          message: `exists, missing field(s): ${missing.join(', ')}`,
        };
      }
      return {
        ...base,
        presentFields: present,
        ready: true,
        message: `exists, ${present.length} field(s) populated`,
      };
    }
  }
}

/** Checks every mapping in the plan; each distinct path is fetched once, concurrently. */
export async function verifyPlan(
  loaded: LoadedPlan,
  display: string,
  client: VaultClient,
  concurrency: number,
): Promise<VerifyReport> {
  const paths = [
    ...new Set(
      loaded.plan.tenants.flatMap((t) =>
        t.workloads.flatMap((w) => w.secrets.map((s) => s.vaultPath)),
      ),
    ),
  ];
  const states = new Map<string, PathState>();
  await mapLimit(paths, concurrency, async (p) => {
    states.set(p, await inspectPath(client, p));
  });

  const report: VerifyReport = {
    file: display,
    plan: loaded.plan.metadata.name,
    address: client.address,
    tenants: [],
    ready: 0,
    total: 0,
    needAttention: 0,
    errors: 0,
  };
  for (const t of loaded.plan.tenants) {
    const tenant: VerifyReport['tenants'][number] = {
      name: t.name,
      namespace: t.namespace,
      workloads: [],
    };
    for (const w of t.workloads) {
      const secrets = w.secrets.map((s) => {
        const state = states.get(s.vaultPath) ?? { kind: 'missing' as const };
        const check: SecretCheck = {
          source: s.source,
          vaultPath: s.vaultPath,
          ...judge(mappedFields(s), state),
        };
        report.total++;
        if (check.ready) report.ready++;
        else report.needAttention++;
        if (check.error) report.errors++;
        return check;
      });
      tenant.workloads.push({ kind: w.kind, name: w.name, secrets });
    }
    report.tenants.push(tenant);
  }
  return report;
}

/** The guide's text format. */
export function printVerifyReport(r: VerifyReport, ctx: Context): void {
  const out = (line = ''): void => {
    say(ctx.stdout, line);
  };
  out(`Plan Verification: ${r.file}`);
  out('========================================');
  for (const t of r.tenants) {
    out();
    out(`Tenant: ${t.name} (namespace: ${t.namespace})`);
    for (const w of t.workloads) {
      out(`  ${w.name}:`);
      for (const s of w.secrets) out(`    ${s.ready ? '✓' : '✗'} ${s.vaultPath} -- ${s.message}`);
    }
  }
  out();
  out(
    `Result: ${r.ready}/${r.total} secrets ready.${r.needAttention > 0 ? ` ${r.needAttention} need(s) attention.` : ''}`,
  );
}
