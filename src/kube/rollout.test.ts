import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { podProblem, stuckPods } from './pod-problems.js';
import { rolloutProgress, type LiveWorkload } from './workloads.js';

const SECRET = 'hunter2-do-not-print';

const status = (name: string, over: Partial<V1ContainerStatus>): V1ContainerStatus => ({
  name,
  image: 'img',
  imageID: '',
  ready: false,
  restartCount: 0,
  ...over,
});

const podWith = (
  name: string,
  s: { init?: V1ContainerStatus[]; main?: V1ContainerStatus[]; deleting?: boolean },
): V1Pod => ({
  metadata: {
    name,
    ...(s.deleting ? { deletionTimestamp: new Date('2026-04-01T10:00:00Z') } : {}),
  },
  status: {
    phase: 'Pending',
    ...(s.init ? { initContainerStatuses: s.init } : {}),
    ...(s.main ? { containerStatuses: s.main } : {}),
  },
});

const crashLoop = (name: string, exitCode: number, extra: Record<string, unknown> = {}) =>
  status(name, {
    restartCount: 2,
    state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 20s restarting ${name}` } },
    lastState: {
      terminated: { exitCode, reason: 'Error', message: `password=${SECRET}`, ...extra },
    },
  });

describe('podProblem', () => {
  it('names a crash-looping init container with its last exit code, never its message', () => {
    const p = podWith('api-1', {
      init: [crashLoop('cloudtaser-init', 1)],
      main: [status('app', { state: { waiting: { reason: 'PodInitializing' } } })],
    });
    expect(podProblem(p)).toBe(
      'init container cloudtaser-init: CrashLoopBackOff (last exit 1, 2 restart(s))',
    );
  });

  it('names a crash-looping app container, with the kubelet reason for its last exit', () => {
    const p = podWith('api-1', {
      init: [
        status('cloudtaser-init', { state: { terminated: { exitCode: 0, reason: 'Completed' } } }),
      ],
      main: [crashLoop('app', 137, { reason: 'OOMKilled' })],
    });
    expect(podProblem(p)).toBe(
      'container app: CrashLoopBackOff (last exit 137, OOMKilled, 2 restart(s))',
    );
    expect(stuckPods([p])).not.toContain(SECRET);
  });

  it('reports image and configuration failures; the kubelet message only for configuration', () => {
    const waiting = (reason: string, message: string) =>
      podWith('p', { main: [status('app', { state: { waiting: { reason, message } } })] });
    expect(podProblem(waiting('ImagePullBackOff', 'Back-off pulling image "x"'))).toBe(
      'container app: ImagePullBackOff',
    );
    expect(podProblem(waiting('ErrImageNeverPull', 'image not present'))).toBe(
      'container app: ErrImageNeverPull',
    );
    expect(podProblem(waiting('CreateContainerError', `exec: "${SECRET}": not found`))).toBe(
      'container app: CreateContainerError',
    );
    expect(podProblem(waiting('CreateContainerConfigError', 'secret "db" not found'))).toBe(
      'container app: CreateContainerConfigError (secret "db" not found)',
    );
  });

  it('leaves alone pods that may still become Ready, and terminating ones', () => {
    const waiting = (reason: string) =>
      podWith('p', { main: [status('app', { state: { waiting: { reason } } })] });
    expect(podProblem(waiting('ContainerCreating'))).toBeUndefined();
    expect(podProblem(waiting('PodInitializing'))).toBeUndefined();
    // The first pull failure may be transient; ImagePullBackOff follows if not.
    expect(podProblem(waiting('ErrImagePull'))).toBeUndefined();
    // Exited once and not yet backed off: the kubelet is restarting it.
    expect(
      podProblem(
        podWith('p', {
          main: [status('app', { state: { terminated: { exitCode: 3, reason: 'Error' } } })],
        }),
      ),
    ).toBeUndefined();
    expect(
      podProblem(podWith('p', { main: [crashLoop('app', 3)], deleting: true })),
    ).toBeUndefined();
    expect(podProblem({ metadata: { name: 'p' } })).toBeUndefined();
  });

  it('reports the first init container that is stuck: they run in order', () => {
    const p = podWith('p', {
      init: [crashLoop('cloudtaser-init', 2), crashLoop('migrate', 1)],
      main: [crashLoop('app', 3)],
    });
    expect(podProblem(p)).toMatch(/^init container cloudtaser-init: /);
  });

  it('a signal instead of an exit code', () => {
    const p = podWith('p', { main: [crashLoop('app', 0, { signal: 9 })] });
    expect(podProblem(p)).toBe(
      'container app: CrashLoopBackOff (last exit signal 9, 2 restart(s))',
    );
  });
});

describe('stuckPods', () => {
  it('one line: the first stuck pod by name, and how many more', () => {
    const ok = podWith('api-a', { main: [status('app', { ready: true, state: { running: {} } })] });
    const b = podWith('api-b', { main: [crashLoop('app', 3)] });
    const c = podWith('api-c', { init: [crashLoop('cloudtaser-init', 1)] });
    expect(stuckPods([c, ok, b])).toBe(
      'pod api-b: container app: CrashLoopBackOff (last exit 3, 2 restart(s)); 1 more pod(s) stuck',
    );
    expect(stuckPods([ok])).toBeUndefined();
    expect(stuckPods([])).toBeUndefined();
  });
});

const deployment = (
  status: Record<string, unknown>,
  spec: Record<string, unknown> = {},
  generation = 2,
): LiveWorkload => ({
  kind: 'Deployment',
  metadata: { name: 'api', generation },
  spec: { replicas: 3, selector: {}, template: {}, ...spec },
  status,
});

describe('rolloutProgress (the rules of kubectl rollout status)', () => {
  it('Deployment: waits for the controller, every replica updated, old ones gone, updated ones available', () => {
    expect(rolloutProgress(deployment({ observedGeneration: 1 }))).toMatchObject({
      done: false,
      observed: false,
    });
    const base = { observedGeneration: 2, replicas: 3, updatedReplicas: 3, availableReplicas: 3 };
    expect(rolloutProgress(deployment(base))).toMatchObject({ done: true, observed: true });
    expect(rolloutProgress(deployment({ ...base, updatedReplicas: 2 })).done).toBe(false);
    // An old pod not yet terminated: available counts it, the rollout is not done.
    expect(rolloutProgress(deployment({ ...base, replicas: 4 }))).toEqual({
      done: false,
      observed: true,
      message: '3/3 updated, 3/3 available, 1 old pending termination',
    });
    expect(rolloutProgress(deployment({ ...base, availableReplicas: 2 })).done).toBe(false);
    // Scaled to zero: nothing to wait for.
    expect(rolloutProgress(deployment({ observedGeneration: 2 }, { replicas: 0 })).done).toBe(true);
  });

  it('Deployment: a progress deadline exceeded is a failure, not more waiting', () => {
    const p = rolloutProgress(
      deployment(
        {
          observedGeneration: 2,
          replicas: 4,
          updatedReplicas: 1,
          availableReplicas: 3,
          conditions: [
            { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' },
          ],
        },
        { progressDeadlineSeconds: 30 },
      ),
    );
    expect(p).toMatchObject({
      done: false,
      failed: 'progress deadline exceeded (no progress for 30 s)',
    });
  });

  it('StatefulSet: every replica Ready, and updated down to the partition', () => {
    const sts = (status: Record<string, unknown>, strategy?: Record<string, unknown>) =>
      ({
        kind: 'StatefulSet',
        metadata: { name: 'db', generation: 2 },
        spec: { replicas: 3, ...(strategy ? { updateStrategy: strategy } : {}) },
        status: { observedGeneration: 2, ...status },
      }) as unknown as LiveWorkload;
    const rolling = { type: 'RollingUpdate', rollingUpdate: { partition: 0 } };
    expect(rolloutProgress(sts({ readyReplicas: 3, updatedReplicas: 3 }, rolling)).done).toBe(true);
    expect(rolloutProgress(sts({ readyReplicas: 2, updatedReplicas: 3 }, rolling)).done).toBe(
      false,
    );
    expect(rolloutProgress(sts({ readyReplicas: 3, updatedReplicas: 2 }, rolling)).done).toBe(
      false,
    );
    const partitioned = { type: 'RollingUpdate', rollingUpdate: { partition: 2 } };
    expect(rolloutProgress(sts({ readyReplicas: 3, updatedReplicas: 1 }, partitioned)).done).toBe(
      true,
    );
    expect(
      rolloutProgress(sts({ readyReplicas: 3, updatedReplicas: 2 }, { type: 'OnDelete' })).done,
    ).toBe(false);
    expect(
      rolloutProgress(sts({ readyReplicas: 3, updatedReplicas: 3 }, { type: 'OnDelete' })).done,
    ).toBe(true);
  });

  it('DaemonSet: every scheduled pod updated and available', () => {
    const ds = (status: Record<string, unknown>) =>
      ({
        kind: 'DaemonSet',
        metadata: { name: 'agent', generation: 2 },
        spec: {},
        status: { observedGeneration: 2, desiredNumberScheduled: 2, ...status },
      }) as unknown as LiveWorkload;
    expect(rolloutProgress(ds({ updatedNumberScheduled: 2, numberAvailable: 2 })).done).toBe(true);
    expect(rolloutProgress(ds({ updatedNumberScheduled: 2, numberAvailable: 1 })).done).toBe(false);
  });
});
