// Why a pod cannot become Ready by itself: the container states the kubelet
// reports when it has given up retrying quickly (a crash loop, an image it
// cannot pull, a configuration it cannot build). Pure: pod status in, one
// line out.
//
// Messages: a terminated container's `message` is whatever the app wrote to
// its termination-message file (or, with FallbackToLogsOnError, the tail of
// its log), and an app can print anything, secret values included. It is
// never shown; the reason and exit code are. A waiting container's message
// is the kubelet's own text; it is shown only for CreateContainerConfigError,
// where it names the missing Secret/ConfigMap or key (names, never values)
// and is the one thing the user needs to fix it.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';

/**
 * Waiting reasons that do not clear without a change to the pod or the
 * cluster. ErrImagePull is left out: it is the first, possibly transient
 * attempt, and turns into ImagePullBackOff when it is not.
 */
const STUCK_WAITING = new Set([
  'CrashLoopBackOff',
  'ImagePullBackOff',
  'ErrImageNeverPull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
]);

const SHOWN_MESSAGES = new Set(['CreateContainerConfigError']);

function containerProblem(s: V1ContainerStatus, what: string): string | undefined {
  const waiting = s.state?.waiting;
  if (!waiting?.reason || !STUCK_WAITING.has(waiting.reason)) return undefined;
  const last = s.lastState?.terminated;
  const details: string[] = [];
  if (last) {
    details.push(
      last.signal ? `last exit signal ${last.signal}` : `last exit ${String(last.exitCode)}`,
    );
    // Reasons the kubelet sets (OOMKilled, Error, ...); never the app's message.
    if (last.reason && last.reason !== 'Error') details.push(last.reason);
  }
  if (SHOWN_MESSAGES.has(waiting.reason) && waiting.message) details.push(waiting.message);
  if (s.restartCount > 0) details.push(`${s.restartCount} restart(s)`);
  return `${what} ${s.name}: ${waiting.reason}${details.length ? ` (${details.join(', ')})` : ''}`;
}

/** Why this pod is stuck, or undefined while it may still become Ready on its own. */
export function podProblem(pod: V1Pod): string | undefined {
  // Terminating pods are on their way out; their state says nothing about the rollout.
  if (pod.metadata?.deletionTimestamp) return undefined;
  const st = pod.status;
  // Init containers run in order: the first one stuck is the one that matters.
  for (const s of st?.initContainerStatuses ?? []) {
    const p = containerProblem(s, 'init container');
    if (p) return p;
  }
  for (const s of st?.containerStatuses ?? []) {
    const p = containerProblem(s, 'container');
    if (p) return p;
  }
  return undefined;
}

/**
 * One line for the stuck pods among `pods` (those of the revision being
 * rolled out): the first by name, and how many more. Undefined when none is.
 */
export function stuckPods(pods: readonly V1Pod[]): string | undefined {
  const stuck = pods
    .map((p) => ({ name: p.metadata?.name ?? '', problem: podProblem(p) }))
    .filter((p): p is { name: string; problem: string } => p.problem !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name));
  const first = stuck[0];
  if (!first) return undefined;
  const more = stuck.length > 1 ? `; ${stuck.length - 1} more pod(s) stuck` : '';
  return `pod ${first.name}: ${first.problem}${more}`;
}
