// Reading and patching one Deployment/StatefulSet/DaemonSet by kind, so the
// callers never switch on kind themselves.
import {
  PatchStrategy,
  type V1DaemonSet,
  type V1Deployment,
  type V1StatefulSet,
} from '@kubernetes/client-node';
import type { WorkloadKind } from '../plan/model.js';
import type { KubeTarget } from './config.js';
import { kubeError, statusOf } from './errors.js';
import { listAll, restPages } from './list.js';
import { KubeRest, resourcePath } from './rest.js';

export type LiveWorkload = (V1Deployment | V1StatefulSet | V1DaemonSet) & { kind: WorkloadKind };

export interface WorkloadId {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

const RESOURCE: Record<WorkloadKind, string> = {
  Deployment: 'deployments.apps',
  StatefulSet: 'statefulsets.apps',
  DaemonSet: 'daemonsets.apps',
};
const PLURAL: Record<WorkloadKind, string> = {
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
};

/** Tags an object with its kind (list and get responses leave `kind` unset). */
function withKind<T extends object>(o: T, kind: WorkloadKind): T & { kind: WorkloadKind } {
  return Object.assign(o, { kind });
}

export class Workloads {
  // get, list and patch go through plain JSON requests (see rest.ts): the
  // generated client's object model cost protect a second of CPU and most
  // of its garbage at 2,000 workloads.
  private readonly rest: KubeRest;

  constructor(private readonly target: KubeTarget) {
    this.rest = new KubeRest(target);
  }

  /** The live object, or undefined when it does not exist. */
  async get(id: WorkloadId): Promise<LiveWorkload | undefined> {
    const p = { name: id.name, namespace: id.namespace };
    try {
      const path = resourcePath('apps/v1', PLURAL[id.kind], id.namespace, id.name);
      return withKind(await this.rest.call<LiveWorkload>({ method: 'GET', path }), id.kind);
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw kubeError(e, { verb: 'get', resource: RESOURCE[id.kind], ...p }, this.target.server);
    }
  }

  /**
   * Every workload of one kind (in one namespace, or cluster-wide), read in
   * pages; only those `keep` accepts are returned, without their
   * managedFields, so memory follows what the caller wants, not the cluster.
   */
  async list(
    kind: WorkloadKind,
    namespace: string | undefined,
    keep: (w: LiveWorkload) => boolean,
  ): Promise<LiveWorkload[]> {
    const kept = await listAll(
      restPages<LiveWorkload>(this.rest, resourcePath('apps/v1', PLURAL[kind], namespace)),
      (o) => {
        const w = withKind(o, kind);
        if (!keep(w)) return undefined;
        if (w.metadata) delete w.metadata.managedFields;
        return w;
      },
      { verb: 'list', resource: RESOURCE[kind], ...(namespace ? { namespace } : {}) },
      this.target.server,
    );
    return kept.filter((w): w is LiveWorkload => w !== undefined);
  }

  /**
   * Strategic merge patch of the pod template's annotations (null deletes a
   * key). With `resourceVersion`, the server refuses (409) if the object
   * changed since it was read. Errors keep their HTTP status for the caller.
   */
  async patchTemplateAnnotations(
    id: WorkloadId,
    annotations: Record<string, string | null>,
    opts: { resourceVersion?: string | undefined; dryRun?: boolean } = {},
  ): Promise<LiveWorkload> {
    const body = {
      ...(opts.resourceVersion ? { metadata: { resourceVersion: opts.resourceVersion } } : {}),
      spec: { template: { metadata: { annotations } } },
    };
    return this.sendPatch(id, body, PatchStrategy.StrategicMergePatch, opts.dryRun);
  }

  /**
   * A JSON Patch (RFC 6902) of the workload. With `resourceVersion` the
   * patch first sets it, so the server refuses (409) if the object changed
   * since it was read; `test` operations in `ops` guard list indices. Errors
   * keep their HTTP status for the caller.
   */
  async patchJson(
    id: WorkloadId,
    ops: readonly unknown[],
    opts: { resourceVersion?: string | undefined; dryRun?: boolean } = {},
  ): Promise<LiveWorkload> {
    const body = [
      ...(opts.resourceVersion
        ? [{ op: 'replace', path: '/metadata/resourceVersion', value: opts.resourceVersion }]
        : []),
      ...ops,
    ];
    return this.sendPatch(id, body, PatchStrategy.JsonPatch, opts.dryRun);
  }

  /** One PATCH of a workload; errors become KubeApiErrors that keep their HTTP status. */
  private async sendPatch(
    id: WorkloadId,
    body: unknown,
    contentType: PatchStrategy,
    dryRun: boolean | undefined,
  ): Promise<LiveWorkload> {
    try {
      const patched = await this.rest.call<LiveWorkload>({
        method: 'PATCH',
        path: resourcePath('apps/v1', PLURAL[id.kind], id.namespace, id.name),
        query: { fieldManager: 'cloudtaser', dryRun: dryRun ? 'All' : undefined },
        body,
        contentType,
      });
      // Not needed by any caller, and the largest part of the reply.
      if (patched.metadata) delete patched.metadata.managedFields;
      return withKind(patched, id.kind);
    } catch (e) {
      throw kubeError(
        e,
        { verb: 'patch', resource: RESOURCE[id.kind], name: id.name, namespace: id.namespace },
        this.target.server,
      );
    }
  }

  /**
   * The key names of a Secret (its values are dropped on arrival): null when
   * it does not exist, undefined when it cannot be read (RBAC, say).
   */
  async secretKeys(namespace: string, name: string): Promise<string[] | null | undefined> {
    try {
      const s = await this.rest.call<{ data?: Record<string, unknown>; stringData?: unknown }>({
        method: 'GET',
        path: resourcePath('v1', 'secrets', namespace, name),
      });
      return Object.keys(s.data ?? {});
    } catch (e) {
      const status = statusOf(e);
      if (status === 404) return null;
      if (status !== undefined) return undefined;
      throw kubeError(e, { verb: 'get', resource: 'secrets', name, namespace }, this.target.server);
    }
  }
}

/** Whether a template change replaces pods by itself, or waits for them to be deleted. */
export function updateStrategy(w: LiveWorkload): 'rolling' | 'on-delete' {
  if (w.kind === 'Deployment') return 'rolling';
  const spec = w.spec as { updateStrategy?: { type?: string } } | undefined;
  return spec?.updateStrategy?.type === 'OnDelete' ? 'on-delete' : 'rolling';
}

export function isPaused(w: LiveWorkload): boolean {
  return w.kind === 'Deployment' && (w.spec as { paused?: boolean } | undefined)?.paused === true;
}

export interface RolloutProgress {
  done: boolean;
  message: string;
  /** The controller has seen the current generation (the counts below are about it). */
  observed: boolean;
  /** The controller gave up: the rollout cannot finish by itself (ProgressDeadlineExceeded). */
  failed?: string;
}

interface StatusFields {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  availableReplicas?: number;
  readyReplicas?: number;
  updatedNumberScheduled?: number;
  desiredNumberScheduled?: number;
  numberAvailable?: number;
  currentRevision?: string;
  updateRevision?: string;
  conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
}

/**
 * Rollout state by the rules `kubectl rollout status` applies: nothing
 * counts until the controller has observed the new generation; then a
 * Deployment is done when every replica is updated, no old replica is left
 * and every updated one is available (Ready for minReadySeconds); a
 * DaemonSet when every scheduled pod is updated and available; a
 * StatefulSet when every replica is Ready and the pods above the partition
 * are on the update revision (OnDelete: every pod, once restarted).
 */
export function rolloutProgress(w: LiveWorkload): RolloutProgress {
  const generation = w.metadata?.generation ?? 0;
  const st = (w.status ?? {}) as StatusFields;
  const observed = st.observedGeneration ?? 0;
  if (observed === 0 || observed < generation) {
    return {
      done: false,
      observed: false,
      message: 'waiting for the controller to observe the change',
    };
  }
  if (w.kind === 'DaemonSet') {
    const want = st.desiredNumberScheduled ?? 0;
    const updated = st.updatedNumberScheduled ?? 0;
    const available = st.numberAvailable ?? 0;
    return {
      done: updated >= want && available >= want,
      observed: true,
      message: `${updated}/${want} updated, ${available}/${want} available`,
    };
  }
  const want = (w.spec as { replicas?: number } | undefined)?.replicas ?? 1;
  const updated = st.updatedReplicas ?? 0;
  if (w.kind === 'Deployment') {
    const available = st.availableReplicas ?? 0;
    const total = st.replicas ?? 0;
    const message =
      `${updated}/${want} updated, ${available}/${want} available` +
      (total > updated ? `, ${total - updated} old pending termination` : '');
    const progressing = st.conditions?.find((c) => c.type === 'Progressing');
    if (progressing?.reason === 'ProgressDeadlineExceeded') {
      const deadline = (w.spec as { progressDeadlineSeconds?: number } | undefined)
        ?.progressDeadlineSeconds;
      return {
        done: false,
        observed: true,
        message,
        failed: `progress deadline exceeded (no progress for ${deadline ?? 600} s)`,
      };
    }
    return {
      done: updated >= want && total <= updated && available >= updated,
      observed: true,
      message,
    };
  }
  const ready = st.readyReplicas ?? 0;
  const message = `${updated}/${want} updated, ${ready}/${want} ready`;
  const strategy = (
    w.spec as
      { updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } } } | undefined
  )?.updateStrategy;
  if (ready < want) return { done: false, observed: true, message };
  if (strategy?.type === 'OnDelete') return { done: updated >= want, observed: true, message };
  const partition = strategy?.rollingUpdate?.partition ?? 0;
  return { done: updated >= want - partition, observed: true, message };
}
