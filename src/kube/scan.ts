// Reads what discovery needs from a cluster: Deployments, StatefulSets,
// DaemonSets, and the key names (never the values) of Secrets.
import { AppsV1Api, CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { allSettledOrThrow } from '../core/concurrency.js';
import type { SecretKeys, WorkloadObject } from '../contract/workload.js';
import type { WorkloadKind } from '../plan/schema.js';
import type { KubeTarget } from './config.js';
import { listAll, PAGE_SIZE, type Page } from './list.js';
import { KubeApiError } from './errors.js';

export interface ClusterScan {
  workloads: WorkloadObject[];
  secrets: SecretKeys[];
  /** Undefined when the user may not list namespaces. */
  namespaces: string[] | undefined;
}

interface RawWorkload {
  metadata?: { name?: string; namespace?: string };
  spec?: WorkloadObject['spec'];
}

function toWorkload(kind: WorkloadKind) {
  return (o: RawWorkload): WorkloadObject => ({
    kind,
    metadata: { name: o.metadata?.name ?? '', namespace: o.metadata?.namespace ?? '' },
    ...(o.spec ? { spec: o.spec } : {}),
  });
}

/** Key names only: the values in `data` are dropped here and never copied. */
export function secretKeys(s: V1Secret): SecretKeys {
  return {
    namespace: s.metadata?.namespace ?? '',
    name: s.metadata?.name ?? '',
    ...(s.type ? { type: s.type } : {}),
    keys: Object.keys(s.data ?? {}).sort(),
  };
}

/**
 * Lists everything in parallel: cluster-wide with pagination when no
 * namespace is given (one list per kind, not one per namespace).
 */
export async function scanCluster(
  target: KubeTarget,
  namespace?: string,
  pageSize: number = PAGE_SIZE,
  opts: { secrets?: boolean } = {},
): Promise<ClusterScan> {
  const apps = target.api(AppsV1Api);
  const core = target.api(CoreV1Api);
  const server = target.server;
  const ns = namespace;
  const pager =
    <T>(
      all: (p: { limit: number; _continue?: string }) => Promise<Page<T>>,
      one: (p: { namespace: string; limit: number; _continue?: string }) => Promise<Page<T>>,
    ) =>
    (cont: string | undefined): Promise<Page<T>> => {
      const base = { limit: pageSize, ...(cont ? { _continue: cont } : {}) };
      return ns ? one({ ...base, namespace: ns }) : all(base);
    };

  const [deployments, statefulSets, daemonSets, secrets, namespaces] = await allSettledOrThrow([
    listAll(
      pager(
        (p) => apps.listDeploymentForAllNamespaces(p),
        (p) => apps.listNamespacedDeployment(p),
      ),
      toWorkload('Deployment'),
      { verb: 'list', resource: 'deployments.apps', namespace: ns },
      server,
    ),
    listAll(
      pager(
        (p) => apps.listStatefulSetForAllNamespaces(p),
        (p) => apps.listNamespacedStatefulSet(p),
      ),
      toWorkload('StatefulSet'),
      { verb: 'list', resource: 'statefulsets.apps', namespace: ns },
      server,
    ),
    listAll(
      pager(
        (p) => apps.listDaemonSetForAllNamespaces(p),
        (p) => apps.listNamespacedDaemonSet(p),
      ),
      toWorkload('DaemonSet'),
      { verb: 'list', resource: 'daemonsets.apps', namespace: ns },
      server,
    ),
    opts.secrets === false
      ? Promise.resolve<SecretKeys[]>([])
      : listAll(
          pager(
            (p) => core.listSecretForAllNamespaces(p),
            (p) => core.listNamespacedSecret(p),
          ),
          secretKeys,
          { verb: 'list', resource: 'secrets', namespace: ns },
          server,
        ),
    ns ? Promise.resolve<string[] | undefined>([ns]) : listNamespaceNames(core, server, pageSize),
  ]);
  return { workloads: [...deployments, ...statefulSets, ...daemonSets], secrets, namespaces };
}

/** Namespace names for the summary; a user who may not list them still gets a plan. */
async function listNamespaceNames(
  core: CoreV1Api,
  server: string,
  pageSize: number,
): Promise<string[] | undefined> {
  try {
    return await listAll(
      (cont) => core.listNamespace({ limit: pageSize, ...(cont ? { _continue: cont } : {}) }),
      (n) => n.metadata?.name ?? '',
      { verb: 'list', resource: 'namespaces' },
      server,
    );
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 403) return undefined;
    throw e;
  }
}
