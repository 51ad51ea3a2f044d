// The objects that would write a planned Secret back after cleanup deleted
// it: its SealedSecret (the Sealed Secrets controller unseals it again) and
// the ExternalSecrets that target it (ESO syncs it again). Cleanup deletes
// them first with propagation Orphan, so the Secret stays for its own check,
// and waits until the API server has removed them: only then has the garbage
// collector dropped the Secret's ownerReference, and no controller writes
// the Secret any more.
import { pause } from '../core/context.js';
import { kubeError, statusOf } from '../kube/errors.js';
import { resourcePath, type KubeRest } from '../kube/rest.js';
import { ESO_GROUP_VERSION } from '../sources/eso-cluster.js';
import { SEALED_GROUP_VERSION, SEALED_PLURAL } from '../sources/sealed-secrets.js';
import type { PlannedSecret } from './decide.js';

export interface Writer {
  kind: 'SealedSecret' | 'ExternalSecret';
  namespace: string;
  name: string;
}

const API = {
  SealedSecret: {
    groupVersion: SEALED_GROUP_VERSION,
    plural: SEALED_PLURAL,
    resource: 'sealedsecrets.bitnami.com',
  },
  ExternalSecret: {
    groupVersion: ESO_GROUP_VERSION,
    plural: 'externalsecrets',
    resource: 'externalsecrets.external-secrets.io',
  },
} as const;

/** The writers to retire before a planned Secret, in the order they go. */
export function writersOf(p: PlannedSecret): Writer[] {
  return [
    ...(p.sealed ? [{ kind: 'SealedSecret' as const, namespace: p.namespace, name: p.name }] : []),
    ...p.externalSecrets.map((name) => ({
      kind: 'ExternalSecret' as const,
      namespace: p.namespace,
      name,
    })),
  ];
}

export const writerId = (w: Writer): string => `${w.kind} ${w.namespace}/${w.name}`;

export type Retired =
  { outcome: 'deleted' | 'gone' | 'interrupted' } | { outcome: 'blocked'; reason: string };

interface WriterJson {
  metadata?: { uid?: string };
  spec?: { target?: { name?: string } };
}

/**
 * Deletes one writer of `secret`, orphaning the Secret, and waits until it
 * is gone. Anything that stands in the way (it now writes another Secret, it
 * was replaced since it was read or created again after, a finalizer that
 * does not run) is returned as a reason, for the caller to refuse that Secret
 * and go on; Ctrl-C as 'interrupted', for the caller to stop.
 */
export async function retireWriter(
  rest: KubeRest,
  server: string,
  w: Writer,
  secret: string,
  signal?: AbortSignal,
  timeoutMs = 60_000,
): Promise<Retired> {
  const api = API[w.kind];
  const path = resourcePath(api.groupVersion, api.plural, w.namespace, w.name);
  const action = { resource: api.resource, namespace: w.namespace, name: w.name };
  const read = async (): Promise<WriterJson | undefined> => {
    try {
      return await rest.call<WriterJson>({ method: 'GET', path });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw kubeError(e, { verb: 'get', ...action }, server);
    }
  };
  if (signal?.aborted) return { outcome: 'interrupted' };
  const live = await read();
  if (live === undefined) return { outcome: 'gone' };
  // The Sealed Secrets controller names the Secret after its SealedSecret;
  // an ExternalSecret may have been pointed at another Secret since the plan.
  const writes = w.kind === 'ExternalSecret' ? (live.spec?.target?.name ?? w.name) : w.name;
  if (writes !== secret) {
    return {
      outcome: 'blocked',
      reason: `${writerId(w)} now writes Secret ${writes}, not ${secret}; re-run discover`,
    };
  }
  if (signal?.aborted) return { outcome: 'interrupted' };
  try {
    await rest.call({
      method: 'DELETE',
      path,
      body: {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        propagationPolicy: 'Orphan',
        preconditions: { uid: live.metadata?.uid ?? '' },
      },
    });
  } catch (e) {
    const status = statusOf(e);
    if (status === 404) return { outcome: 'gone' };
    if (status === 409) {
      return { outcome: 'blocked', reason: `${writerId(w)} was replaced while it was checked` };
    }
    throw kubeError(e, { verb: 'delete', ...action }, server);
  }
  const deadline = Date.now() + timeoutMs;
  for (let wait = 100; ; wait = Math.min(wait * 2, 1000)) {
    // Checked before the next request: every request is cancelled by the
    // same signal, and would fail as a server error.
    if (signal?.aborted) return { outcome: 'interrupted' };
    const now = await read();
    if (now === undefined) return { outcome: 'deleted' };
    if (now.metadata?.uid !== live.metadata?.uid) {
      // Applied again meanwhile (a GitOps tool syncing the repo): it would
      // write the Secret back.
      return {
        outcome: 'blocked',
        reason: `${writerId(w)} was created again after it was deleted (a GitOps sync?); remove it from git, then re-run`,
      };
    }
    if (Date.now() > deadline) {
      return {
        outcome: 'blocked',
        reason: `${writerId(w)} is still being deleted after ${Math.round(timeoutMs / 1000)} s (its orphan finalizer has not run: is the garbage collector of kube-controller-manager running?)`,
      };
    }
    await pause(wait, signal);
  }
}
