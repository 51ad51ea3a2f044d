// Restarting the pods of an OnDelete StatefulSet or DaemonSet, one at a time.
//
// With updateStrategy OnDelete a changed pod template reaches a pod only when
// that pod is deleted. Deleting them all at once takes a StatefulSet below
// quorum and a DaemonSet down on every node, so this deletes one pod, waits
// until its replacement exists on the new template (its
// controller-revision-hash is the workload's current revision) and is Ready,
// and only then takes the next. Before each deletion every other pod of the
// set must be Ready, so at most one pod is ever missing or unready because of
// us. Pods already down are restarted first: they cost no availability.
//
// The decisions are pure functions of the observed pods (`nextStep`,
// `replacementState`); `restartOneAtATime` only reads, deletes and waits.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { KubeTarget } from '../kube/config.js';
import { kubeError, statusOf } from '../kube/errors.js';
import { podProblem } from '../kube/pod-problems.js';
import { REVISION_LABEL, RevisionPods } from '../kube/revision.js';
import type { LiveWorkload, Workloads } from '../kube/workloads.js';

/** What the restart needs to know about one pod. */
export interface PodView {
  name: string;
  uid: string;
  /** The controller revision the pod was created from. */
  revision: string;
  ready: boolean;
  terminating: boolean;
  /**
   * DaemonSet pods: the node the pod belongs to (its replacement lands there
   * too): where it runs, or the node its controller-set affinity names.
   */
  node: string;
  /** Why the pod cannot become Ready by itself (see pod-problems.ts). */
  problem?: string | undefined;
}

export type Step =
  { kind: 'done' } | { kind: 'wait'; why: string } | { kind: 'delete'; pod: PodView };

const ordinal = (name: string): number => Number(/-(\d+)$/.exec(name)?.[1] ?? -1);

/**
 * The next move, from the pods as they are now: done when none is left on an
 * old revision; otherwise delete one only when every other pod is Ready and
 * none is missing or terminating.
 */
export function nextStep(pods: readonly PodView[], revision: string, desired: number): Step {
  const live = pods.filter((p) => !p.terminating);
  const stale = live.filter((p) => p.revision !== revision);
  if (stale.length === 0) return { kind: 'done' };
  const terminating = pods.filter((p) => p.terminating);
  if (terminating.length > 0) {
    return { kind: 'wait', why: `pod ${terminating[0]?.name ?? ''} is still terminating` };
  }
  if (live.length < desired) {
    return { kind: 'wait', why: `${live.length} of ${desired} pod(s) exist` };
  }
  // Down already: restarting it costs nothing. Otherwise the StatefulSet
  // controller's own rolling order (highest ordinal first), then by name.
  const order = [...stale].sort(
    (a, b) =>
      Number(a.ready) - Number(b.ready) ||
      ordinal(b.name) - ordinal(a.name) ||
      a.name.localeCompare(b.name),
  );
  const pod = order[0] as PodView;
  const unready = live.filter((p) => p !== pod && !p.ready);
  if (unready.length > 0) {
    return {
      kind: 'wait',
      why: `pod ${unready.map((p) => p.name).join(', ')} is not Ready`,
    };
  }
  return { kind: 'delete', pod };
}

/**
 * True once the deleted pod's replacement is Ready on the new template,
 * otherwise what is missing. Its slot is its name (StatefulSet) or node (DaemonSet).
 */
export function replacementState(
  pods: readonly PodView[],
  deleted: PodView,
  kind: 'StatefulSet' | 'DaemonSet',
  revision: string,
): true | string | { stuck: string } {
  const slot = (p: PodView): boolean =>
    kind === 'StatefulSet' ? p.name === deleted.name : p.node === deleted.node;
  const candidates = pods.filter((p) => slot(p) && p.uid !== deleted.uid && !p.terminating);
  if (pods.some((p) => p.uid === deleted.uid)) return 'old pod still terminating';
  if (candidates.length === 0) return 'no replacement yet';
  const onNew = candidates.filter((p) => p.revision === revision);
  if (onNew.length === 0) return 'replacement is on an old template';
  if (onNew.some((p) => p.ready)) return true;
  // Waiting out --timeout on a crash loop only delays the report.
  const stuck = onNew.find((p) => p.problem);
  return stuck ? { stuck: `pod ${stuck.name}: ${stuck.problem ?? ''}` } : 'replacement not Ready';
}

export function viewOf(p: V1Pod): PodView {
  const conditions = p.status?.conditions ?? [];
  return {
    name: p.metadata?.name ?? '',
    uid: p.metadata?.uid ?? '',
    revision: p.metadata?.labels?.[REVISION_LABEL] ?? '',
    ready:
      p.status?.phase === 'Running' &&
      conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
    terminating: p.metadata?.deletionTimestamp !== undefined,
    node: p.spec?.nodeName ?? affinityNode(p) ?? '',
    problem: podProblem(p),
  };
}

/** The node a DaemonSet pod is pinned to before it is scheduled (matchFields metadata.name). */
function affinityNode(p: V1Pod): string | undefined {
  const terms =
    p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
      ?.nodeSelectorTerms ?? [];
  for (const t of terms) {
    for (const f of t.matchFields ?? []) {
      if (f.key === 'metadata.name' && f.operator === 'In' && f.values?.length === 1) {
        return f.values[0];
      }
    }
  }
  return undefined;
}

export interface RestartOptions {
  /** How long to wait for each step (the set to be Ready, each replacement). */
  timeoutMs: number;
  /** Progress lines. */
  log: (line: string) => void;
  pollMs?: number;
  signal?: AbortSignal | undefined;
}

export interface RestartResult {
  restarted: number;
  /** Pods that were on an old revision when the restart began. */
  total: number;
  /** Why the restart stopped before every pod was on the new template. */
  stopped?: string;
  /** It stopped because a replacement cannot become Ready by itself. */
  stuck?: boolean;
}

class Stopped extends Error {
  constructor(
    message: string,
    readonly stuck = false,
  ) {
    super(message);
  }
}

export class OnDeleteRestart {
  private readonly core: CoreV1Api;
  private readonly revisions: RevisionPods;

  constructor(
    private readonly kube: KubeTarget,
    private readonly workloads: Workloads,
  ) {
    this.core = kube.api(CoreV1Api);
    this.revisions = new RevisionPods(kube);
  }

  private async pods(w: LiveWorkload): Promise<PodView[]> {
    const namespace = w.metadata?.namespace ?? '';
    const labelSelector = Object.entries(w.spec?.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    try {
      const list = await this.core.listNamespacedPod({ namespace, labelSelector });
      return list.items
        .filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === w.metadata?.uid))
        .map(viewOf);
    } catch (e) {
      throw kubeError(e, { verb: 'list', resource: 'pods', namespace }, this.kube.server);
    }
  }

  /** The revision pods on the current template carry, once the controller has seen the template. */
  private async revision(w: LiveWorkload): Promise<{ revision: string; desired: number } | string> {
    const live = await this.workloads.get({
      kind: w.kind,
      namespace: w.metadata?.namespace ?? '',
      name: w.metadata?.name ?? '',
    });
    if (!live) throw new Stopped('the workload disappeared');
    const status = (live.status ?? {}) as {
      observedGeneration?: number;
      updateRevision?: string;
      desiredNumberScheduled?: number;
    };
    if ((status.observedGeneration ?? 0) < (live.metadata?.generation ?? 0)) {
      return 'the controller has not observed the new template yet';
    }
    if (live.kind === 'StatefulSet') {
      // StatefulSet pods carry the revision's name.
      if (!status.updateRevision) return 'the controller has not published a revision yet';
      return {
        revision: status.updateRevision,
        desired: (live.spec as { replicas?: number } | undefined)?.replicas ?? 1,
      };
    }
    // DaemonSets publish no revision in their status: the current one is the
    // newest ControllerRevision they own, and pods carry its hash label.
    const hash = await this.revisions.daemonSetRevision(live);
    if (!hash) return 'the controller has not published a revision yet';
    return { revision: hash, desired: status.desiredNumberScheduled ?? 0 };
  }

  private async deletePod(namespace: string, pod: PodView): Promise<void> {
    try {
      // The uid precondition: never delete a replacement that took the name meanwhile.
      await this.core.deleteNamespacedPod({
        name: pod.name,
        namespace,
        body: { preconditions: { uid: pod.uid } },
      });
    } catch (e) {
      const status = statusOf(e);
      if (status === 404 || status === 409) return;
      throw kubeError(
        e,
        { verb: 'delete', resource: 'pods', name: pod.name, namespace },
        this.kube.server,
      );
    }
  }

  /** Polls `probe` until it returns a value, or stops with `what` and its last reason. */
  private async until<T>(
    o: RestartOptions,
    what: string,
    probe: () => Promise<T | string>,
  ): Promise<T> {
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      const v = await probe();
      if (typeof v !== 'string') return v;
      if (o.signal?.aborted) throw new Stopped(`interrupted while waiting for ${what} (${v})`);
      if (Date.now() >= deadline) {
        throw new Stopped(`${what} not reached after ${o.timeoutMs / 1000} s (${v})`);
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
    }
  }

  async run(w: LiveWorkload, o: RestartOptions): Promise<RestartResult> {
    if (w.kind === 'Deployment') throw new Error('Deployments roll by themselves');
    const kind = w.kind;
    const namespace = w.metadata?.namespace ?? '';
    let restarted = 0;
    let total = 0;
    try {
      const { revision, desired } = await this.until(o, 'the new template revision', () =>
        this.revision(w),
      );
      total = (await this.pods(w)).filter((p) => !p.terminating && p.revision !== revision).length;
      for (;;) {
        const pod = await this.until(o, 'every other pod Ready', async () => {
          const step = nextStep(await this.pods(w), revision, desired);
          if (step.kind === 'wait') return step.why;
          return step.kind === 'delete' ? step.pod : null;
        });
        if (pod === null) break;
        await this.deletePod(namespace, pod);
        await this.until(
          o,
          `a Ready replacement for pod ${pod.name} on the new template`,
          async () => {
            const state = replacementState(await this.pods(w), pod, kind, revision);
            if (typeof state === 'object') {
              throw new Stopped(
                `the replacement for pod ${pod.name} is stuck: ${state.stuck}`,
                true,
              );
            }
            return state;
          },
        );
        restarted++;
        o.log(`restarted pod ${pod.name} (${restarted} of ${Math.max(total, restarted)})`);
      }
      return { restarted, total: Math.max(total, restarted) };
    } catch (e) {
      if (!(e instanceof Stopped)) throw e;
      return {
        restarted,
        total: Math.max(total, restarted),
        stopped: `${e.message}; ${restarted} pod(s) restarted, the rest keep the old template until deleted`,
        ...(e.stuck ? { stuck: true } : {}),
      };
    }
  }
}

/** The step recorded when OnDelete pods are left on the old template. */
export const NOT_RESTARTED_ONDELETE =
  'not restarted: OnDelete, so each pod keeps the old template until it is deleted (pass --restart-ondelete with --yes to restart them one at a time)';
