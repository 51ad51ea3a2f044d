// Discovery: workloads + secret key names → MigrationPlan. Pure: no I/O, no
// clock, no secret values (the input carries key names only), and the output
// is sorted so an unchanged cluster always yields the same plan.
import type { V1Container } from '@kubernetes/client-node';
import { AGENT_PREFIXES, ANNOTATION } from '../contract/annotations.js';
import {
  PART_OF_CLOUDTASER,
  SYSTEM_NAMESPACES,
  type SecretKeys,
  type WorkloadObject,
} from '../contract/workload.js';
import type { PlanNote } from '../plan/write.js';
import type { FileTarget, MigrationPlan, PlanWorkload, SecretRef, Tenant } from '../plan/schema.js';
import {
  ENV_VAR_NAME,
  FILE_PATH,
  PLAN_API_VERSION,
  PLAN_KIND,
  WORKLOAD_KINDS,
  type WorkloadKind,
} from '../plan/model.js';

export interface DiscoverOptions {
  kvMount: string;
  planName: string;
  cluster: string;
  /** The cluster's fingerprint (src/cluster), when it could be read. */
  clusterFingerprint?: string | undefined;
  createdAt: string;
  createdBy: string;
}

export type SkipReason =
  'system-namespace' | 'cloudtaser-component' | 'already-injected' | 'no-secret-references';

export interface DiscoverySummary {
  namespaces: number;
  workloadsFound: number;
  workloadsPlanned: number;
  skipped: { namespace: string; kind: WorkloadKind; name: string; reason: SkipReason }[];
  secretsMapped: number;
  missingSecrets: number;
}

export interface DiscoveryResult {
  plan: MigrationPlan;
  notes: PlanNote[];
  summary: DiscoverySummary;
}

const SA_TOKEN_TYPE = 'kubernetes.io/service-account-token';

/** Upper-cases a key and replaces what an env var name cannot hold. */
export function envNameFromKey(key: string): string {
  const up = key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  return /^[0-9]/.test(up) ? `_${up}` : up;
}

interface SecretAcc {
  source: string;
  vaultPath: string;
  /**
   * field → env var, first mapping wins. `delivered`: the containers read
   * this name today (env, envFrom), so it must keep its exact spelling and
   * wins over names made up for files (volumes, Vault Agent).
   */
  fields: Map<string, { env: string; delivered: boolean }>;
  /** field → the file the app reads it from today; first mount wins. */
  files: Map<string, FileTarget>;
  notes: string[];
}

/** Kubernetes file modes are decimal integers in the API; the plan writes octal strings. */
const octalMode = (mode: number): string => `0${(mode & 0o777).toString(8).padStart(3, '0')}`;

/** Where a container's environment variable comes from today. */
type EnvOrigin = { secret: string; key: string; acc: SecretAcc | undefined } | 'other';

function kindOrder(kind: WorkloadKind): number {
  return WORKLOAD_KINDS.indexOf(kind);
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Converts a Vault Agent path to the KV v2 API form where it is not already. */
function agentVaultPath(path: string): { path: string; converted: boolean } {
  const clean = path.replace(/^\/+|\/+$/g, '');
  if (/^[^/]+(\/[^/]+)*?\/data\/.+/.test(clean)) return { path: clean, converted: false };
  const [mount, ...rest] = clean.split('/');
  return { path: `${mount ?? ''}/data/${rest.join('/')}`, converted: true };
}

/** Field names a Vault Agent template reads: `.Data.data.x` and `index .Data.data "x"`. */
export function templateFields(template: string): string[] {
  const out = new Set<string>();
  for (const m of template.matchAll(/\.Data\.data\.([A-Za-z_][A-Za-z0-9_]*)/g)) out.add(m[1] ?? '');
  for (const m of template.matchAll(/index\s+\.Data\.data\s+"([^"]+)"/g)) out.add(m[1] ?? '');
  out.delete('');
  return [...out].sort(byString);
}

function planWorkload(
  w: WorkloadObject,
  secrets: ReadonlyMap<string, SecretKeys>,
  opts: DiscoverOptions,
): { workload: PlanWorkload; notes: Map<string, string[]>; missing: number } {
  const ns = w.metadata.namespace;
  const podSpec = w.spec?.template?.spec;
  const annotations = w.spec?.template?.metadata?.annotations ?? {};
  const accs = new Map<string, SecretAcc>();
  let missing = 0;

  const secretAcc = (name: string, optional: boolean | undefined): SecretAcc | undefined => {
    const known = secrets.get(`${ns}/${name}`);
    // Service-account token Secrets are cluster credentials, not app secrets.
    if (known?.type === SA_TOKEN_TYPE) return undefined;
    const source = `k8s-secret/${name}`;
    let acc = accs.get(source);
    if (!acc) {
      acc = {
        source,
        vaultPath: `${opts.kvMount}/data/${ns}/${name}`,
        fields: new Map(),
        files: new Map(),
        notes: [],
      };
      if (!known) {
        missing++;
        acc.notes.push(
          `Secret ${name} does not exist in namespace ${ns}${optional ? ' (referenced with optional: true)' : ''}; only the keys the workload names are listed.`,
        );
      }
      accs.set(source, acc);
    }
    return acc;
  };
  const addField = (acc: SecretAcc, field: string, env: string, delivered = false): void => {
    if (field === '__proto__') {
      // Valid in Kubernetes, but plan readers cannot keep such a key.
      acc.notes.push(`key __proto__ is not mapped: a plan cannot hold a field of that name.`);
      return;
    }
    const prev = acc.fields.get(field);
    if (prev === undefined) acc.fields.set(field, { env, delivered });
    else if (prev.env !== env) {
      acc.notes.push(`key ${field} is also read as ${env}; only ${prev.env} is mapped.`);
    }
  };

  const containers: V1Container[] = [
    ...(podSpec?.initContainers ?? []),
    ...(podSpec?.containers ?? []),
  ];
  // What each container's environment holds today, by name, in the
  // kubelet's order: every key of each envFrom Secret as prefix+key (a later
  // source replaces an earlier one), then each env entry (a later entry, or a
  // literal value, replaces what came before). Kubernetes 1.34 delivers any
  // printable-ASCII name but '=' (RelaxedEnvironmentVariableValidation is GA).
  const readers = new Map<string, EnvOrigin[]>();
  for (const c of containers) {
    const env = new Map<string, EnvOrigin>();
    for (const ef of c.envFrom ?? []) {
      const ref = ef.secretRef;
      if (!ref?.name) continue;
      const acc = secretAcc(ref.name, ref.optional);
      const keys = secrets.get(`${ns}/${ref.name}`)?.keys ?? [];
      for (const key of keys) {
        env.set(`${ef.prefix ?? ''}${key}`, { secret: ref.name, key, acc });
      }
      if (acc && keys.length === 0 && !secrets.has(`${ns}/${ref.name}`)) {
        acc.notes.push('envFrom: key names unknown until the Secret exists; add fields by hand.');
      }
    }
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      env.set(
        e.name,
        ref?.name && !e.value
          ? { secret: ref.name, key: ref.key, acc: secretAcc(ref.name, ref.optional) }
          : 'other',
      );
    }
    for (const [name, origin] of env) readers.set(name, [...(readers.get(name) ?? []), origin]);
  }
  // A name is mapped only when every container that reads it gets it from
  // the same Secret key (the env-map is one per pod, and the webhook drops
  // the Secret-fed entries it replaces), and when the env-map format can
  // carry it; anything else stays as it is and the reviewer is told why.
  for (const [name, origins] of [...readers].sort((a, b) => byString(a[0], b[0]))) {
    const fromSecrets = origins.filter((o) => o !== 'other');
    const first = fromSecrets[0];
    if (first === undefined) continue;
    const shown = JSON.stringify(name);
    const agreed =
      fromSecrets.length === origins.length &&
      fromSecrets.every((o) => o.secret === first.secret && o.key === first.key);
    if (!agreed) {
      for (const o of fromSecrets) {
        o.acc?.notes.push(
          `${shown} is not mapped: the containers read it from different sources; it stays as it is.`,
        );
      }
      continue;
    }
    if (!first.acc) continue;
    if (!ENV_VAR_NAME.test(name)) {
      first.acc.notes.push(
        `${shown} (key ${first.key}) is not mapped: the env-map carries only letters, digits and "_", not starting with a digit; the workload keeps reading it from the Secret.`,
      );
      continue;
    }
    addField(first.acc, first.key, name, true);
  }

  // Secret volumes, plain or projected: each key becomes a file at the path
  // the app reads it from today (the mount, the item's path, a subPath), with
  // the mode the volume gives it.
  const addFile = (acc: SecretAcc, field: string, target: FileTarget): void => {
    if (field === '__proto__') {
      acc.notes.push(`key __proto__ is not mapped: a plan cannot hold a field of that name.`);
      return;
    }
    const prev = acc.files.get(field);
    if (prev === undefined) acc.files.set(field, target);
    else if (prev.path !== target.path) {
      acc.notes.push(`key ${field} is also read at ${target.path}; only ${prev.path} is mapped.`);
    }
  };
  for (const v of podSpec?.volumes ?? []) {
    const sources: {
      name: string;
      items?: { key: string; path: string; mode?: number }[];
      optional?: boolean;
      defaultMode?: number;
    }[] = [];
    if (v.secret?.secretName) {
      sources.push({
        name: v.secret.secretName,
        items: v.secret.items,
        optional: v.secret.optional,
        defaultMode: v.secret.defaultMode,
      });
    }
    for (const p of v.projected?.sources ?? []) {
      if (p.secret?.name) {
        sources.push({
          name: p.secret.name,
          items: p.secret.items,
          optional: p.secret.optional,
          defaultMode: v.projected?.defaultMode,
        });
      }
    }
    if (sources.length === 0) continue;
    const mounts = containers
      .flatMap((c) => (c.volumeMounts ?? []).filter((m) => m.name === v.name))
      .sort((a, b) => byString(a.mountPath, b.mountPath));
    for (const s of sources) {
      const acc = secretAcc(s.name, s.optional);
      if (!acc) continue;
      // The API server fills in 0644 when the spec names no mode, so 0644
      // is read as "none chosen": the plan's default, 0400 (owner only),
      // applies; the wrapper writes the files as the container's user, who
      // can read them. Any other mode is kept.
      const defaultMode = s.defaultMode === 0o644 ? undefined : s.defaultMode;
      const entries =
        s.items?.map((i) => ({ key: i.key, rel: i.path, mode: i.mode ?? defaultMode })) ??
        (secrets.get(`${ns}/${s.name}`)?.keys ?? []).map((key) => ({
          key,
          rel: key,
          mode: defaultMode,
        }));
      for (const m of mounts) {
        const root = m.mountPath.replace(/\/+$/, '');
        if (m.subPathExpr) {
          acc.notes.push(
            `${m.mountPath} (volume ${v.name}) uses subPathExpr: its files are not mapped; add them by hand.`,
          );
          continue;
        }
        const sub = m.subPath?.replace(/^\/+|\/+$/g, '') ?? '';
        for (const e of entries) {
          const rel =
            sub === ''
              ? e.rel
              : e.rel === sub
                ? ''
                : e.rel.startsWith(`${sub}/`)
                  ? e.rel.slice(sub.length + 1)
                  : undefined;
          if (rel === undefined) continue;
          const path = rel === '' ? root : `${root}/${rel}`;
          if (!FILE_PATH.test(path) || !FILE_PATH.test(root)) {
            acc.notes.push(
              `key ${e.key} at ${path} is not mapped: a plan file path must be absolute and normalised, of letters, digits, "_", ".", "+", "@", "-".`,
            );
            continue;
          }
          addFile(acc, e.key, {
            path,
            mountPath: root,
            ...(e.mode === undefined ? {} : { mode: octalMode(e.mode) }),
          });
        }
      }
      const where = mounts.length > 0 ? ` at ${mounts.map((m) => m.mountPath).join(', ')}` : '';
      acc.notes.push(
        mounts.length > 0
          ? `mounted as files${where} (volume ${v.name}): delivered as files at the same paths${defaultMode === undefined && !s.items?.some((i) => i.mode !== undefined) ? '; Kubernetes gave them mode 0644, the plan default is 0400 (owner only, the container user)' : ''}.`
          : `volume ${v.name} is mounted by no container: nothing mapped.`,
      );
    }
  }

  // Vault Agent Injector: the secret already lives in vault.
  for (const prefix of AGENT_PREFIXES) {
    const secretPrefix = `${prefix}agent-inject-secret-`;
    for (const [key, value] of Object.entries(annotations)) {
      if (!key.startsWith(secretPrefix) || !value) continue;
      const file = key.slice(secretPrefix.length);
      if (!/^[-._a-zA-Z0-9]+$/.test(file)) continue;
      const { path, converted } = agentVaultPath(value);
      const acc: SecretAcc = {
        source: `vault-agent/${file}`,
        vaultPath: path,
        fields: new Map(),
        files: new Map(),
        notes: [],
      };
      if (converted) {
        acc.notes.push(
          `Vault Agent path ${value} converted to the KV v2 API form; check the mount.`,
        );
      }
      const template = annotations[`${prefix}agent-inject-template-${file}`];
      const fields = template ? templateFields(template) : [];
      for (const f of fields) addField(acc, f, envNameFromKey(f));
      acc.notes.push(
        fields.length > 0
          ? `from Vault Agent file ${file}; fields read from its template.`
          : `from Vault Agent file ${file}; the agent rendered the whole secret, so list the fields the app needs.`,
      );
      accs.set(acc.source, acc);
    }
  }

  // One env var, one source, across the whole pod. Names the containers read
  // today are placed first (they are already unique); a name made up for a
  // file is dropped when a container already has that name, whatever its
  // source, since the env-map would replace it.
  const sorted = [...accs.values()].sort((a, b) => byString(a.source, b.source));
  const envOwner = new Map<string, string>();
  for (const acc of sorted) {
    for (const [field, { env, delivered }] of acc.fields) {
      if (delivered) envOwner.set(env, `${acc.source}:${field}`);
    }
  }
  const secretsOut: SecretRef[] = [];
  const notes = new Map<string, string[]>();
  for (const acc of sorted) {
    const fields: [string, string][] = [];
    for (const [field, { env, delivered }] of [...acc.fields].sort((a, b) =>
      byString(a[0], b[0]),
    )) {
      if (!delivered) {
        const owner = envOwner.get(env);
        if (owner !== undefined || readers.has(env)) {
          const why =
            owner !== undefined ? `already mapped from ${owner}` : 'already set by the pod spec';
          acc.notes.push(`${field} → ${env} dropped: ${env} is ${why}.`);
          continue;
        }
        envOwner.set(env, `${acc.source}:${field}`);
      }
      fields.push([field, env]);
    }
    // fromEntries defines each key as an own property, so a field named
    // "__proto__" stays a field.
    const files = [...acc.files].sort((a, b) => byString(a[0], b[0]));
    secretsOut.push({
      source: acc.source,
      vaultPath: acc.vaultPath,
      fields: Object.fromEntries(fields),
      ...(files.length > 0 ? { files: Object.fromEntries(files) } : {}),
    });
    if (acc.notes.length > 0) notes.set(acc.source, [...new Set(acc.notes)]);
  }

  const workload: PlanWorkload = {
    kind: w.kind,
    name: w.metadata.name,
    ...(w.kind === 'DaemonSet' ? {} : { replicas: w.spec?.replicas ?? 1 }),
    serviceAccount: podSpec?.serviceAccountName ?? podSpec?.serviceAccount ?? 'default',
    status: 'pending',
    secrets: secretsOut,
  };
  return { workload, notes, missing };
}

/**
 * Builds a plan from the cluster's workloads and Secrets' key names.
 * `namespaces` lists the namespaces that were scanned (for the summary).
 */
export function discover(
  workloads: readonly WorkloadObject[],
  secrets: readonly SecretKeys[],
  opts: DiscoverOptions,
  namespaces?: readonly string[],
): DiscoveryResult {
  const secretIndex = new Map(secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const summary: DiscoverySummary = {
    namespaces: 0,
    workloadsFound: 0,
    workloadsPlanned: 0,
    skipped: [],
    secretsMapped: 0,
    missingSecrets: 0,
  };
  const byNamespace = new Map<string, { workload: PlanWorkload; notes: Map<string, string[]> }[]>();

  const sorted = [...workloads].sort(
    (a, b) =>
      byString(a.metadata.namespace, b.metadata.namespace) ||
      kindOrder(a.kind) - kindOrder(b.kind) ||
      byString(a.metadata.name, b.metadata.name),
  );
  for (const w of sorted) {
    const ns = w.metadata.namespace;
    const skip = (reason: SkipReason): void => {
      summary.skipped.push({ namespace: ns, kind: w.kind, name: w.metadata.name, reason });
    };
    if (SYSTEM_NAMESPACES.has(ns)) {
      skip('system-namespace');
      continue;
    }
    if (w.metadata.labels?.[PART_OF_CLOUDTASER.key] === PART_OF_CLOUDTASER.value) {
      skip('cloudtaser-component');
      continue;
    }
    summary.workloadsFound++;
    if (w.spec?.template?.metadata?.annotations?.[ANNOTATION.inject] === 'true') {
      skip('already-injected');
      continue;
    }
    const { workload, notes, missing } = planWorkload(w, secretIndex, opts);
    if (workload.secrets.length === 0) {
      skip('no-secret-references');
      continue;
    }
    summary.workloadsPlanned++;
    summary.secretsMapped += workload.secrets.length;
    summary.missingSecrets += missing;
    const list = byNamespace.get(ns) ?? [];
    list.push({ workload, notes });
    byNamespace.set(ns, list);
  }

  const scanned = new Set(
    (
      namespaces ?? [
        ...workloads.map((w) => w.metadata.namespace),
        ...secrets.map((s) => s.namespace),
      ]
    ).filter((n) => !SYSTEM_NAMESPACES.has(n)),
  );
  summary.namespaces = scanned.size;

  const tenants: Tenant[] = [];
  const notes: PlanNote[] = [];
  for (const ns of [...byNamespace.keys()].sort(byString)) {
    const entries = byNamespace.get(ns) ?? [];
    const ti = tenants.length;
    tenants.push({ name: ns, namespace: ns, workloads: entries.map((e) => e.workload) });
    entries.forEach((e, wi) => {
      e.workload.secrets.forEach((s, si) => {
        const text = e.notes.get(s.source);
        if (text) {
          notes.push({
            path: ['tenants', ti, 'workloads', wi, 'secrets', si],
            text: text.join('\n'),
          });
        }
      });
    });
  }

  const plan: MigrationPlan = {
    apiVersion: PLAN_API_VERSION,
    kind: PLAN_KIND,
    metadata: {
      name: opts.planName,
      cluster: opts.cluster,
      ...(opts.clusterFingerprint === undefined
        ? {}
        : { clusterFingerprint: opts.clusterFingerprint }),
      createdAt: opts.createdAt,
      createdBy: opts.createdBy,
    },
    tenants,
  };
  return { plan, notes, summary };
}
