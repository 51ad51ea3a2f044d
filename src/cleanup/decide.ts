// `target cleanup`, the pure part: which native Secrets the plan migrated,
// and for each one whether it may be deleted. Nothing here does I/O or sees
// a value: the runner compares values in memory and passes only the outcome
// (equal, differs, not text) per key.
import type { MigrationPlan } from '../plan/schema.js';
import {
  mappedFields,
  nativeSecretOf,
  type WorkloadKind,
  type WorkloadStatus,
} from '../plan/model.js';
import { judge, type PathState } from '../vault/verify.js';
import { parseSopsSource } from '../sources/sops.js';
import type { Referrer } from './references.js';

/** A native Secret the plan says was migrated, and where its keys went. */
export interface PlannedSecret {
  namespace: string;
  name: string;
  /** Secret key (= vault field: discover and import map key k to field k) → vault paths holding it. */
  fields: Map<string, string[]>;
  /** The plan's workloads that read it. */
  workloads: { kind: WorkloadKind; name: string; status: WorkloadStatus }[];
  /** The plan reads it as `sealed-secret/<name>`: its SealedSecret is deleted first. */
  sealed?: boolean;
  /**
   * The plan reads it as `sops/<file>#<doc>`: the SOPS manifests (file
   * relative to the directory discover scanned, document index) that deploy
   * it, which must leave git too.
   */
  sops?: { file: string; index: number }[];
  /** Secret key → vault field, where they differ (an ExternalSecret's `secretKeys`). */
  vaultFields: Map<string, string>;
  /**
   * The ExternalSecrets (`eso/<name>` sources) that write this Secret: each
   * is deleted before the Secret, or its controller would write it again.
   */
  externalSecrets: string[];
}

/** The vault field a Secret key is compared with. */
export const fieldOfKey = (p: PlannedSecret, key: string): string => p.vaultFields.get(key) ?? key;

/** The live Secret, without its values. */
export interface SecretFacts {
  uid: string;
  resourceVersion: string;
  type: string;
  keys: string[];
  owners: { kind: string; name: string; controller?: boolean | undefined }[];
}

/** One key of the Secret against one vault path's field, compared in memory. */
export type Comparison = 'equal' | 'differs' | 'not-text';

export const comparisonKey = (vaultPath: string, key: string): string => `${vaultPath}\u0000${key}`;

export type Verdict =
  | { action: 'gone' }
  | { action: 'delete'; summary: string }
  | {
      action: 'refuse';
      reasons: string[];
      /** A check could not be made (vault refused a read): a server problem, not a finding. */
      error: boolean;
    };

/** Types Kubernetes manages itself: never ours to delete, whatever the plan says. */
const NEVER_DELETED: Record<string, string> = {
  'kubernetes.io/service-account-token':
    'type kubernetes.io/service-account-token: Kubernetes issues and revokes it with its ServiceAccount; never deleted',
};

const PULL_SECRET_TYPES = new Set(['kubernetes.io/dockerconfigjson', 'kubernetes.io/dockercfg']);

/** Owners whose controllers write the Secret from elsewhere and put it back when it is deleted. */
const RECREATING_OWNERS = new Set(['ExternalSecret', 'SealedSecret']);

const MAX_REFERRERS = 5;

/**
 * Every native Secret the plan migrates — `k8s-secret/<name>` and
 * `sealed-secret/<name>` sources, `sops/<file>#<doc>` sources with their
 * `secret`, and the Secrets `eso/<externalsecret>` sources write — (in
 * `namespace` only, when given), once per namespace and name, with the union
 * of the fields every workload maps from it. Sorted by namespace, then name.
 */
export function plannedSecrets(plan: MigrationPlan, namespace?: string): PlannedSecret[] {
  const out = new Map<string, PlannedSecret>();
  for (const t of plan.tenants) {
    if (namespace !== undefined && t.namespace !== namespace) continue;
    for (const w of t.workloads) {
      for (const s of w.secrets) {
        const native = nativeSecretOf(s);
        if (native === undefined) continue;
        const name = native.name;
        const id = `${t.namespace}/${name}`;
        let p = out.get(id);
        if (!p) {
          p = {
            namespace: t.namespace,
            name,
            fields: new Map(),
            workloads: [],
            vaultFields: new Map(),
            externalSecrets: [],
          };
          out.set(id, p);
        }
        if (s.source.startsWith('sealed-secret/')) p.sealed = true;
        const doc = parseSopsSource(s.source);
        if (doc && !p.sops?.some((d) => d.file === doc.file && d.index === doc.index)) {
          p.sops = [...(p.sops ?? []), doc];
        }
        const es = native.viaExternalSecret;
        if (es !== undefined && !p.externalSecrets.includes(es)) p.externalSecrets.push(es);
        if (!p.workloads.some((x) => x.kind === w.kind && x.name === w.name)) {
          p.workloads.push({ kind: w.kind, name: w.name, status: w.status });
        }
        // Fields served as files count as much as those served as env vars.
        // Keyed by the Secret's key, which names the vault field except
        // where an ExternalSecret renamed it.
        for (const field of mappedFields(s)) {
          const key = native.keyOf(field);
          const paths = p.fields.get(key) ?? [];
          if (!paths.includes(s.vaultPath)) paths.push(s.vaultPath);
          p.fields.set(key, paths);
          if (key !== field) p.vaultFields.set(key, field);
        }
      }
    }
  }
  return [...out.values()].sort((a, b) =>
    a.namespace === b.namespace
      ? a.name < b.name
        ? -1
        : a.name > b.name
          ? 1
          : 0
      : a.namespace < b.namespace
        ? -1
        : 1,
  );
}

/** The vault paths one live Secret's keys must be checked against, with the keys for each. */
export function pathsToCheck(p: PlannedSecret, keys: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const key of [...keys].sort()) {
    for (const path of p.fields.get(key) ?? []) {
      const list = out.get(path) ?? [];
      list.push(key);
      out.set(path, list);
    }
  }
  return out;
}

function referrerText(r: Referrer): string {
  return `${r.kind} ${r.namespace}/${r.name} (${r.via.join(', ')}${r.note ? `; ${r.note}` : ''})`;
}

/**
 * May this Secret be deleted? Every reason to keep it is listed, not only
 * the first, so one run tells the user everything to fix.
 */
export function decide(
  planned: PlannedSecret,
  live: SecretFacts | undefined,
  referrers: readonly Referrer[],
  vault: ReadonlyMap<string, PathState>,
  compared: ReadonlyMap<string, Comparison>,
): Verdict {
  if (!live) return { action: 'gone' };
  const reasons: string[] = [];
  let error = false;

  const never = NEVER_DELETED[live.type];
  if (never) reasons.push(never);

  for (const o of live.owners) {
    // The runner deletes a planned SealedSecret before its Secret.
    if (planned.sealed && o.kind === 'SealedSecret' && o.name === planned.name) continue;
    // The plan's own ExternalSecret is deleted first (see the runner).
    if (o.kind === 'ExternalSecret' && planned.externalSecrets.includes(o.name)) continue;
    if (RECREATING_OWNERS.has(o.kind)) {
      reasons.push(
        `owned by ${o.kind} ${planned.namespace}/${o.name}: its controller would recreate it; delete the ${o.kind} first`,
      );
    } else if (o.controller) {
      reasons.push(`managed by ${o.kind} ${planned.namespace}/${o.name} (ownerReference)`);
    }
  }

  // Old revisions kept for `rollout undo` run nothing: the migration's end
  // state is that rolling back past it needs the Secret back (said below).
  const history = [...new Set(referrers.flatMap((r) => (r.history ? [r.history] : [])))];
  const holding = referrers.filter((r) => r.history === undefined);
  if (holding.length > 0) {
    const shown = holding.slice(0, MAX_REFERRERS).map(referrerText);
    const more = holding.length - shown.length;
    const pull =
      PULL_SECRET_TYPES.has(live.type) && holding.some((r) => r.via.includes('imagePullSecrets'));
    reasons.push(
      `${pull ? 'used as a pull secret; ' : ''}still referenced by ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    );
  }

  const unmigrated = planned.workloads.filter((w) => w.status !== 'migrated');
  if (unmigrated.length > 0) {
    reasons.push(
      `the plan has not migrated ${unmigrated.map((w) => `${w.kind} ${w.name} (${w.status})`).join(', ')}`,
    );
  }

  const unmapped = live.keys.filter((k) => !planned.fields.has(k)).sort();
  if (unmapped.length > 0) {
    reasons.push(
      `holds key(s) the plan does not map, so their values are not in vault: ${unmapped.join(', ')}`,
    );
  }

  const checks = pathsToCheck(planned, live.keys);
  for (const [path, keys] of checks) {
    const state = vault.get(path) ?? ({ kind: 'missing' } as const);
    const j = judge(
      keys.map((k) => fieldOfKey(planned, k)),
      state,
    );
    if (!j.ready) {
      if (j.error) error = true;
      reasons.push(`${path}: ${j.message}`);
      continue;
    }
    for (const key of keys) {
      const c = compared.get(comparisonKey(path, key));
      if (c === 'equal') continue;
      if (c === 'not-text') {
        reasons.push(`key ${key} is not UTF-8 text, so vault cannot hold it as is (${path})`);
      } else reasons.push(`key ${key} differs from vault (${path})`);
    }
  }

  if (reasons.length > 0) return { action: 'refuse', reasons, error };
  const where = [...checks.keys()];
  const matched =
    live.keys.length === 0
      ? 'holds no keys'
      : `${live.keys.length} key(s) match vault (${where.join(', ')})`;
  const undo = history.length > 0 ? `; ${history.join('; ')}` : '';
  return { action: 'delete', summary: `${matched}${undo}` };
}
