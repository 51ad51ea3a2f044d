// Bitnami Sealed Secrets as a source of values, the cluster part: listing and
// reading SealedSecrets, which Secrets they own, and deleting one before its
// Secret during cleanup. Plus the glue `discover --from sealed-secrets` and
// `import --from sealed-secrets` use.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pause, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { referencedSources, type SecretKeys, type WorkloadObject } from '../contract/workload.js';
import type { KubeTarget } from '../kube/config.js';
import { KubeApiError, kubeError, statusOf } from '../kube/errors.js';
import { listAll, PAGE_SIZE, type Page } from '../kube/list.js';
import { KubeRest, resourcePath } from '../kube/rest.js';
import type { MigrationPlan } from '../plan/schema.js';
import type { PlanNote } from '../plan/write.js';
import {
  SEALED_GROUP_VERSION,
  SEALED_KIND,
  SEALED_PLURAL,
  parseSealingKeys,
  sealedKeys,
  unseal,
  type SealedSecretObject,
  type Unsealed,
} from './sealed-secrets.js';

const RESOURCE = 'sealedsecrets.bitnami.com';

interface ListReply<T> {
  items: T[];
  metadata?: { continue?: string };
}

/** Every SealedSecret (in `namespace` only, when given). */
export async function listSealedSecrets(
  target: KubeTarget,
  namespace: string | undefined,
): Promise<SealedSecretObject[]> {
  const rest = new KubeRest(target);
  const path = resourcePath(SEALED_GROUP_VERSION, SEALED_PLURAL, namespace);
  const page = async (cont: string | undefined): Promise<Page<SealedSecretObject>> => {
    const l = await rest.call<ListReply<SealedSecretObject>>({
      method: 'GET',
      path,
      query: { limit: String(PAGE_SIZE), continue: cont },
    });
    return { items: l.items, metadata: { _continue: l.metadata?.continue } };
  };
  try {
    return await listAll(
      page,
      (s) => s,
      { verb: 'list', resource: RESOURCE, namespace },
      target.server,
    );
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 404) {
      throw new UserError(
        `the cluster serves no SealedSecret resource (${RESOURCE}): is Sealed Secrets installed in context ${target.context}?`,
        'without --from sealed-secrets, discover plans the Secrets as k8s-secret/<name>',
      );
    }
    throw e;
  }
}

/** One SealedSecret, or undefined when it does not exist. */
export async function getSealedSecret(
  target: KubeTarget,
  namespace: string,
  name: string,
): Promise<SealedSecretObject | undefined> {
  try {
    return await new KubeRest(target).call<SealedSecretObject>({
      method: 'GET',
      path: resourcePath(SEALED_GROUP_VERSION, SEALED_PLURAL, namespace, name),
    });
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw kubeError(e, { verb: 'get', resource: RESOURCE, namespace, name }, target.server);
  }
}

interface SecretMeta {
  metadata?: { ownerReferences?: { kind?: string; name?: string; apiVersion?: string }[] };
}

/**
 * Whether Secret `namespace/name` is owned by the SealedSecret of that name
 * (the controller sets that ownerReference on what it unseals): 'missing'
 * when the Secret does not exist. The reply carries the values too (the API
 * has no metadata-only get for a typed client here); only the owners are kept.
 */
async function ownedBySealed(
  rest: KubeRest,
  target: KubeTarget,
  namespace: string,
  name: string,
): Promise<'owned' | 'not-owned' | 'missing'> {
  let s: SecretMeta;
  try {
    s = await rest.call<SecretMeta>({
      method: 'GET',
      path: resourcePath('v1', 'secrets', namespace, name),
    });
  } catch (e) {
    if (statusOf(e) === 404) return 'missing';
    throw kubeError(e, { verb: 'get', resource: 'secrets', namespace, name }, target.server);
  }
  const owners = s.metadata?.ownerReferences ?? [];
  return owners.some((o) => o.kind === SEALED_KIND && o.name === name) ? 'owned' : 'not-owned';
}

/** A Secret discover plans as `sealed-secret/<name>`. */
export interface SealedSource {
  namespace: string;
  name: string;
  /** The controller has not unsealed it (yet): no Secret of that name exists. */
  notUnsealed: boolean;
}

export interface SealedScan {
  workloads: WorkloadObject[];
  secrets: SecretKeys[];
  sealed: Map<string, SealedSource>;
  /** Secrets of a SealedSecret's name that the SealedSecret does not own: left as k8s-secret. */
  notOwned: string[];
}

/**
 * Narrows a cluster scan to what `discover --from sealed-secrets` plans:
 * the workloads that read at least one Secret a SealedSecret owns, with the
 * key names of those Secrets taken from `spec.encryptedData` (cleartext in
 * the SealedSecret) rather than from the unsealed Secret.
 */
export async function sealedScan(
  target: KubeTarget,
  namespace: string | undefined,
  scan: { workloads: readonly WorkloadObject[]; secrets: readonly SecretKeys[] },
): Promise<SealedScan> {
  const list = await listSealedSecrets(target, namespace);
  const rest = new KubeRest(target);
  const secrets = new Map(scan.secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const sealed = new Map<string, SealedSource>();
  const notOwned: string[] = [];
  for (const ss of list) {
    const ns = ss.metadata?.namespace ?? '';
    const name = ss.metadata?.name ?? '';
    const id = `${ns}/${name}`;
    const owned = await ownedBySealed(rest, target, ns, name);
    if (owned === 'not-owned') {
      notOwned.push(id);
      continue;
    }
    sealed.set(id, { namespace: ns, name, notUnsealed: owned === 'missing' });
    const prev = secrets.get(id);
    secrets.set(id, {
      namespace: ns,
      name,
      ...(prev?.type ? { type: prev.type } : {}),
      keys: sealedKeys(ss),
    });
  }
  const workloads = scan.workloads.filter((w) =>
    [...referencedSources(w)].some(
      (s) =>
        s.startsWith('k8s-secret/') &&
        sealed.has(`${w.metadata.namespace}/${s.slice('k8s-secret/'.length)}`),
    ),
  );
  return { workloads, secrets: [...secrets.values()], sealed, notOwned: notOwned.sort() };
}

/**
 * Rewrites the plan's sources that a SealedSecret delivers to
 * `sealed-secret/<name>` (same name: the controller names the Secret after
 * the SealedSecret) and adds a note for the reviewer.
 */
export function markSealedSources(
  plan: MigrationPlan,
  notes: PlanNote[],
  sealed: ReadonlyMap<string, SealedSource>,
): number {
  let n = 0;
  plan.tenants.forEach((t, ti) => {
    t.workloads.forEach((w, wi) => {
      w.secrets.forEach((s, si) => {
        if (!s.source.startsWith('k8s-secret/')) return;
        const name = s.source.slice('k8s-secret/'.length);
        const src = sealed.get(`${t.namespace}/${name}`);
        if (!src) return;
        s.source = `sealed-secret/${name}`;
        n++;
        const path = ['tenants', ti, 'workloads', wi, 'secrets', si];
        const text =
          `unsealed from SealedSecret ${t.namespace}/${name}; fields are its spec.encryptedData keys.` +
          (src.notUnsealed ? ' The controller has not unsealed it yet (no Secret exists).' : '') +
          ' After cleanup, remove its manifest from git.';
        const same = notes.find((x) => x.path.join('/') === path.join('/'));
        if (same) same.text = `${text}\n${same.text}`;
        else notes.push({ path, text });
      });
    });
  });
  return n;
}

/**
 * Deletes a SealedSecret so its controller stops writing the Secret back,
 * orphaning the Secret (cleanup deletes that itself, checked against vault),
 * and waits until the API server has removed it: only then has the garbage
 * collector dropped the Secret's ownerReference. `uid` guards against
 * deleting a SealedSecret recreated since the check.
 */
export async function deleteSealedSecret(
  target: KubeTarget,
  namespace: string,
  name: string,
  uid: string | undefined,
  signal?: AbortSignal,
  timeoutMs = 60_000,
): Promise<'deleted' | 'gone'> {
  const rest = new KubeRest(target);
  const path = resourcePath(SEALED_GROUP_VERSION, SEALED_PLURAL, namespace, name);
  try {
    await rest.call({
      method: 'DELETE',
      path,
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Orphan',
        ...(uid ? { preconditions: { uid } } : {}),
      },
    });
  } catch (e) {
    if (statusOf(e) === 404) return 'gone';
    throw kubeError(e, { verb: 'delete', resource: RESOURCE, namespace, name }, target.server);
  }
  const deadline = Date.now() + timeoutMs;
  for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
    if ((await getSealedSecret(target, namespace, name)) === undefined) return 'deleted';
    if (Date.now() > deadline) {
      throw new UserError(
        `SealedSecret ${namespace}/${name} is still being deleted after ${Math.round(timeoutMs / 1000)} s (its orphan finalizer has not run: is the garbage collector of kube-controller-manager running?)`,
      );
    }
    await pause(wait, signal);
  }
}

/** Reads one SealedSecret from the cluster and unseals it in memory. */
export type OfflineUnsealer = (
  target: KubeTarget,
  namespace: string,
  name: string,
) => Promise<Unsealed>;

/**
 * `import --from sealed-secrets --sealing-key FILE`: the values come from the
 * SealedSecret objects, unsealed here with the controller's private key(s),
 * for teams whose controller cannot be asked (air-gapped, or gone). The key
 * file is read once; its contents never leave this process's memory.
 */
export async function offlineUnsealer(file: string, ctx: Context): Promise<OfflineUnsealer> {
  let text: string;
  try {
    text = await readFile(resolve(ctx.cwd, file), 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      `--sealing-key ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'cannot be read'}`,
    );
  }
  const keys = parseSealingKeys(text, `--sealing-key ${file}`);
  return async (target, namespace, name) => {
    const ss = await getSealedSecret(target, namespace, name);
    if (!ss) return { kind: 'missing', reason: `SealedSecret ${namespace}/${name} not found` };
    return unseal(ss, keys);
  };
}
