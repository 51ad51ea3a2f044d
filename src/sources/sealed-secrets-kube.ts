// Bitnami Sealed Secrets as a source of values, the cluster part: listing and
// reading SealedSecrets and which Secrets they own (cleanup retires them:
// cleanup/writers.ts). Plus the glue `discover --from sealed-secrets` and
// `import --from sealed-secrets` use.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { readFailureReason } from '../core/read-failure.js';
import { referencedSources, type SecretKeys, type WorkloadObject } from '../contract/workload.js';
import type { KubeTarget } from '../kube/config.js';
import { KubeApiError, kubeError, statusOf } from '../kube/errors.js';
import { listAll, restPages } from '../kube/list.js';
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
  type SealedFound,
  type SealedSecretObject,
  type Unsealed,
} from './sealed-secrets.js';

const RESOURCE = 'sealedsecrets.bitnami.com';

/** Every SealedSecret (in `namespace` only, when given). */
export async function listSealedSecrets(
  target: KubeTarget,
  namespace: string | undefined,
): Promise<SealedSecretObject[]> {
  const rest = new KubeRest(target);
  try {
    return await listAll(
      restPages<SealedSecretObject>(
        rest,
        resourcePath(SEALED_GROUP_VERSION, SEALED_PLURAL, namespace),
      ),
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
 * the SealedSecret) rather than from the unsealed Secret. Ownership comes
 * from the scan's Secret list (its ownerReferences), not one GET per
 * SealedSecret.
 */
export async function sealedScan(
  target: KubeTarget,
  namespace: string | undefined,
  scan: { workloads: readonly WorkloadObject[]; secrets: readonly SecretKeys[] },
): Promise<SealedScan> {
  const list = await listSealedSecrets(target, namespace);
  const secrets = new Map(scan.secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const sealed = new Map<string, SealedSource>();
  const notOwned: string[] = [];
  for (const ss of list) {
    const ns = ss.metadata?.namespace ?? '';
    const name = ss.metadata?.name ?? '';
    const id = `${ns}/${name}`;
    // The controller sets that ownerReference on the Secret it unseals; a
    // Secret of the same name without it is left alone by the controller.
    const prev = secrets.get(id);
    if (prev && !(prev.owners ?? []).some((o) => o.kind === SEALED_KIND && o.name === name)) {
      notOwned.push(id);
      continue;
    }
    sealed.set(id, { namespace: ns, name, notUnsealed: prev === undefined });
    secrets.set(id, { ...prev, namespace: ns, name, keys: sealedKeys(ss) });
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

/** Unseals one SealedSecret in memory. */
export type OfflineUnsealer = (namespace: string, name: string) => Promise<Unsealed>;

/** Where an offline unseal finds a SealedSecret: the cluster, or a git checkout. */
export type SealedLookup = (namespace: string, name: string) => Promise<SealedFound>;

/** The SealedSecret objects of the cluster; a missing one is reported by name. */
export function clusterLookup(target: KubeTarget): SealedLookup {
  return async (namespace, name) => {
    const sealed = await getSealedSecret(target, namespace, name);
    return sealed ? { sealed } : { missing: `SealedSecret ${namespace}/${name} not found` };
  };
}

/**
 * `import --from sealed-secrets --sealing-key FILE`: the values come from the
 * SealedSecret objects (in the cluster, or with `--repo` in git), unsealed
 * here with the controller's private key(s), for teams whose controller
 * cannot be asked (air-gapped, or gone). The key file is read once; its
 * contents never leave this process's memory.
 */
export async function offlineUnsealer(
  file: string,
  lookup: SealedLookup,
  ctx: Context,
): Promise<OfflineUnsealer> {
  let text: string;
  try {
    text = await readFile(resolve(ctx.cwd, file), 'utf8');
  } catch (e) {
    throw new UserError(`--sealing-key ${file}: ${readFailureReason(e)}`);
  }
  const keys = parseSealingKeys(text, `--sealing-key ${file}`);
  return async (namespace, name) => {
    const found = await lookup(namespace, name);
    return 'missing' in found
      ? { kind: 'missing', reason: found.missing }
      : unseal(found.sealed, keys);
  };
}
