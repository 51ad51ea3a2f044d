// `target protect` on an OnDelete StatefulSet against the real API server and
// StatefulSet controller: pods are restarted one at a time, each replacement
// must be Ready on the new template before the next deletion, a replacement
// that never becomes Ready stops the restart, and --yes alone deletes nothing.
//
// The sandbox has no scheduler or kubelet, so this file plays the node: it
// watches the namespace's pods and marks each new one Running and Ready
// through the pods/status subresource, as a kubelet would report it. The
// controller and the API server are real; only the container runtime is not.
// (Unscheduled pods are deleted at once, without a grace period.)
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type V1Pod,
} from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePlan } from '../src/plan/read.js';
import { NOT_RESTARTED_ONDELETE } from '../src/protect/restart.js';
import { cli, tempDir } from './helpers/cli.js';
import { eventually, kubeConfig, uniqueName } from './helpers/sandbox.js';

const VAULT = 'https://vault.eu.example.com';
const REPLICAS = 3;
const PROTECT_RESTART = [
  'target',
  'protect',
  '--plan',
  'plan.yaml',
  '--vault-address',
  VAULT,
  '--yes',
  '--restart-ondelete',
];

function clients() {
  const kc = kubeConfig();
  return { apps: kc.makeApiClient(AppsV1Api), core: kc.makeApiClient(CoreV1Api) };
}

const isReady = (p: V1Pod): boolean =>
  p.status?.phase === 'Running' &&
  (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

interface Event {
  type: string;
  name: string;
  uid: string;
  terminating: boolean;
  /** Pods of the set existing, not terminating and Ready right after this event. */
  available: number;
}

/**
 * Plays the kubelet for one namespace and records every pod event in the
 * order the API server sends them. `hold(pod)` keeps a pod unready.
 */
async function node(ns: string, hold: (p: V1Pod) => boolean = () => false) {
  const { core } = clients();
  const pods = new Map<string, V1Pod>();
  const events: Event[] = [];
  const marking = new Set<string>();
  const errors: unknown[] = [];
  const markReady = async (p: V1Pod): Promise<void> => {
    const uid = p.metadata?.uid ?? '';
    if (marking.has(uid)) return;
    marking.add(uid);
    const now = new Date();
    try {
      await core.patchNamespacedPodStatus(
        {
          name: p.metadata?.name ?? '',
          namespace: ns,
          body: {
            status: {
              phase: 'Running',
              conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
    } catch (e) {
      // The pod may be gone already (deleted between the event and the patch).
      if ((e as { code?: number }).code !== 404) errors.push(e);
    }
  };
  const abort = await new Watch(kubeConfig()).watch(
    `/api/v1/namespaces/${ns}/pods`,
    {},
    (type: string, p: V1Pod) => {
      const uid = p.metadata?.uid ?? '';
      if (type === 'DELETED') pods.delete(uid);
      else pods.set(uid, p);
      const available = [...pods.values()].filter(
        (x) => isReady(x) && !x.metadata?.deletionTimestamp,
      ).length;
      events.push({
        type,
        name: p.metadata?.name ?? '',
        uid,
        terminating: p.metadata?.deletionTimestamp !== undefined,
        available,
      });
      if (type !== 'DELETED' && !isReady(p) && !p.metadata?.deletionTimestamp && !hold(p)) {
        void markReady(p);
      }
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

async function podsOf(ns: string): Promise<V1Pod[]> {
  const { core } = clients();
  return (await core.listNamespacedPod({ namespace: ns })).items.sort((a, b) =>
    (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
}

const uids = async (ns: string): Promise<Record<string, string>> =>
  Object.fromEntries(
    (await podsOf(ns)).map((p): [string, string] => [
      p.metadata?.name ?? '',
      p.metadata?.uid ?? '',
    ]),
  );

/** A namespace with a Secret and a 3-replica OnDelete StatefulSet reading it, all pods Ready, and a plan. */
async function setUp(prefix: string, hold?: (p: V1Pod) => boolean) {
  const { apps, core } = clients();
  const ns = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { username: 'u', password: 'p' } },
  });
  const watcher = await node(ns, hold);
  stops.push(watcher.stop);
  await apps.createNamespacedStatefulSet({
    namespace: ns,
    body: {
      metadata: { name: 'web' },
      spec: {
        serviceName: 'web',
        replicas: REPLICAS,
        updateStrategy: { type: 'OnDelete' },
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [
              {
                name: 'app',
                image: 'app:1',
                env: [
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  });
  await eventually('3 Ready pods', async () => {
    const pods = await podsOf(ns);
    return pods.length === REPLICAS && pods.every(isReady) ? true : undefined;
  });
  const dir = await tempDir();
  const d = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd: dir });
  expect(d.code).toBe(0);
  return { ns, dir, watcher };
}

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

async function planStatus(dir: string): Promise<string | undefined> {
  const { plan } = parsePlan(await readFile(join(dir, 'plan.yaml'), 'utf8'), 'plan.yaml');
  return plan.tenants[0]?.workloads[0]?.status;
}

describe('target protect on an OnDelete StatefulSet', () => {
  it('with --restart-ondelete restarts one pod at a time, each Ready on the new template before the next', async () => {
    const { ns, dir, watcher } = await setUp('odseq');
    const before = await uids(ns);
    const from = watcher.events.length;

    const r = await cli(
      [
        'target',
        'protect',
        '--plan',
        'plan.yaml',
        '--vault-address',
        VAULT,
        '--yes',
        '--restart-ondelete',
      ],
      { cwd: dir },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(
      `StatefulSet ${ns}/web: injected, restarted (3 of 3 pod(s), one at a time) -> migrated`,
    );
    expect(r.code).toBe(0);

    const during = watcher.events.slice(from);
    const deletions = during.filter((e) => e.type === 'DELETED');
    expect(deletions.map((e) => e.name)).toEqual(['web-2', 'web-1', 'web-0']);
    expect(deletions.map((e) => e.uid)).toEqual([
      before['web-2'],
      before['web-1'],
      before['web-0'],
    ]);
    // Never two pods of the set missing or unready at once...
    expect(Math.min(...during.map((e) => e.available))).toBe(REPLICAS - 1);
    // ...because each deletion came only once every pod was Ready again
    // (a deletion shows first as the pod turning terminating, then as DELETED).
    for (const d of deletions) {
      const i = during.findIndex((e) => e.uid === d.uid && (e.terminating || e.type === 'DELETED'));
      expect(i === 0 ? REPLICAS : during[i - 1]?.available, `before deleting ${d.name}`).toBe(
        REPLICAS,
      );
    }

    const { apps } = clients();
    const sts = await apps.readNamespacedStatefulSet({ name: 'web', namespace: ns });
    expect(sts.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBe('true');
    const after = await podsOf(ns);
    expect(after.map((p) => p.metadata?.labels?.['controller-revision-hash'])).toEqual(
      Array(REPLICAS).fill(sts.status?.updateRevision),
    );
    for (const p of after) expect(p.metadata?.uid).not.toBe(before[p.metadata?.name ?? '']);
    expect(await planStatus(dir)).toBe('migrated');
    expect(watcher.errors).toEqual([]);
  });

  it('stops with a timeout message when a replacement never becomes Ready, deleting nothing else', async () => {
    let holding = false;
    const { ns, dir, watcher } = await setUp('odhold', () => holding);
    const before = await uids(ns);
    const from = watcher.events.length;
    holding = true;

    const r = await cli(
      [
        'target',
        'protect',
        '--plan',
        'plan.yaml',
        '--vault-address',
        VAULT,
        '--yes',
        '--restart-ondelete',
        '--timeout',
        '8',
      ],
      { cwd: dir },
    );
    expect(r.stdout).toContain(
      `StatefulSet ${ns}/web: injected, restart stopped (0 of 3 pod(s) restarted) -> migrated`,
    );
    expect(r.stderr).toContain(
      `Warning: StatefulSet ${ns}/web: a Ready replacement for pod web-2 on the new template not reached after 8 s (replacement not Ready); 0 pod(s) restarted, the rest keep the old template until deleted`,
    );
    expect(r.stderr).toContain('1 rollout(s) did not finish within --timeout');
    expect(r.code).toBe(1);

    const deletions = watcher.events.slice(from).filter((e) => e.type === 'DELETED');
    expect(deletions.map((e) => e.name)).toEqual(['web-2']);
    const now = await uids(ns);
    expect(now['web-0']).toBe(before['web-0']);
    expect(now['web-1']).toBe(before['web-1']);
    // Protected all the same: the template carries the annotations.
    expect(await planStatus(dir)).toBe('migrated');
  });

  it('with --yes alone patches the template but deletes no pod, and says how the pods get it', async () => {
    const { ns, dir, watcher } = await setUp('odyes');
    const before = await uids(ns);
    const from = watcher.events.length;

    const r = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'],
      { cwd: dir },
    );
    expect(r.stdout).toContain(
      `StatefulSet ${ns}/web: injected, ${NOT_RESTARTED_ONDELETE} -> migrated`,
    );
    expect(r.code).toBe(0);
    expect(watcher.events.slice(from).filter((e) => e.type === 'DELETED')).toEqual([]);
    expect(await uids(ns)).toEqual(before);
    const { apps } = clients();
    const sts = await apps.readNamespacedStatefulSet({ name: 'web', namespace: ns });
    expect(sts.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBe('true');
    expect(sts.spec?.template.metadata?.annotations?.['cloudtaser.io/restartedAt']).toBeUndefined();
    expect(await planStatus(dir)).toBe('migrated');
  });

  it('unprotect restarts the same way with --restart-ondelete, and not without it', async () => {
    const { ns, dir, watcher } = await setUp('odun');
    // Restarted onto the protected template first: only then has unprotect pods to restart
    // (pods still on the original template already match the unprotected one).
    const protect = await cli([...PROTECT_RESTART], { cwd: dir });
    expect(protect.code).toBe(0);
    const before = await uids(ns);
    const from = watcher.events.length;

    const r = await cli(
      ['target', 'unprotect', '--plan', 'plan.yaml', '--yes', '--restart-ondelete'],
      { cwd: dir },
    );
    expect(r.stdout).toContain(
      `StatefulSet ${ns}/web: removed 6 annotation(s), restarted (3 of 3 pod(s), one at a time) -> pending`,
    );
    expect(r.code).toBe(0);
    const during = watcher.events.slice(from);
    const deletions = during.filter((e) => e.type === 'DELETED');
    expect(deletions.map((e) => e.uid)).toEqual([
      before['web-2'],
      before['web-1'],
      before['web-0'],
    ]);
    expect(Math.min(...during.map((e) => e.available))).toBe(REPLICAS - 1);
    expect(await planStatus(dir)).toBe('pending');

    // Protect again, then unprotect with --yes alone: nothing is deleted.
    expect(
      (
        await cli([...PROTECT_RESTART], {
          cwd: dir,
        })
      ).code,
    ).toBe(0);
    const kept = await uids(ns);
    const mark = watcher.events.length;
    const plain = await cli(['target', 'unprotect', '--plan', 'plan.yaml', '--yes'], { cwd: dir });
    expect(plain.stdout).toContain(`StatefulSet ${ns}/web: removed 6 annotation(s), not restarted`);
    expect(plain.code).toBe(0);
    expect(watcher.events.slice(mark).filter((e) => e.type === 'DELETED')).toEqual([]);
    expect(await uids(ns)).toEqual(kept);
  });
});
