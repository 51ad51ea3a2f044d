// The pod template's own references to the Secrets a workload now reads from
// vault: which of them `target protect` removes (in the same patch that adds
// the annotations, so one rollout), the record it leaves on the template so
// `target unprotect` can put back exactly what was removed, and the JSON
// Patch operations for both directions. Pure: the caller supplies the live
// template and the key names of the Secrets read through envFrom.
//
// Only what the plan maps is removed. An env entry goes when the plan maps its
// key to the same variable; an envFrom secretRef goes only when every key the
// container reads that way is mapped to prefix+key; a secret volume (or a
// projected volume of Secrets only) goes when the plan serves every file it
// shows (`files` below, the webhook's own rule): it is swapped for the memory
// emptyDir the wrapper writes those files into, so the containers' mounts of
// it stay valid. Any other such volume stays: removing it would break apps
// that read its files.
import type {
  V1Container,
  V1EnvFromSource,
  V1EnvVar,
  V1PodSpec,
  V1Volume,
} from '@kubernetes/client-node';
import { ANNOTATION, type FileMapEntry } from '../contract/annotations.js';
import type { PlanWorkload } from '../plan/schema.js';
import { nativeSecretOf } from '../plan/model.js';
import { filesVolume } from '../webhook/mutate.js';

export type JsonPatchOp =
  { op: 'add' | 'replace' | 'test'; path: string; value: unknown } | { op: 'remove'; path: string };

/** The lists a removal can come from: a container's env/envFrom, or the pod's volumes. */
export type RefList = 'env' | 'envFrom' | 'volumes';

/** One removed list entry, as it was: enough to insert it back at its place. */
export interface RemovedRef {
  /** The container's name; absent for pod-level lists (volumes). */
  container?: string;
  /** The container is an init container (names are unique across both lists). */
  init?: boolean;
  list: RefList;
  /** Its index in the list before this removal. */
  index: number;
  /** The entry itself: a reference (names, keys, prefix, flags), never a value. */
  entry: unknown;
  /** What took its place at the same index (a volume swapped for a memory emptyDir). */
  replacedBy?: unknown;
}

/**
 * The record kept in the ANNOTATION.nativeRefs annotation. One batch per
 * protect patch that removed something, oldest first; indices in a batch
 * refer to the template as it was just before that batch, so unprotect puts
 * batches back newest first.
 */
export interface NativeRefsRecord {
  v: 1;
  batches: RemovedRef[][];
}

/** Key names of a Secret: the list, null when it does not exist, undefined when unreadable. */
export type SecretKeyLookup = (name: string) => readonly string[] | null | undefined;

export interface NativeRefsOptions {
  /**
   * Names of the template's volumes whose every file the plan serves from
   * vault (webhook/mutate.ts servedVolumes): these are swapped for a memory
   * emptyDir; every other volume holding a migrated Secret is kept.
   */
  files: ReadonlySet<string>;
}

export interface NativeRefsFinding {
  remove: RemovedRef[];
  /** What stays, and why: one short phrase each. */
  kept: string[];
}

/** Migrated Secret name -> the plan's field map (vault field = Secret key -> env var). */
export function migratedSecrets(w: PlanWorkload): Map<string, Readonly<Record<string, string>>> {
  const out = new Map<string, Readonly<Record<string, string>>>();
  for (const s of w.secrets) {
    const native = nativeSecretOf(s);
    if (native === undefined) continue;
    // Keyed by the Secret's key: for an ExternalSecret's Secret the key may
    // differ from the vault field (secretKeys).
    const byKey = Object.fromEntries(
      Object.entries(s.fields).map(([field, env]) => [native.keyOf(field), env]),
    );
    // The same Secret twice in a plan entry: either mapping serves it.
    out.set(native.name, { ...out.get(native.name), ...byKey });
  }
  return out;
}

interface Located {
  c: V1Container;
  init: boolean;
  base: string;
}

function containers(spec: V1PodSpec | undefined): Located[] {
  return [
    ...(spec?.initContainers ?? []).map((c, i) => ({
      c,
      init: true,
      base: `/spec/template/spec/initContainers/${i}`,
    })),
    ...(spec?.containers ?? []).map((c, i) => ({
      c,
      init: false,
      base: `/spec/template/spec/containers/${i}`,
    })),
  ];
}

/** The Secrets whose key names `findNativeRefs` needs: those read whole through envFrom. */
export function envFromSecrets(
  spec: V1PodSpec | undefined,
  migrated: ReadonlyMap<string, unknown>,
): string[] {
  const out = new Set<string>();
  for (const { c } of containers(spec)) {
    for (const ef of c.envFrom ?? []) {
      const name = ef.secretRef?.name;
      if (name && migrated.has(name)) out.add(name);
    }
  }
  return [...out];
}

const what = (l: Located): string => `${l.init ? 'init container' : 'container'} ${l.c.name}`;

/** Which references to migrated Secrets go, and which stay with a reason. */
export function findNativeRefs(
  spec: V1PodSpec | undefined,
  migrated: ReadonlyMap<string, Readonly<Record<string, string>>>,
  keysOf: SecretKeyLookup,
  opts: NativeRefsOptions,
): NativeRefsFinding {
  const remove: RemovedRef[] = [];
  const kept: string[] = [];
  for (const l of containers(spec)) {
    const env: V1EnvVar[] = l.c.env ?? [];
    env.forEach((e, index) => {
      const ref = e.valueFrom?.secretKeyRef;
      const fields = ref?.name === undefined ? undefined : migrated.get(ref.name);
      if (!ref || !fields) return;
      // The wrapper sets exactly the variables of the env-map: the entry can
      // go only when the plan maps this key to this same variable.
      if (fields[ref.key] === e.name) {
        remove.push({ container: l.c.name, init: l.init, list: 'env', index, entry: e });
      } else {
        kept.push(
          `env ${e.name} in ${what(l)} (key ${ref.key} of Secret ${ref.name} is not mapped to ${e.name} in the plan)`,
        );
      }
    });
    // Variables the container's env sets win over envFrom: the app does not
    // read those keys through envFrom.
    const overridden = new Set(env.map((e) => e.name));
    const envFrom: V1EnvFromSource[] = l.c.envFrom ?? [];
    envFrom.forEach((ef, index) => {
      const name = ef.secretRef?.name;
      const fields = name === undefined ? undefined : migrated.get(name);
      if (name === undefined || !fields) return;
      const keys = keysOf(name);
      if (keys === undefined) {
        kept.push(`envFrom Secret ${name} in ${what(l)} (its key names could not be read)`);
        return;
      }
      if (keys === null && ef.secretRef?.optional !== true) {
        kept.push(`envFrom Secret ${name} in ${what(l)} (the Secret does not exist)`);
        return;
      }
      const prefix = ef.prefix ?? '';
      const missing = (keys ?? []).filter(
        (k) => !overridden.has(prefix + k) && fields[k] !== prefix + k,
      );
      if (missing.length === 0) {
        remove.push({ container: l.c.name, init: l.init, list: 'envFrom', index, entry: ef });
      } else {
        kept.push(
          `envFrom Secret ${name} in ${what(l)} (keys not mapped in the plan: ${missing
            .map((k) => prefix + k)
            .join(', ')})`,
        );
      }
    });
  }
  (spec?.volumes ?? []).forEach((v: V1Volume, index) => {
    const names = [
      ...(v.secret?.secretName ? [v.secret.secretName] : []),
      ...(v.projected?.sources ?? []).flatMap((p) => (p.secret?.name ? [p.secret.name] : [])),
    ].filter((n) => migrated.has(n));
    if (names.length === 0) return;
    const kind = v.secret ? 'secret volume' : 'projected volume';
    // The containers still mount it by name (and the API server insists the
    // volume exists), so it is replaced, not dropped: the webhook fills the
    // memory emptyDir from vault as it would have filled its own.
    if (!opts.files.has(v.name)) {
      kept.push(
        `${kind} ${v.name} (Secret ${names.join(', ')}): not all of its files are served from vault`,
      );
      return;
    }
    remove.push({ list: 'volumes', index, entry: v, replacedBy: filesVolume(v.name) });
  });
  return { remove, kept };
}

/** The Secret sources of a volume: name and items (absent: every key of the Secret). */
function secretSources(v: V1Volume): { name: string; items: boolean }[] {
  if (v.secret?.secretName) return [{ name: v.secret.secretName, items: !!v.secret.items }];
  return (v.projected?.sources ?? []).flatMap((p) =>
    p.secret?.name ? [{ name: p.secret.name, items: !!p.secret.items }] : [],
  );
}

/** The Secrets read whole (no items) by the volumes in `served`: their key names decide. */
export function wholeVolumeSecrets(
  spec: V1PodSpec | undefined,
  served: ReadonlySet<string>,
): string[] {
  const out = new Set<string>();
  for (const v of spec?.volumes ?? []) {
    if (!served.has(v.name)) continue;
    for (const s of secretSources(v)) if (!s.items) out.add(s.name);
  }
  return [...out];
}

/**
 * The volumes of `served` that show no file the file-map leaves out. The
 * webhook cannot see a Secret's keys, so it takes the file-map as the whole
 * content of a volume without items; protect can, and keeps a volume whose
 * Secret has a key (added since discover, say) the file-map does not serve,
 * or whose keys it cannot read.
 */
export function servedInFull(
  spec: V1PodSpec | undefined,
  served: ReadonlySet<string>,
  files: readonly FileMapEntry[],
  keysOf: SecretKeyLookup,
): Set<string> {
  const out = new Set<string>();
  for (const v of spec?.volumes ?? []) {
    if (!served.has(v.name)) continue;
    const mounts = containers(spec)
      .flatMap((l) => l.c.volumeMounts ?? [])
      .filter((m) => m.name === v.name)
      .map((m) => m.mountPath.replace(/\/+$/, ''));
    const whole = secretSources(v).every((s) => {
      if (s.items) return true;
      const keys = keysOf(s.name);
      if (!keys) return false;
      return mounts.every((m) => keys.every((k) => files.some((f) => f.file === `${m}/${k}`)));
    });
    if (whole) out.add(v.name);
  }
  return out;
}

/** JSON Pointer escaping of one path segment. */
export const escapePointer = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');

function listPath(spec: V1PodSpec | undefined, r: RemovedRef): string | undefined {
  if (r.list === 'volumes') return '/spec/template/spec/volumes';
  const l = containers(spec).find((x) => x.c.name === r.container && x.init === (r.init === true));
  return l ? `${l.base}/${r.list}` : undefined;
}

/**
 * Test-and-remove operations for these entries. Each entry is tested for
 * exactly its recorded value before it is removed (highest index first within
 * a list, so the lower indices stay valid): a template that changed under us
 * fails the whole patch instead of losing the wrong entry.
 */
export function removalOps(
  spec: V1PodSpec | undefined,
  remove: readonly RemovedRef[],
): JsonPatchOp[] {
  const located = remove.map((r) => ({ r, path: listPath(spec, r) }));
  const ops: JsonPatchOp[] = [];
  // Containers are identified by index in the path: pin the name too.
  const pinned = new Set<string>();
  for (const { r, path } of located) {
    if (!path) throw new Error(`no container ${r.container ?? ''} in the template`);
    if (r.container !== undefined && !pinned.has(path)) {
      pinned.add(path);
      ops.push({ op: 'test', path: path.replace(/\/[^/]+$/, '/name'), value: r.container });
    }
  }
  const sorted = [...located].sort((a, b) =>
    a.path === b.path ? b.r.index - a.r.index : (a.path ?? '').localeCompare(b.path ?? ''),
  );
  for (const { r, path } of sorted) {
    ops.push({ op: 'test', path: `${path ?? ''}/${r.index}`, value: r.entry });
    ops.push(
      r.replacedBy === undefined
        ? { op: 'remove', path: `${path ?? ''}/${r.index}` }
        : { op: 'replace', path: `${path ?? ''}/${r.index}`, value: r.replacedBy },
    );
  }
  return ops;
}

/** The record on a live template, or undefined when there is none (or it is not ours). */
export function readRecord(
  annotations: Readonly<Record<string, string>> | undefined,
): NativeRefsRecord | undefined {
  const raw = annotations?.[ANNOTATION.nativeRefs];
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (
      typeof parsed === 'object' &&
      parsed !== null &&
      (parsed as { v?: unknown }).v === 1 &&
      Array.isArray((parsed as { batches?: unknown }).batches)
    ) {
      return parsed as NativeRefsRecord;
    }
  } catch {
    // Not JSON: treated as absent; unprotect says it cannot restore.
  }
  return undefined;
}

/** The record after one more removal. */
export function appendRecord(
  previous: NativeRefsRecord | undefined,
  remove: readonly RemovedRef[],
): NativeRefsRecord {
  return { v: 1, batches: [...(previous?.batches ?? []), [...remove]] };
}

/** Secret names a record holds references to (for plan checks after removal). */
export function recordedSecrets(record: NativeRefsRecord | undefined): Set<string> {
  const out = new Set<string>();
  for (const r of (record?.batches ?? []).flat()) {
    const e = r.entry as {
      valueFrom?: { secretKeyRef?: { name?: string } };
      secretRef?: { name?: string };
      secret?: { secretName?: string };
      projected?: { sources?: { secret?: { name?: string } }[] };
    };
    for (const n of [
      e.valueFrom?.secretKeyRef?.name,
      e.secretRef?.name,
      e.secret?.secretName,
      ...(e.projected?.sources ?? []).map((s) => s.secret?.name),
    ]) {
      if (n) out.add(n);
    }
  }
  return out;
}

/** One line per removed entry kind, for output: `env DB_USER`, `envFrom Secret db`. */
export function describeRef(r: RemovedRef): string {
  const where =
    r.container === undefined
      ? ''
      : ` in ${r.init ? 'init container' : 'container'} ${r.container}`;
  const e = r.entry as V1EnvVar & V1EnvFromSource & V1Volume;
  if (r.list === 'env') return `env ${e.name}${where}`;
  if (r.list === 'envFrom') return `envFrom Secret ${e.secretRef?.name ?? ''}${where}`;
  return `volume ${e.name}`;
}

/**
 * Operations that set (string) or delete (null) template annotations,
 * creating the map (and the template's metadata) when absent.
 */
export function annotationOps(
  metadata: { annotations?: Record<string, string> } | undefined,
  change: Readonly<Record<string, string | null>>,
): JsonPatchOp[] {
  const base = '/spec/template/metadata';
  const set = Object.entries(change).filter((e): e is [string, string] => e[1] !== null);
  const del = Object.keys(change).filter((k) => change[k] === null);
  const now = metadata?.annotations;
  const ops: JsonPatchOp[] = [];
  if (!metadata) {
    if (set.length > 0)
      ops.push({ op: 'add', path: base, value: { annotations: Object.fromEntries(set) } });
    return ops;
  }
  if (!now) {
    if (set.length > 0)
      ops.push({ op: 'add', path: `${base}/annotations`, value: Object.fromEntries(set) });
    return ops;
  }
  for (const [k, v] of set)
    ops.push({ op: 'add', path: `${base}/annotations/${escapePointer(k)}`, value: v });
  for (const k of del) {
    if (k in now) ops.push({ op: 'remove', path: `${base}/annotations/${escapePointer(k)}` });
  }
  return ops;
}

const sameJson = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export interface Restore {
  ops: JsonPatchOp[];
  restored: RemovedRef[];
  /** Entries that could not be put back, and why. */
  skipped: string[];
}

/**
 * Operations that put every recorded entry back where it was: batches newest
 * first, each list's entries in ascending index order (each insert lands at
 * its original index because the lower ones are already back). An entry that
 * is already in its list (put back by hand) is not added twice; a container
 * that no longer exists is reported.
 */
export function restoreOps(spec: V1PodSpec | undefined, record: NativeRefsRecord): Restore {
  // Work on copies of the lists so each op's index is computed against the
  // list as the previous ops left it.
  const lists = new Map<string, unknown[] | undefined>();
  const current = (path: string, r: RemovedRef): unknown[] | undefined => {
    if (!lists.has(path)) {
      let list: unknown[] | undefined;
      if (r.list === 'volumes') list = spec?.volumes ? [...spec.volumes] : undefined;
      else {
        const l = containers(spec).find(
          (x) => x.c.name === r.container && x.init === (r.init === true),
        );
        const v = l?.c[r.list];
        list = v ? [...v] : undefined;
      }
      lists.set(path, list);
    }
    return lists.get(path);
  };
  // What each list held before this restore, less the entries matched so far.
  const originals = new Map<string, unknown[]>();
  const untouched = (path: string, list: unknown[] | undefined): unknown[] => {
    let o = originals.get(path);
    if (!o) {
      o = [...(list ?? [])];
      originals.set(path, o);
    }
    return o;
  };
  const ops: JsonPatchOp[] = [];
  const restored: RemovedRef[] = [];
  const skipped: string[] = [];
  for (const batch of [...record.batches].reverse()) {
    const ordered = [...batch].sort((a, b) => a.index - b.index);
    const done: RemovedRef[] = [];
    for (const r of ordered) {
      const path = listPath(spec, r);
      if (!path) {
        skipped.push(`${describeRef(r)}: the container is gone`);
        continue;
      }
      const list = current(path, r);
      // An entry put back by hand is matched once: two identical entries
      // removed (the same envFrom twice) need two in the list to be skipped.
      const before = untouched(path, list);
      const found = before.findIndex((e) => sameJson(e, r.entry));
      if (found >= 0) {
        before.splice(found, 1);
        continue;
      }
      // A swapped entry goes back in place of what protect left there.
      const swapped =
        r.replacedBy === undefined ? -1 : (list ?? []).findIndex((e) => sameJson(e, r.replacedBy));
      if (list && swapped >= 0) {
        ops.push({ op: 'replace', path: `${path}/${swapped}`, value: r.entry });
        list.splice(swapped, 1, r.entry);
        done.push(r);
        continue;
      }
      if (!list) {
        ops.push({ op: 'add', path, value: [r.entry] });
        lists.set(path, [r.entry]);
      } else {
        const at = Math.min(r.index, list.length);
        ops.push({ op: 'add', path: `${path}/${at}`, value: r.entry });
        list.splice(at, 0, r.entry);
      }
      done.push(r);
    }
    // Reported in the order protect removed (and reported) them.
    restored.push(...batch.filter((r) => done.includes(r)));
  }
  return { ops, restored, skipped };
}
