// What the reports know about the cluster: every workload's secret
// references, its cloudtaser annotations judged well-formed or not, and
// whether its live pods carry the cloudtaser-init container. Reading is done
// once with cluster-wide lists; judging is pure.
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { allSettledOrThrow } from '../core/concurrency.js';
import {
  referencedSources,
  SYSTEM_NAMESPACES,
  type SecretKeys,
  type WorkloadObject,
} from '../contract/workload.js';
import type { KubeTarget } from '../kube/config.js';
import { KubeApiError, kubeError, statusOf } from '../kube/errors.js';
import { listAll, PAGE_SIZE } from '../kube/list.js';
import { scanCluster, secretKeys } from '../kube/scan.js';
import { KV2_DATA_PATH, type WorkloadKind } from '../plan/model.js';
import {
  ANNOTATION,
  isPlainHttp,
  OWNED_ANNOTATIONS,
  parseEnvMap,
  parseFileMap,
  type EnvMapEntry,
} from '../contract/annotations.js';

export const INIT_CONTAINER = 'cloudtaser-init';

export type ProtectionState = 'protected' | 'partial' | 'unprotected' | 'not-applicable';
/**
 * rolled-out: every pod carries cloudtaser-init and is Ready; not-ready:
 * every pod carries it, but some are not Ready (starting, or failing: the
 * wrapper fails closed when it cannot read its secrets); old-template: some
 * pods run without it.
 */
export type RolloutState = 'rolled-out' | 'not-ready' | 'old-template' | 'no-pods';

export interface PodCounts {
  total: number;
  injected: number;
  ready: number;
}

export interface Protection {
  state: ProtectionState;
  /** What is missing or malformed, for `partial`. */
  problems: string[];
  vaultAddress?: string;
  role?: string;
  paths: string[];
  envMap: EnvMapEntry[];
}

export interface WorkloadFacts {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  serviceAccount: string;
  /** Plan-style sources: k8s-secret/<name>, vault-agent/<file>. */
  sources: string[];
  protection: Protection;
  pods: PodCounts;
  rollout: RolloutState;
}

export interface Inventory {
  server: string;
  clusterUid: string | undefined;
  workloads: WorkloadFacts[];
}

/** Judges a pod template's cloudtaser annotations. Pure. */
export function judgeProtection(
  annotations: Readonly<Record<string, string>> | undefined,
  hasSecretRefs: boolean,
): Protection {
  const a = annotations ?? {};
  const present = OWNED_ANNOTATIONS.filter((k) => k in a && k !== ANNOTATION.restartedAt);
  const empty: Protection = { state: 'not-applicable', problems: [], paths: [], envMap: [] };
  if (present.length === 0)
    return { ...empty, state: hasSecretRefs ? 'unprotected' : 'not-applicable' };

  const problems: string[] = [];
  const inject = a[ANNOTATION.inject];
  if (inject !== 'true')
    problems.push(
      `${ANNOTATION.inject} is ${inject === undefined ? 'missing' : `"${inject}", not "true"`}`,
    );
  const address = a[ANNOTATION.vaultAddress];
  if (!address) problems.push(`${ANNOTATION.vaultAddress} is missing`);
  else if (!/^https?:\/\/\S+$/.test(address))
    problems.push(`${ANNOTATION.vaultAddress} is not an http(s) URL`);
  else if (isPlainHttp(address) && a[ANNOTATION.allowInsecureVault] !== 'true')
    problems.push(
      `${ANNOTATION.vaultAddress} is plain http without ${ANNOTATION.allowInsecureVault}: "true" (the webhook refuses these pods)`,
    );
  const role = a[ANNOTATION.vaultRole];
  if (!role) problems.push(`${ANNOTATION.vaultRole} is missing`);
  const rawPaths = a[ANNOTATION.secretPaths];
  const paths = rawPaths
    ? rawPaths
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)
    : [];
  if (!rawPaths) problems.push(`${ANNOTATION.secretPaths} is missing`);
  else if (paths.length === 0 || paths.some((p) => !KV2_DATA_PATH.test(p))) {
    problems.push(`${ANNOTATION.secretPaths} is not a list of KV v2 data paths`);
  }
  const rawMap = a[ANNOTATION.envMap];
  const envMap = rawMap === undefined ? undefined : parseEnvMap(rawMap);
  if (rawMap === undefined) problems.push(`${ANNOTATION.envMap} is missing`);
  else if (!envMap) problems.push(`${ANNOTATION.envMap} is malformed`);
  else {
    const unlisted = [...new Set(envMap.map((e) => e.path))].filter((p) => !paths.includes(p));
    if (unlisted.length > 0)
      problems.push(
        `${ANNOTATION.envMap} reads paths not in ${ANNOTATION.secretPaths}: ${unlisted.join(', ')}`,
      );
  }
  const rawFiles = a[ANNOTATION.fileMap];
  const fileMap = rawFiles === undefined ? [] : parseFileMap(rawFiles);
  if (!fileMap) problems.push(`${ANNOTATION.fileMap} is malformed`);
  else {
    const unlisted = [...new Set(fileMap.map((e) => e.path))].filter((p) => !paths.includes(p));
    if (unlisted.length > 0)
      problems.push(
        `${ANNOTATION.fileMap} reads paths not in ${ANNOTATION.secretPaths}: ${unlisted.join(', ')}`,
      );
  }
  return {
    state: problems.length === 0 ? 'protected' : 'partial',
    problems,
    ...(address ? { vaultAddress: address } : {}),
    ...(role ? { role } : {}),
    paths,
    envMap: envMap ?? [],
  };
}

interface PodLite {
  namespace: string;
  owner: { kind: string; name: string } | undefined;
  injected: boolean;
  ready: boolean;
  /** Being deleted: no longer one of its controller's replicas (as kubectl counts them). */
  terminating: boolean;
}

/** Reads workloads, pods and ReplicaSets once and judges every workload. */
export async function readInventory(target: KubeTarget, namespace?: string): Promise<Inventory> {
  const core = target.api(CoreV1Api);
  const apps = target.api(AppsV1Api);
  const page = (cont: string | undefined) => ({
    limit: PAGE_SIZE,
    ...(cont ? { _continue: cont } : {}),
  });
  const [scan, pods, replicaSets, clusterUid] = await allSettledOrThrow([
    scanCluster(target, namespace, PAGE_SIZE, { secrets: false }),
    listAll(
      (cont) =>
        namespace
          ? core.listNamespacedPod({ namespace, ...page(cont) })
          : core.listPodForAllNamespaces(page(cont)),
      (p): PodLite => ({
        namespace: p.metadata?.namespace ?? '',
        owner:
          p.metadata?.ownerReferences?.find((o) => o.controller) ??
          p.metadata?.ownerReferences?.[0],
        injected: (p.spec?.initContainers ?? []).some((c) => c.name === INIT_CONTAINER),
        ready:
          p.status?.phase === 'Running' &&
          (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
        terminating: p.metadata?.deletionTimestamp !== undefined,
      }),
      { verb: 'list', resource: 'pods', namespace },
      target.server,
    ),
    listAll(
      (cont) =>
        namespace
          ? apps.listNamespacedReplicaSet({ namespace, ...page(cont) })
          : apps.listReplicaSetForAllNamespaces(page(cont)),
      (rs) => ({
        key: `${rs.metadata?.namespace ?? ''}/${rs.metadata?.name ?? ''}`,
        deployment: rs.metadata?.ownerReferences?.find((o) => o.kind === 'Deployment')?.name,
      }),
      { verb: 'list', resource: 'replicasets.apps', namespace },
      target.server,
    ),
    core.readNamespace({ name: 'kube-system' }).then(
      (ns) => ns.metadata?.uid,
      (e: unknown) => {
        // A namespaced user may not read kube-system; the report says so.
        if (statusOf(e) === 403) return undefined;
        throw kubeError(
          e,
          { verb: 'get', resource: 'namespaces', name: 'kube-system' },
          target.server,
        );
      },
    ),
  ]);

  const rsOwner = new Map(replicaSets.map((r) => [r.key, r.deployment]));
  const podsByWorkload = new Map<string, PodCounts>();
  for (const p of pods) {
    // A pod of the old template still shutting down after the rollout is not
    // a replica any more: counted, it made status say old-template right
    // after `kubectl rollout status` had said the rollout finished.
    if (!p.owner || p.terminating) continue;
    let kind = p.owner.kind;
    let name = p.owner.name;
    if (kind === 'ReplicaSet') {
      const dep = rsOwner.get(`${p.namespace}/${name}`);
      if (!dep) continue;
      kind = 'Deployment';
      name = dep;
    }
    const key = `${p.namespace}/${kind}/${name}`;
    const c = podsByWorkload.get(key) ?? { total: 0, injected: 0, ready: 0 };
    c.total++;
    if (p.injected) c.injected++;
    if (p.ready) c.ready++;
    podsByWorkload.set(key, c);
  }

  const workloads = scan.workloads
    .filter((w) => !SYSTEM_NAMESPACES.has(w.metadata.namespace))
    .map((w) => workloadFacts(w, podsByWorkload))
    .sort(
      (a, b) =>
        a.namespace.localeCompare(b.namespace) ||
        a.kind.localeCompare(b.kind) ||
        a.name.localeCompare(b.name),
    );
  return { server: target.server, clusterUid, workloads };
}

function workloadFacts(w: WorkloadObject, pods: ReadonlyMap<string, PodCounts>): WorkloadFacts {
  const sources = [...referencedSources(w)].sort();
  const protection = judgeProtection(w.spec?.template?.metadata?.annotations, sources.length > 0);
  const count = pods.get(`${w.metadata.namespace}/${w.kind}/${w.metadata.name}`) ?? {
    total: 0,
    injected: 0,
    ready: 0,
  };
  const spec = w.spec?.template?.spec;
  return {
    kind: w.kind,
    namespace: w.metadata.namespace,
    name: w.metadata.name,
    serviceAccount: spec?.serviceAccountName ?? spec?.serviceAccount ?? 'default',
    sources,
    protection,
    pods: count,
    rollout: rolloutState(count),
  };
}

/**
 * Key names of every Secret (in one namespace, or cluster-wide), for the
 * audit's count of Secrets still holding migrated values. The API cannot list
 * key names alone: values cross the wire and are dropped page by page. A user
 * who may not list Secrets gets undefined (the report says "unknown").
 */
export async function readSecretKeys(
  target: KubeTarget,
  namespace?: string,
): Promise<SecretKeys[] | undefined> {
  const core = target.api(CoreV1Api);
  const page = (cont: string | undefined) => ({
    limit: PAGE_SIZE,
    ...(cont ? { _continue: cont } : {}),
  });
  try {
    const all = await listAll(
      (cont) =>
        namespace
          ? core.listNamespacedSecret({ namespace, ...page(cont) })
          : core.listSecretForAllNamespaces(page(cont)),
      secretKeys,
      { verb: 'list', resource: 'secrets', namespace },
      target.server,
    );
    return all.filter((s) => !SYSTEM_NAMESPACES.has(s.namespace));
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 403) return undefined;
    throw e;
  }
}

/** Whether the live pods run the injected template, and are Ready on it. Pure. */
export function rolloutState(count: PodCounts): RolloutState {
  if (count.total === 0) return 'no-pods';
  if (count.injected < count.total) return 'old-template';
  return count.ready < count.total ? 'not-ready' : 'rolled-out';
}
