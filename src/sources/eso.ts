// `target discover --from eso`, the pure part: which vault path and field
// each key of a Secret that External Secrets Operator writes comes from,
// computed the way ESO's vault provider computes it, and the rewrite of a
// discovered plan's `k8s-secret/<name>` entries into `eso/<externalsecret>`
// entries. No I/O, no secret values: ExternalSecrets and SecretStores hold
// references only, and the synced Secrets are seen by their key names.
import type { DiscoveryResult } from '../discovery/discover.js';
import type { FileTarget, SecretRef } from '../plan/schema.js';
import { FIELD_NAME, KV2_DATA_PATH } from '../plan/model.js';
import type { PlanNote } from '../plan/write.js';

/** The parts of an ExternalSecret (external-secrets.io/v1) this reads. */
export interface ExternalSecretObject {
  metadata: { name: string; namespace: string };
  spec?: {
    secretStoreRef?: { kind?: string; name?: string };
    target?: { name?: string; template?: unknown; creationPolicy?: string };
    data?: {
      secretKey?: string;
      remoteRef?: RemoteRef;
      sourceRef?: { storeRef?: { kind?: string; name?: string }; generatorRef?: unknown };
    }[];
    dataFrom?: {
      extract?: RemoteRef;
      find?: unknown;
      rewrite?: unknown[];
      sourceRef?: { storeRef?: { kind?: string; name?: string }; generatorRef?: unknown };
    }[];
  };
}

interface RemoteRef {
  key?: string;
  property?: string;
  version?: string;
  metadataPolicy?: string;
  conversionStrategy?: string;
  decodingStrategy?: string;
}

/** A SecretStore (namespaced) or ClusterSecretStore. */
export interface SecretStoreObject {
  kind: 'SecretStore' | 'ClusterSecretStore';
  metadata: { name: string; namespace?: string };
  spec?: { provider?: Record<string, unknown> };
}

export interface EsoInventory {
  externalSecrets: ExternalSecretObject[];
  stores: SecretStoreObject[];
}

interface VaultStore {
  id: string;
  server: string;
  path: string | undefined;
  version: string;
}

/** Where one Secret key comes from, or why that cannot be said without vault. */
export type KeySource = { path: string; field: string } | { problem: string };

const storeLabel = (kind: string, name: string): string => `${kind} ${name}`;

/**
 * ESO's KV path rule (its vault provider's buildPath, v0.16): with the store's
 * `path` (the mount) set, a key starting with `<path>/` loses that prefix and
 * then, on v2, a leading `data/`, and the result goes under `<path>/data/`;
 * without `path`, v2 inserts `data` after the key's first segment unless the
 * key already contains `/data/`.
 */
export function esoKvPath(
  store: { path?: string | undefined; version: string },
  key: string,
): string {
  const v2 = store.version === 'v2';
  if (store.path !== undefined) {
    let out = key;
    const cut = `${store.path}/`;
    if (out.startsWith(cut)) {
      out = out.slice(cut.length);
      if (v2 && out.startsWith('data/')) out = out.slice('data/'.length);
    }
    return [store.path, ...(v2 ? ['data'] : []), out].join('/');
  }
  if (v2 && !key.includes('/data/')) {
    const [first, ...rest] = key.split('/');
    return [first ?? '', 'data', ...rest].join('/');
  }
  return key;
}

function resolveStore(
  ref: { kind?: string; name?: string } | undefined,
  namespace: string,
  stores: readonly SecretStoreObject[],
): VaultStore | { problem: string } {
  const kind = ref?.kind ?? 'SecretStore';
  const name = ref?.name ?? '';
  const store = stores.find(
    (s) =>
      s.kind === kind &&
      s.metadata.name === name &&
      (kind === 'ClusterSecretStore' || s.metadata.namespace === namespace),
  );
  if (!store) return { problem: `its ${storeLabel(kind, name)} does not exist` };
  const provider = store.spec?.provider ?? {};
  const vault = provider.vault as { server?: string; path?: string; version?: string } | undefined;
  if (!vault) {
    const which = Object.keys(provider)[0] ?? 'none';
    return {
      problem: `its ${storeLabel(kind, name)} uses the ${which} provider, not vault`,
    };
  }
  const version = vault.version ?? 'v2';
  if (version !== 'v2') {
    return {
      problem: `its ${storeLabel(kind, name)} reads KV ${version}; cloudtaser reads KV v2 only`,
    };
  }
  return {
    id: storeLabel(kind, name),
    server: vault.server ?? '',
    path:
      vault.path === undefined || vault.path === '' ? undefined : vault.path.replace(/\/+$/, ''),
    version,
  };
}

/** What ESO does to a value beyond copying one field, which a plan cannot express. */
function refProblem(r: RemoteRef): string | undefined {
  if (r.version) return `pins vault version ${r.version}`;
  if (r.metadataPolicy === 'Fetch') return 'reads vault metadata (metadataPolicy Fetch)';
  if (r.decodingStrategy && r.decodingStrategy !== 'None')
    return `decodes the value (${r.decodingStrategy})`;
  if (r.conversionStrategy && r.conversionStrategy !== 'Default')
    return `converts the value (${r.conversionStrategy})`;
  return undefined;
}

function located(store: VaultStore, key: string, field: string): KeySource {
  const path = esoKvPath(store, key.replace(/^\/+/, ''));
  if (!KV2_DATA_PATH.test(path)) return { problem: `vault path ${path} is not a KV v2 data path` };
  if (!FIELD_NAME.test(field))
    return { problem: `field ${JSON.stringify(field)} cannot be a plan field` };
  return { path, field };
}

/**
 * Where each of `keys` (keys of the Secret the ExternalSecret writes) comes
 * from. ESO fills the Secret from `dataFrom` in order (a later entry
 * overrides an earlier one) and then from `data` (which overrides both), so
 * a key named by a `data` entry comes from its last such entry; any other
 * key can only come from a `dataFrom` entry, and only a plain `extract`
 * maps a vault field to the key of the same name.
 */
export function resolveExternalSecret(
  es: ExternalSecretObject,
  keys: readonly string[],
  stores: readonly SecretStoreObject[],
): { keys: Map<string, KeySource>; store: VaultStore | undefined; whole?: string } {
  const ns = es.metadata.namespace;
  const out = new Map<string, KeySource>();
  const spec = es.spec ?? {};
  const defaultStore = resolveStore(spec.secretStoreRef, ns, stores);
  const store = 'problem' in defaultStore ? undefined : defaultStore;
  if (spec.target?.template !== undefined) {
    const whole = 'target.template renders the Secret, so its keys are not vault fields as such';
    for (const k of keys) out.set(k, { problem: whole });
    return { keys: out, store, whole };
  }
  const storeFor = (ref: { kind?: string; name?: string } | undefined) =>
    ref === undefined ? defaultStore : resolveStore(ref, ns, stores);

  for (const key of keys) {
    const data = [...(spec.data ?? [])].reverse().find((d) => d.secretKey === key);
    if (data) {
      if (data.sourceRef?.generatorRef !== undefined) {
        out.set(key, { problem: 'comes from a generator, not from vault' });
        continue;
      }
      const st = storeFor(data.sourceRef?.storeRef);
      const r = data.remoteRef ?? {};
      if ('problem' in st) out.set(key, st);
      else if (!r.key) out.set(key, { problem: 'its data entry names no remoteRef.key' });
      else if (!r.property)
        out.set(key, {
          problem: `data reads ${r.key} without a property: ESO writes the whole secret as JSON`,
        });
      else {
        const why = refProblem(r);
        out.set(key, why ? { problem: why } : located(st, r.key, r.property));
      }
      continue;
    }
    const from = spec.dataFrom ?? [];
    if (from.length === 0) {
      out.set(key, { problem: 'no data or dataFrom entry of the ExternalSecret writes this key' });
      continue;
    }
    // With several dataFrom entries, which one wrote the key depends on what
    // vault holds; only one entry leaves no doubt.
    if (from.length > 1) {
      out.set(key, {
        problem: `it has ${from.length} dataFrom entries; which one wrote this key depends on vault's contents`,
      });
      continue;
    }
    const only = from[0] ?? {};
    if (only.find !== undefined) {
      out.set(key, { problem: 'dataFrom.find picks vault paths by name or tag at sync time' });
    } else if (only.rewrite !== undefined && only.rewrite.length > 0) {
      out.set(key, { problem: 'dataFrom.rewrite renames the keys' });
    } else if (only.sourceRef?.generatorRef !== undefined) {
      out.set(key, { problem: 'comes from a generator, not from vault' });
    } else if (!only.extract?.key) {
      out.set(key, { problem: 'its dataFrom entry is neither extract nor find' });
    } else if (only.extract.property) {
      out.set(key, {
        problem: `dataFrom.extract reads the nested property ${only.extract.property}`,
      });
    } else {
      const st = storeFor(only.sourceRef?.storeRef);
      const why = refProblem(only.extract);
      out.set(
        key,
        'problem' in st ? st : why ? { problem: why } : located(st, only.extract.key, key),
      );
    }
  }
  return { keys: out, store };
}

/** `scheme://host:port` with default ports filled in, for comparing vault addresses. */
export function normalizeVaultAddress(address: string): string | undefined {
  try {
    const u = new URL(address);
    const port = u.port || (u.protocol === 'https:' ? '443' : u.protocol === 'http:' ? '80' : '');
    const path = u.pathname.replace(/\/+$/, '');
    return `${u.protocol}//${u.hostname.toLowerCase()}:${port}${path}`;
  } catch {
    return undefined;
  }
}

/** The Secret an ExternalSecret writes: target.name, else its own name. */
export const targetName = (es: ExternalSecretObject): string =>
  es.spec?.target?.name ?? es.metadata.name;

export interface EsoRewriteSummary {
  /** Plan entries now read as eso/<externalsecret>. */
  converted: number;
  /** Secrets managed by an ExternalSecret that stay k8s-secret/<name> (with a comment). */
  fallback: number;
  /** ExternalSecrets whose store points at another vault than --vault-address. */
  otherVault: string[];
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Rewrites a discovered plan: every `k8s-secret/<name>` entry whose Secret an
 * ExternalSecret in its namespace writes becomes one `eso/<externalsecret>`
 * entry per vault path ESO reads, with the vault field ESO reads for each key
 * the workload uses and the workload's own env var names and files. When any
 * key the workload reads cannot be traced to one vault field, the entry stays
 * `k8s-secret/<name>` and its comment says what could not be derived, so
 * nothing is dropped. Notes move with their entries.
 */
export function rewriteForEso(
  result: DiscoveryResult,
  inv: EsoInventory,
  opts: { vaultAddress?: string | undefined },
): { result: DiscoveryResult; summary: EsoRewriteSummary } {
  const summary: EsoRewriteSummary = { converted: 0, fallback: 0, otherVault: [] };
  const wantAddress =
    opts.vaultAddress === undefined ? undefined : normalizeVaultAddress(opts.vaultAddress);
  const oldNotes = new Map<string, string>();
  for (const n of result.notes) oldNotes.set(JSON.stringify(n.path), n.text);
  const notes: PlanNote[] = [];
  const otherVault = new Set<string>();

  const tenants = result.plan.tenants.map((t, ti) => ({
    ...t,
    workloads: t.workloads.map((w, wi) => {
      const secrets: { ref: SecretRef; note: string[] }[] = [];
      w.secrets.forEach((ref, si) => {
        const carried = oldNotes.get(
          JSON.stringify(['tenants', ti, 'workloads', wi, 'secrets', si]),
        );
        const note = carried === undefined ? [] : [carried];
        const name = ref.source.startsWith('k8s-secret/')
          ? ref.source.slice('k8s-secret/'.length)
          : undefined;
        const es =
          name === undefined
            ? undefined
            : inv.externalSecrets.find(
                (e) => e.metadata.namespace === t.namespace && targetName(e) === name,
              );
        if (!es || name === undefined) {
          secrets.push({ ref, note });
          return;
        }
        const esName = `ExternalSecret ${t.namespace}/${es.metadata.name}`;
        const fieldKeys = [
          ...new Set([...Object.keys(ref.fields), ...Object.keys(ref.files ?? {})]),
        ];
        const resolved = resolveExternalSecret(es, fieldKeys, inv.stores);
        const problems = [...resolved.keys]
          .filter((e): e is [string, { problem: string }] => 'problem' in e[1])
          .map(([k, p]) => `key ${k}: ${p.problem}`);
        // Two keys from one vault path and field would need one field mapped twice.
        const seen = new Map<string, string>();
        for (const [k, src] of resolved.keys) {
          if ('problem' in src) continue;
          const id = `${src.path}\u0000${src.field}`;
          const other = seen.get(id);
          if (other !== undefined)
            problems.push(`keys ${other} and ${k} both come from ${src.path} field ${src.field}`);
          else seen.set(id, k);
        }
        if (fieldKeys.length === 0) {
          problems.push('the workload reads no key of it that discover could map');
          // Still say what ESO does for keys no data entry names.
          const any = resolveExternalSecret(es, ['\u0000'], inv.stores).keys.get('\u0000');
          if (any && 'problem' in any && (es.spec?.dataFrom?.length ?? 0) > 0) {
            problems.push(`its dataFrom: ${any.problem}`);
          }
        }
        if (problems.length > 0) {
          summary.fallback++;
          secrets.push({
            ref,
            note: [
              ...note,
              `managed by ${esName}; its vault paths could not all be derived (${[...new Set(problems)].join('; ')}), so this stays a native Secret reference. Review it: point the fields at vault by hand, or import the values with target import --from kubernetes; target cleanup refuses a Secret an ExternalSecret still owns.`,
            ],
          });
          return;
        }
        const store = resolved.store;
        const storeNote: string[] = [];
        if (store && wantAddress !== undefined) {
          const theirs = normalizeVaultAddress(store.server);
          if (theirs !== wantAddress) {
            otherVault.add(`${t.namespace}/${es.metadata.name}`);
            storeNote.push(
              `WARNING: its ${store.id} reads vault at ${store.server || '(no server)'}, not at --vault-address ${opts.vaultAddress ?? ''}: the paths below are in that vault.`,
            );
          }
        }
        const byPath = new Map<
          string,
          { fields: [string, string][]; files: [string, FileTarget][]; keys: [string, string][] }
        >();
        for (const k of fieldKeys) {
          const src = resolved.keys.get(k);
          if (!src || 'problem' in src) continue;
          const entry = byPath.get(src.path) ?? { fields: [], files: [], keys: [] };
          const env = ref.fields[k];
          if (env !== undefined) entry.fields.push([src.field, env]);
          const file = ref.files?.[k];
          if (file !== undefined) entry.files.push([src.field, file]);
          if (src.field !== k) entry.keys.push([src.field, k]);
          byPath.set(src.path, entry);
        }
        for (const [path, e] of [...byPath].sort((a, b) => byString(a[0], b[0]))) {
          summary.converted++;
          const sorted = <T>(l: [string, T][]): [string, T][] =>
            [...l].sort((a, b) => byString(a[0], b[0]));
          secrets.push({
            ref: {
              source: `eso/${es.metadata.name}`,
              vaultPath: path,
              fields: Object.fromEntries(sorted(e.fields)),
              ...(e.files.length > 0 ? { files: Object.fromEntries(sorted(e.files)) } : {}),
              ...(name !== es.metadata.name ? { secret: name } : {}),
              ...(e.keys.length > 0 ? { secretKeys: Object.fromEntries(sorted(e.keys)) } : {}),
            },
            note: [
              ...note,
              ...storeNote,
              `from ${esName} (${store?.id ?? 'store'}): ESO reads these fields from ${path} into Secret ${name}; the values are already in vault, no import needed.`,
            ],
          });
        }
      });
      secrets.forEach((s, si) => {
        if (s.note.length > 0) {
          notes.push({
            path: ['tenants', ti, 'workloads', wi, 'secrets', si],
            text: [...new Set(s.note)].join('\n'),
          });
        }
      });
      return { ...w, secrets: secrets.map((s) => s.ref) };
    }),
  }));
  // Notes of everything above the secrets (none today) are kept as they were.
  for (const n of result.notes) if (!n.path.includes('secrets')) notes.push(n);
  summary.otherVault = [...otherVault].sort(byString);
  return { result: { ...result, plan: { ...result.plan, tenants }, notes }, summary };
}
