// `target import`, the pure part: from the plan, what the source holds and
// what vault holds today, decide per vault path what to write. Nothing here
// does I/O, so every rule (create, keep, overwrite, merge, refuse) is tested
// without servers.
//
// Values are carried as `SourceValue`s only from the source to the write;
// messages, actions and reasons hold path, field and Secret names, never a
// value.
import type { MigrationPlan, SecretRef } from '../plan/schema.js';
import { mappedFields, nativeSecretOf } from '../plan/model.js';

/** Where one vault field comes from: a key of a Kubernetes Secret. */
export interface FieldOrigin {
  namespace: string;
  secret: string;
  key: string;
  /** The plan names it `sealed-secret/<secret>`: a SealedSecret delivers it. */
  sealed?: boolean;
}

/** What the plan asks to be in one vault path. */
export interface WantedPath {
  vaultPath: string;
  /** Vault field → where its value comes from. */
  fields: Map<string, FieldOrigin>;
  /** Problems found in the plan itself (conflicting mappings); the path is not written. */
  conflicts: string[];
  /** Paths whose source is a Vault Agent file: their values are already in vault. */
  vaultAgent: boolean;
}

const originLabel = (o: FieldOrigin): string => `Secret ${o.namespace}/${o.secret} key ${o.key}`;

/**
 * What one source makes of one plan secret: the secret its fields come from
 * (a field's key is the field's own name), "vault holds it already", or a
 * conflict that keeps the path from being written.
 */
export type PlanSecretOrigin =
  | { kind: 'secret'; namespace: string; secret: string; sealed?: boolean }
  | { kind: 'vault' }
  | { kind: 'conflict'; message: string };

/**
 * Collects every vault path the plan maps, once, sorted by path, with each
 * field's origin as `originOf` (one per source) decides. The same path and
 * field from the same secret is deduplicated; from two different secrets it
 * is a conflict, named with `label`, reported instead of letting one win.
 */
export function collectWantedPaths(
  plan: MigrationPlan,
  originOf: (s: SecretRef, tenantNamespace: string) => PlanSecretOrigin,
  label: (o: FieldOrigin) => string,
): WantedPath[] {
  const byPath = new Map<string, WantedPath>();
  for (const t of plan.tenants) {
    for (const w of t.workloads) {
      for (const s of w.secrets) {
        let want = byPath.get(s.vaultPath);
        if (!want) {
          want = { vaultPath: s.vaultPath, fields: new Map(), conflicts: [], vaultAgent: false };
          byPath.set(s.vaultPath, want);
        }
        const from = originOf(s, t.namespace);
        if (from.kind === 'conflict') {
          want.conflicts.push(from.message);
          continue;
        }
        if (from.kind === 'vault') {
          want.vaultAgent = true;
          continue;
        }
        for (const field of mappedFields(s)) {
          const origin: FieldOrigin = {
            namespace: from.namespace,
            secret: from.secret,
            key: field,
            ...(from.sealed ? { sealed: true } : {}),
          };
          const prev = want.fields.get(field);
          if (!prev) want.fields.set(field, origin);
          else if (prev.namespace !== origin.namespace || prev.secret !== origin.secret) {
            want.conflicts.push(
              `field ${field} is mapped from ${label(prev)} and from ${label(origin)}`,
            );
          }
        }
      }
    }
  }
  return [...byPath.values()].sort((a, b) =>
    a.vaultPath < b.vaultPath ? -1 : a.vaultPath > b.vaultPath ? 1 : 0,
  );
}

/**
 * The plan's paths for --from kubernetes. Vault field names are the
 * Secret's key names (discover maps key `k` to field `k`), so the key read
 * for a field is the field's own name. Several workloads may map the same
 * path from the same Secret (deduplicated); the same path and field from two
 * different Secrets is a conflict.
 */
export function wantedPaths(plan: MigrationPlan): WantedPath[] {
  return collectWantedPaths(
    plan,
    (s, namespace): PlanSecretOrigin => {
      if (s.source.startsWith('sops/')) {
        return {
          kind: 'conflict',
          message: `source ${s.source} is a SOPS file; import it with --from sops`,
        };
      }
      // An ExternalSecret reads vault already: like a Vault Agent file, nothing to import.
      const native = s.source.startsWith('eso/') ? undefined : nativeSecretOf(s);
      if (native === undefined) return { kind: 'vault' };
      const sealed = s.source.startsWith('sealed-secret/');
      return { kind: 'secret', namespace, secret: native.name, ...(sealed ? { sealed } : {}) };
    },
    originLabel,
  );
}

/**
 * One source secret as the source holds it: key → decoded bytes, or why it
 * could not be read. `label` names it in messages (`Secret ns/name`, `AWS
 * secret prod/db`); without it, the Kubernetes Secret of the origin.
 */
export type SourceSecret =
  | { kind: 'found'; data: ReadonlyMap<string, Buffer>; label?: string }
  | { kind: 'missing'; reason: string };

/**
 * How a source names the secret a plan field comes from: the key of the
 * `secrets` map handed to planPath. Kubernetes uses `namespace/secret`; the
 * cloud sources a name template or a per-path mapping (so the vault path is
 * passed too).
 */
export type SourceNaming = (origin: FieldOrigin, vaultPath: string) => string;

/** The state of one KV v2 path, read without its values (subkeys + metadata). */
export type VaultPathState =
  | { kind: 'missing' }
  /** The latest version is deleted or destroyed: nothing live to keep. */
  | { kind: 'gone'; version: number; how: 'deleted' | 'destroyed' }
  | { kind: 'found'; version: number; keys: readonly string[] };

export interface ImportFlags {
  overwrite: boolean;
  merge: boolean;
}

export type Action = 'create' | 'overwrite' | 'merge' | 'keep' | 'skip-vault-agent' | 'fail';

/** What to do with one vault path. `data` holds values and must never be printed. */
export interface PathPlan {
  vaultPath: string;
  action: Action;
  /** Field names written (or that would be), sorted. */
  fields: string[];
  /** Why, for the output line: names only. */
  reason: string;
  /** KV v2 check-and-set version: 0 = the path must not exist yet. */
  cas: number;
  /** The plan's fields with their values from the source; absent unless written. */
  data?: Map<string, string>;
  /** Merge: keep vault's current fields the source does not override (read at apply time). */
  keepExisting: boolean;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const secretKey = (o: FieldOrigin): string => `${o.namespace}/${o.secret}`;

/**
 * The values a path needs from the source, or the reason it cannot be
 * filled. KV v2 stores JSON strings: a value that is not UTF-8 text would be
 * silently altered by any conversion, so it is refused (by path and field)
 * rather than stored changed.
 */
function sourceValues(
  want: WantedPath,
  secrets: ReadonlyMap<string, SourceSecret>,
  nameOf: SourceNaming,
): { data: Map<string, string> } | { reason: string } {
  const data = new Map<string, string>();
  for (const [field, origin] of [...want.fields].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    const name = nameOf(origin, want.vaultPath);
    const secret = secrets.get(name);
    if (!secret) return { reason: `source secret ${name} was not read` };
    if (secret.kind === 'missing') return { reason: secret.reason };
    const label = secret.label ?? `Secret ${secretKey(origin)}`;
    const bytes = secret.data.get(origin.key);
    if (bytes === undefined) {
      return { reason: `${label} has no key ${origin.key} (field ${field})` };
    }
    try {
      data.set(field, utf8.decode(bytes));
    } catch {
      return {
        reason: `field ${field} (${label} key ${origin.key}) is binary, not UTF-8 text; KV v2 stores text, so write it by hand (for example base64-encoded) and adapt the app`,
      };
    }
  }
  return { data };
}

/** Decides the write for one path. */
export function planPath(
  want: WantedPath,
  secrets: ReadonlyMap<string, SourceSecret>,
  state: VaultPathState,
  flags: ImportFlags,
  nameOf: SourceNaming = secretKey,
): PathPlan {
  const fields = [...want.fields.keys()].sort();
  const base = { vaultPath: want.vaultPath, fields, cas: 0, keepExisting: false };
  if (want.conflicts.length > 0) {
    return { ...base, action: 'fail', reason: `conflicting plan: ${want.conflicts.join('; ')}` };
  }
  if (want.fields.size === 0) {
    if (want.vaultAgent) {
      return {
        ...base,
        action: 'skip-vault-agent',
        reason:
          'source is a Vault Agent file or an ExternalSecret: its values are already in vault',
      };
    }
    return { ...base, action: 'fail', reason: 'the plan maps no fields to this path' };
  }
  const have = state.kind === 'found' ? new Set(state.keys) : new Set<string>();
  const missingInVault = fields.filter((f) => !have.has(f));
  if (state.kind === 'found') {
    // Decided before reading the source: a path that is complete in vault is
    // kept even when its Secret is gone, so a re-run after the Secrets were
    // deleted still passes.
    if (!flags.overwrite && missingInVault.length === 0) {
      return { ...base, action: 'keep', reason: 'exists (pass --overwrite to replace)' };
    }
    if (!flags.overwrite && !flags.merge) {
      const present = fields.filter((f) => have.has(f));
      return {
        ...base,
        action: 'fail',
        reason: `exists with ${present.length > 0 ? `field(s) ${present.join(', ')} but ` : 'other fields, '}without ${missingInVault.join(', ')}; pass --merge to add the missing field(s), or --overwrite to replace`,
      };
    }
  }
  const values = sourceValues(want, secrets, nameOf);
  if ('reason' in values) return { ...base, action: 'fail', reason: values.reason };
  switch (state.kind) {
    case 'missing':
      return { ...base, action: 'create', reason: 'new path', data: values.data };
    case 'gone':
      return {
        ...base,
        action: 'create',
        reason: `new version (latest v${state.version} is ${state.how})`,
        cas: state.version,
        data: values.data,
      };
    case 'found': {
      if (flags.overwrite) {
        return {
          ...base,
          action: 'overwrite',
          reason: flags.merge
            ? `new version v${state.version + 1}, fields the plan does not map kept`
            : `new version v${state.version + 1} (v${state.version} stays in history)`,
          cas: state.version,
          data: values.data,
          keepExisting: flags.merge,
        };
      }
      // --merge: add only the missing fields; existing values stay as they are.
      const added = new Map([...values.data].filter(([f]) => missingInVault.includes(f)));
      return {
        ...base,
        fields: missingInVault,
        action: 'merge',
        reason: `adds ${missingInVault.join(', ')} as v${state.version + 1}, existing fields kept`,
        cas: state.version,
        data: added,
        keepExisting: true,
      };
    }
  }
}

/** Whether deciding a path needs its values from the source (kept paths do not). */
export function needsSource(want: WantedPath, state: VaultPathState, flags: ImportFlags): boolean {
  if (want.conflicts.length > 0 || want.fields.size === 0) return false;
  if (state.kind !== 'found' || flags.overwrite) return true;
  const have = new Set(state.keys);
  const complete = [...want.fields.keys()].every((f) => have.has(f));
  return !complete && flags.merge;
}

/** The source secrets a set of paths needs, each once, by the source's name for it. */
export function neededSecrets(
  wanted: readonly WantedPath[],
  nameOf: SourceNaming = secretKey,
): Map<string, FieldOrigin> {
  const seen = new Map<string, FieldOrigin>();
  for (const w of wanted) {
    for (const o of w.fields.values()) {
      const k = nameOf(o, w.vaultPath);
      if (!seen.has(k)) seen.set(k, o);
    }
  }
  return seen;
}

export { secretKey };
