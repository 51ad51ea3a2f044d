// `target protect --yes --restart-ondelete` on an OnDelete StatefulSet whose
// pods really run: the test sandbox's node (kubelet, containerd, runc,
// scheduler) starts them and a readiness probe decides when they are Ready, so a
// replacement is unready for a while after it starts. test/ondelete.test.ts
// covers the same restart with the test marking pods Ready itself; here the
// kubelet does, and the order is read from a watch of our own, independent of
// the code under test.
//
// No admission webhook is registered, so the replacements start unmodified on
// the annotated template: this file tests the restart order, not injection.
import { AppsV1Api, CoreV1Api, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { SandboxInfo, SandboxNode } from '../testenv/sandbox.js';
import { cli, tempDir } from './helpers/cli.js';
import { eventually, requireNode, sandbox, uniqueName } from './helpers/sandbox.js';

const NS = uniqueName('odnode');
const REPLICAS = 3;

interface PodState {
  name: string;
  uid: string;
  revision: string;
  phase: string;
  ready: boolean;
  terminating: boolean;
}

/** One watch event and the set's pods right after it. */
interface Event {
  type: string;
  uid: string;
  pods: PodState[];
}

const isReady = (p: V1Pod): boolean =>
  p.status?.phase === 'Running' &&
  (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

const stateOf = (p: V1Pod): PodState => ({
  name: p.metadata?.name ?? '',
  uid: p.metadata?.uid ?? '',
  revision: p.metadata?.labels?.['controller-revision-hash'] ?? '',
  phase: p.status?.phase ?? '',
  ready: isReady(p),
  terminating: p.metadata?.deletionTimestamp !== undefined,
});

/** Records every pod event of the namespace, in the API server's order. */
async function record(kc: KubeConfig) {
  const pods = new Map<string, PodState>();
  const events: Event[] = [];
  const errors: unknown[] = [];
  const abort = await new Watch(kc).watch(
    `/api/v1/namespaces/${NS}/pods`,
    {},
    (type: string, p: V1Pod) => {
      const s = stateOf(p);
      if (type === 'DELETED') pods.delete(s.uid);
      else pods.set(s.uid, s);
      events.push({ type, uid: s.uid, pods: [...pods.values()] });
    },
    (err: unknown) => {
      if (err && !(err instanceof Error && err.name === 'AbortError')) errors.push(err);
    },
  );
  return {
    events,
    errors,
    stop: () => {
      abort.abort();
    },
  };
}

const statefulSet = (node: SandboxNode) => ({
  metadata: { name: 'web' },
  spec: {
    serviceName: 'web',
    replicas: REPLICAS,
    updateStrategy: { type: 'OnDelete' },
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        hostNetwork: true,
        tolerations: [node.toleration],
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 5,
        containers: [
          {
            name: 'app',
            image: node.images.busybox,
            // Ready only ~2 s after the container starts: a restart that does
            // not wait for readiness deletes the next pod while this one is unready.
            command: [
              'sh',
              '-c',
              'trap "exit 0" TERM; sleep 2; echo ok > /tmp/ready; while true; do sleep 1; done',
            ],
            readinessProbe: {
              exec: { command: ['cat', '/tmp/ready'] },
              periodSeconds: 1,
              failureThreshold: 1,
            },
            env: [
              { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
            ],
          },
        ],
      },
    },
  },
});

async function protectOnNode(info: SandboxInfo, node: SandboxNode): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const env = {
    KUBECONFIG: info.kubeconfig,
    BAO_ADDR: info.baoAddr,
    BAO_TOKEN: info.baoToken,
    USER: 'tester',
  };
  const podsNow = async (): Promise<V1Pod[]> =>
    (await core.listNamespacedPod({ namespace: NS })).items;

  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'db' }, stringData: { password: 'p' } },
  });
  const watch = await record(kc);
  try {
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: statefulSet(node),
    });
    await eventually(
      '3 pods Ready on the node',
      async () => {
        const pods = await podsNow();
        return pods.length === REPLICAS && pods.every(isReady) ? true : undefined;
      },
      60_000,
    );
    const before: Record<string, V1Pod> = Object.fromEntries(
      (await podsNow()).map((p): [string, V1Pod] => [p.metadata?.name ?? '', p]),
    );
    expect(Object.values(before).map((p) => p.spec?.nodeName)).toEqual(
      Array(REPLICAS).fill(node.name),
    );

    const dir = await tempDir();
    const d = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', NS], { cwd: dir, env });
    expect(d.code, d.stderr).toBe(0);
    const from = watch.events.length;
    const r = await cli(
      [
        'target',
        'protect',
        '--plan',
        'plan.yaml',
        '--vault-address',
        'https://vault.eu.example.com',
        '--yes',
        '--restart-ondelete',
        '--timeout',
        '60',
      ],
      { cwd: dir, env },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(
      `StatefulSet ${NS}/web: injected, restarted (3 of 3 pod(s), one at a time) -> migrated`,
    );
    expect(r.code).toBe(0);

    const sts = await apps.readNamespacedStatefulSet({ name: 'web', namespace: NS });
    const revision = sts.status?.updateRevision ?? '';
    expect(revision).not.toBe('');
    expect(revision).not.toBe(before['web-0']?.metadata?.labels?.['controller-revision-hash']);

    const all = watch.events;
    const during = all.slice(from);
    // Never two pods of the set missing, terminating or unready at once (and
    // one was, each time a pod was restarted).
    const up = during.map((e) => e.pods.filter((p) => p.ready && !p.terminating).length);
    expect(Math.min(...up)).toBe(REPLICAS - 1);

    // A deletion first shows as the old pod turning terminating (or, at the
    // latest, as DELETED): each old pod's first such event, in order.
    const old = ['web-0', 'web-1', 'web-2'].map((n) => before[n]?.metadata?.uid ?? '');
    const deletions = old
      .map((uid) => ({
        uid,
        name: Object.values(before).find((p) => p.metadata?.uid === uid)?.metadata?.name,
        at: all.findIndex(
          (e, i) =>
            i >= from &&
            e.uid === uid &&
            (e.type === 'DELETED' || e.pods.some((p) => p.uid === uid && p.terminating)),
        ),
      }))
      .sort((a, b) => a.at - b.at);
    expect(deletions.map((d) => d.at >= from)).toEqual([true, true, true]);
    const names = deletions.map((d) => d.name ?? '');
    expect(names).toEqual(['web-2', 'web-1', 'web-0']);

    // Right before each deletion: every pod of the set Ready, and the pods
    // already replaced (the previous replacement included) Ready on the new
    // revision.
    deletions.forEach((d, i) => {
      const pods = all[d.at - 1]?.pods ?? [];
      expect(
        pods.filter((p) => p.ready && !p.terminating).length,
        `Ready pods right before deleting ${names[i] ?? ''}`,
      ).toBe(REPLICAS);
      const replaced = names.slice(0, i);
      expect(
        pods
          .filter((p) => replaced.includes(p.name))
          .map((p) => [p.name, p.ready, p.revision === revision, old.includes(p.uid)]),
        `replacements right before deleting ${names[i] ?? ''}`,
      ).toEqual(replaced.map((n) => [n, true, true, false]));
    });

    // Readiness was the probe's, not instant: each replacement was Running
    // and unready before it turned Ready.
    const replacements = new Set(
      during
        .flatMap((e) => e.pods)
        .filter((p) => !old.includes(p.uid))
        .map((p) => p.uid),
    );
    expect(replacements.size).toBe(REPLICAS);
    for (const uid of replacements) {
      expect(
        during.some((e) => e.pods.some((p) => p.uid === uid && p.phase === 'Running' && !p.ready)),
        `replacement ${uid} seen Running but not Ready`,
      ).toBe(true);
    }

    const after = await podsNow();
    expect(after).toHaveLength(REPLICAS);
    expect(
      after.map((p) => [isReady(p), p.metadata?.labels?.['controller-revision-hash']]),
    ).toEqual(Array(REPLICAS).fill([true, revision]));
    expect(after.every((p) => !old.includes(p.metadata?.uid ?? ''))).toBe(true);
    expect(watch.errors).toEqual([]);
  } finally {
    watch.stop();
  }
}

describe('target protect on a real node', () => {
  it('restarts an OnDelete StatefulSet one pod at a time, each replacement Ready on the new revision first', async () => {
    const node = requireNode();
    await protectOnNode(sandbox(), node);
  }, 400_000);
});
