// `--from kubernetes`: the Secret the plan names, in the workload's namespace,
// read from the API server of the current kubeconfig context.
import { CoreV1Api } from '@kubernetes/client-node';
import type { Context } from '../../core/context.js';
import { loadKube, type KubeTarget } from '../../kube/config.js';
import { kubeError, statusOf } from '../../kube/errors.js';
import { resolve } from 'node:path';
import {
  clusterLookup,
  offlineUnsealer,
  type SealedLookup,
} from '../../sources/sealed-secrets-kube.js';
import { scanManifests, sealedFromManifests } from '../../sources/sealed-secrets.js';
import { secretKey, type FieldOrigin, type SourceSecret } from '../plan.js';
import { withRetry } from './retry.js';
import type { ImportSource } from './source.js';

export function kubernetesSource(
  o: { kubeconfig?: string | undefined; context?: string | undefined },
  ctx: Context,
): ImportSource {
  const kube = loadKube({ kubeconfig: o.kubeconfig, context: o.context }, ctx.env, ctx.cwd);
  const core = kube.api(CoreV1Api);
  return {
    description: `Kubernetes (context ${kube.context})`,
    nameOf: secretKey,
    read: (_name, origin) => readSecret(core, kube.server, origin, ctx.signal),
    close: () => undefined,
  };
}

/**
 * `--from sealed-secrets`: the Secrets the controller unsealed, read as
 * `--from kubernetes` reads them; with `--sealing-key`, the SealedSecrets
 * themselves, unsealed here with the controller's private key(s): from the
 * cluster, or with `--repo` from the manifests in a git checkout, so that
 * nothing but vault is needed (plan entries that are not SealedSecrets are
 * still read from the cluster).
 */
export async function sealedSecretsSource(
  o: {
    kubeconfig?: string | undefined;
    context?: string | undefined;
    sealingKey?: string | undefined;
    repo?: string | undefined;
  },
  ctx: Context,
): Promise<ImportSource> {
  // Loaded when first needed: an offline import from git may have no cluster at all.
  let kube: KubeTarget | undefined;
  const cluster = (): KubeTarget =>
    (kube ??= loadKube({ kubeconfig: o.kubeconfig, context: o.context }, ctx.env, ctx.cwd));
  let core: CoreV1Api | undefined;
  const readFromCluster = (origin: FieldOrigin): Promise<SourceSecret> => {
    core ??= cluster().api(CoreV1Api);
    return readSecret(core, cluster().server, origin, ctx.signal);
  };
  if (o.sealingKey === undefined) {
    return {
      description: `Sealed Secrets (the Secrets the controller unsealed) (context ${cluster().context})`,
      nameOf: secretKey,
      read: (_name, origin) => readFromCluster(origin),
      close: () => undefined,
    };
  }
  let lookup: SealedLookup;
  let where: string;
  if (o.repo === undefined) {
    lookup = clusterLookup(cluster());
    where = `context ${cluster().context}`;
  } else {
    const repo = o.repo;
    const index = await scanManifests(resolve(ctx.cwd, repo), repo);
    lookup = (namespace, name) =>
      Promise.resolve(sealedFromManifests(index, namespace, name, repo));
    where = `manifests under ${repo}`;
  }
  const unsealer = await offlineUnsealer(o.sealingKey, lookup, ctx);
  return {
    description: `Sealed Secrets (SealedSecrets unsealed offline with --sealing-key) (${where})`,
    nameOf: secretKey,
    // Offline: a SealedSecret's values come from the SealedSecret, not its Secret.
    read: (_name, origin) =>
      origin.sealed ? unsealer(origin.namespace, origin.secret) : readFromCluster(origin),
    close: () => undefined,
  };
}

/**
 * Reads one Secret and keeps its keys as bytes. A Secret that does not exist
 * (or may not be read) fails the paths that need it, by name; an API server
 * that cannot be reached fails the run. Throttling (429) is retried with
 * backoff, bounded.
 */
async function readSecret(
  core: CoreV1Api,
  server: string,
  o: FieldOrigin,
  signal: AbortSignal | undefined,
): Promise<SourceSecret> {
  try {
    const s = await withRetry(
      () => core.readNamespacedSecret({ name: o.secret, namespace: o.namespace }),
      (e) => [429, 503].includes(statusOf(e) ?? 0),
      signal,
    );
    const data = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(s.data ?? {})) data.set(k, Buffer.from(v, 'base64'));
    return { kind: 'found', data };
  } catch (e) {
    const status = statusOf(e);
    if (status === 404) return { kind: 'missing', reason: `Secret ${secretKey(o)} not found` };
    const err = kubeError(
      e,
      { verb: 'get', resource: 'secrets', namespace: o.namespace, name: o.secret },
      server,
    );
    if (status === undefined) throw err;
    return { kind: 'missing', reason: err.message };
  }
}
