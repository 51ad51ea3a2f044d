// Reads what discovery needs from a cluster: Deployments, StatefulSets,
// DaemonSets, and the key names (never the values) of Secrets.
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { allSettledOrThrow } from '../core/concurrency.js';
import type { SecretKeys, WorkloadObject } from '../contract/workload.js';
import type { WorkloadKind } from '../plan/model.js';
import type { KubeTarget } from './config.js';
import { listAll, PAGE_SIZE, restPages, type Page } from './list.js';
import { KubeApiError } from './errors.js';
import { KubeRest, resourcePath } from './rest.js';

export interface ClusterScan {
  workloads: WorkloadObject[];
  secrets: SecretKeys[];
  /** Undefined when the user may not list namespaces. */
  namespaces: string[] | undefined;
}

interface RawWorkload {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: WorkloadObject['spec'];
}

function toWorkload(kind: WorkloadKind) {
  return (o: RawWorkload): WorkloadObject => ({
    kind,
    metadata: {
      name: o.metadata?.name ?? '',
      namespace: o.metadata?.namespace ?? '',
      ...(o.metadata?.labels ? { labels: o.metadata.labels } : {}),
    },
    ...(o.spec ? { spec: o.spec } : {}),
  });
}

/** A Secret as the API server's JSON has it; only what discovery reads. */
export interface RawSecret {
  metadata?: {
    name?: string;
    namespace?: string;
    ownerReferences?: { kind?: string; name?: string }[] | null;
  };
  type?: string;
  data?: Record<string, string> | null;
}

/** Key names only: the values in `data` are dropped here and never copied. */
export function secretKeys(s: RawSecret): SecretKeys {
  return {
    namespace: s.metadata?.namespace ?? '',
    name: s.metadata?.name ?? '',
    ...(s.type ? { type: s.type } : {}),
    keys: Object.keys(s.data ?? {}).sort(),
    ...(s.metadata?.ownerReferences?.length
      ? {
          owners: s.metadata.ownerReferences.map((o) => ({
            kind: o.kind ?? '',
            name: o.name ?? '',
          })),
        }
      : {}),
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
    // Secrets are read as plain JSON, not through the generated client: its
    // deserializer copies `data` into a `{}` by assignment, so a key named
    // `__proto__` (valid in Kubernetes) sets that object's prototype instead and
    // vanishes, and discover would not know an envFrom delivers that name.
    // JSON.parse keeps every key as an own property.
    opts.secrets === false
      ? Promise.resolve<SecretKeys[]>([])
      : listAll(
          restPages<RawSecret>(new KubeRest(target), resourcePath('v1', 'secrets', ns), pageSize),
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
