// `target protect --wait` and `target status` against pods that really run:
// the sandbox's node (kubelet, containerd, runc, scheduler) starts them, the
// cloudtaser webhook (registered with the API server) injects cloudtaser-init
// from the node's init image, the wrapper logs in to OpenBao with the pod's
// token and starts the app, a readiness probe decides when the app is Ready,
// and a container that exits is restarted and backed off by the kubelet as
// in any cluster.
//
// Two tenants, the same Deployment: vault holds `waitok`'s secret, so its new
// pods become Ready; it does not hold `waitbad`'s, so the wrapper fails
// closed in its new pods and the kubelet crash-loops them.
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlan } from '../src/plan/read.js';
import { startWebhookServer, type WebhookServer } from '../src/webhook/server.js';
import { NODE_TOLERATION } from '../testenv/node.js';
import { loopbackPki } from '../testenv/pki.js';
import { startSandbox, type Sandbox, type SandboxInfo } from '../testenv/sandbox.js';
import { cli, tempDir } from './helpers/cli.js';
import { withNodeTestLock } from './helpers/node.js';
import { eventually } from './helpers/sandbox.js';
import { registerWebhook, waitForWebhook } from './helpers/webhook.js';

// --- the node: everything node-specific is here, so the file can move onto
// a shared sandbox that has a node without touching the tests below.

interface NodeEnv {
  info: SandboxInfo;
  busybox: string;
  env: NodeJS.ProcessEnv;
  kc: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  /** The webhook (in this process), injecting the node's cloudtaser-init image. */
  webhook: { port: number; ca: string };
}

let sb: Sandbox | undefined;
let release: (() => void) | undefined;
let hook: WebhookServer | undefined;
let node: NodeEnv;

beforeAll(async () => {
  // The node lock is held until afterAll: another node test's host snapshots must not see this node.
  const started = new Promise<Sandbox>((resolve, reject) => {
    void withNodeTestLock(async () => {
      try {
        resolve(
          await startSandbox({
            node: true,
            log: (line) => {
              console.error(line);
            },
          }),
        );
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      await new Promise<void>((r) => (release = r));
    }).catch(reject);
  });
  sb = await started;
  const kc = new KubeConfig();
  kc.loadFromFile(sb.info.kubeconfig);
  const pki = await loopbackPki(await tempDir());
  hook = await startWebhookServer({
    cert: pki.cert,
    key: pki.key,
    port: 0,
    host: '127.0.0.1',
    config: {
      initImage: sb.info.node?.images.init ?? '',
      authMountPath: `auth/${sb.info.baoKubeAuthPath}`,
    },
    log: () => undefined,
  });
  node = {
    info: sb.info,
    kc,
    webhook: { port: hook.port, ca: pki.ca },
    busybox: sb.info.node?.images.busybox ?? '',
    env: {
      KUBECONFIG: sb.info.kubeconfig,
      BAO_ADDR: sb.info.baoAddr,
      BAO_TOKEN: sb.info.baoToken,
      USER: 'tester',
    },
    core: kc.makeApiClient(CoreV1Api),
    apps: kc.makeApiClient(AppsV1Api),
  };
}, 400_000);

afterAll(async () => {
  try {
    await hook?.close();
    await sb?.stop();
  } finally {
    release?.();
  }
}, 120_000);

// --- helpers

const isReady = (p: V1Pod): boolean =>
  p.status?.phase === 'Running' &&
  (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** A namespace whose annotated pods the webhook mutates, with the native Secret the app reads today. */
async function namespaceWithSecret(ns: string): Promise<void> {
  await node.core.createNamespace({ body: { metadata: { name: ns } } });
  await node.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { password: 'p' } },
  });
  await registerWebhook({
    name: `cloudtaser-${ns}`,
    namespace: ns,
    port: node.webhook.port,
    caPems: [node.webhook.ca],
    kubeConfig: node.kc,
  });
  await waitForWebhook(node.core, ns);
}

/** Calls OpenBao as root. */
async function bao(method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${node.info.baoAddr}/v1/${path}`, {
    method,
    headers: { 'x-vault-token': node.info.baoToken, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

/**
 * A Deployment on the node whose pods turn Ready 2 s after the app starts (a
 * wait that does not look at readiness returns before that). The app needs
 * DB_PASS: it exits 3 without it.
 */
function deployment(name: string, replicas: number): V1Deployment {
  const script = [
    'trap "exit 0" TERM',
    '[ -n "$DB_PASS" ] || exit 3',
    'sleep 2',
    'echo ok > /tmp/ready',
    'while true; do sleep 1; done',
  ].join('; ');
  return {
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          hostNetwork: true,
          tolerations: [NODE_TOLERATION],
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'app',
              image: node.busybox,
              command: ['sh', '-c', script],
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
  };
}

async function podsOf(ns: string, name: string): Promise<V1Pod[]> {
  return (await node.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` })).items;
}

/** The pod-template-hash of the Deployment's newest ReplicaSet. */
async function newestHash(ns: string, name: string): Promise<string> {
  const sets = (await node.apps.listNamespacedReplicaSet({ namespace: ns })).items.filter((rs) =>
    rs.metadata?.name?.startsWith(`${name}-`),
  );
  const rev = (rs: (typeof sets)[number]): number =>
    Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
  const newest = sets.sort((a, b) => rev(b) - rev(a))[0];
  return newest?.metadata?.labels?.['pod-template-hash'] ?? '';
}

type Kind = 'Deployment' | 'StatefulSet' | 'DaemonSet';

async function deployAndWaitReady(
  ns: string,
  name: string,
  replicas: number,
  kind: Kind = 'Deployment',
  onDelete = false,
) {
  const d = deployment(name, replicas);
  const spec = d.spec;
  if (!spec) throw new Error('no spec');
  if (kind === 'Deployment') {
    await node.apps.createNamespacedDeployment({ namespace: ns, body: d });
  } else if (kind === 'StatefulSet') {
    await node.apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: d.metadata ?? {},
        spec: {
          replicas: spec.replicas,
          selector: spec.selector,
          template: spec.template,
          serviceName: name,
          updateStrategy: { type: onDelete ? 'OnDelete' : 'RollingUpdate' },
        },
      },
    });
  } else {
    await node.apps.createNamespacedDaemonSet({
      namespace: ns,
      body: {
        metadata: d.metadata ?? {},
        spec: { selector: spec.selector, template: spec.template },
      },
    });
  }
  await eventually(
    `${ns}/${name}: ${replicas} pod(s) Ready on the node`,
    async () => {
      const pods = await podsOf(ns, name);
      return pods.length === replicas && pods.every(isReady) ? true : undefined;
    },
    90_000,
  );
}

async function planStatuses(file: string): Promise<Record<string, string>> {
  const { plan } = parsePlan(await readFile(file, 'utf8'), 'plan.yaml');
  return Object.fromEntries(
    plan.tenants.flatMap((t) => t.workloads.map((w) => [`${t.namespace}/${w.name}`, w.status])),
  );
}

interface StatusRow {
  namespace: string;
  name: string;
  state: string;
  pods: string;
  rollout: string;
}

async function status(dir: string, ns: string): Promise<Record<string, StatusRow>> {
  const r = await cli(['target', 'status', '-n', ns, '-o', 'json'], { cwd: dir, env: node.env });
  expect(r.code, r.stderr).toBe(0);
  const rows = (JSON.parse(r.stdout) as { workloads: StatusRow[] }).workloads;
  return Object.fromEntries(rows.map((w) => [w.name, w]));
}

const protect = (dir: string, ns: string, timeout: number) =>
  cli(
    [
      'target',
      'protect',
      '--plan',
      'plan.yaml',
      // Plain http on loopback: the pods use the host's network.
      '--vault-address',
      node.info.baoAddr,
      '--allow-insecure-vault',
      '--yes',
      '--restart-ondelete',
      '--wait',
      '--timeout',
      String(timeout),
      '-n',
      ns,
    ],
    { cwd: dir, env: node.env },
  );

// --- the tests

describe('target protect --wait on a real node', () => {
  const OK = 'waitok';
  const BAD = 'waitbad';
  let dir: string;

  beforeAll(async () => {
    await namespaceWithSecret(OK);
    await namespaceWithSecret(BAD);
    await Promise.all([
      deployAndWaitReady(OK, 'api', 2),
      deployAndWaitReady(BAD, 'crash', 1),
      deployAndWaitReady(BAD, 'ledger', 1, 'StatefulSet'),
      deployAndWaitReady(BAD, 'agent', 1, 'DaemonSet'),
      deployAndWaitReady(BAD, 'ondel', 1, 'StatefulSet', true),
    ]);
    dir = await tempDir();
    for (const step of [
      ['target', 'discover', '-o', 'plan.yaml'],
      ['source', 'apply-plan', 'plan.yaml'],
    ]) {
      const r = await cli(step, { cwd: dir, env: node.env });
      expect(r.code, `${step.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    // Only waitok's value is in vault.
    expect(await bao('POST', `secret/data/${OK}/db`, { data: { password: 'p' } })).toBe(200);
  }, 200_000);

  it('returns 0 once every pod of the new revision is Ready, and not before', async () => {
    const before = new Set((await podsOf(OK, 'api')).map((p) => p.metadata?.uid));
    const r = await protect(dir, OK, 120);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Deployment ${OK}/api: injected, restarted, rolled out -> migrated`);
    expect(r.code).toBe(0);

    // Right when protect returned: the new ReplicaSet's pods are all there,
    // injected and Ready (the app passes its probe 2 s after the wrapper
    // started it with DB_PASS from vault), and none of the old ones is still
    // counted.
    const hash = await newestHash(OK, 'api');
    const live = (await podsOf(OK, 'api')).filter((p) => !p.metadata?.deletionTimestamp);
    expect(
      live.map((p) => [
        p.metadata?.labels?.['pod-template-hash'],
        isReady(p),
        before.has(p.metadata?.uid),
        (p.spec?.initContainers ?? []).map((c) => c.name),
      ]),
    ).toEqual([
      [hash, true, false, ['cloudtaser-init']],
      [hash, true, false, ['cloudtaser-init']],
    ]);
    expect(live.every((p) => p.spec?.nodeName === node.info.node?.name)).toBe(true);
    expect((await planStatuses(join(dir, 'plan.yaml')))[`${OK}/api`]).toBe('migrated');

    // Old pods still terminating count as running the old template; once
    // they are gone, status says rolled out.
    await eventually(
      'the old pods to be gone',
      async () => ((await podsOf(OK, 'api')).length === 2 ? true : undefined),
      60_000,
    );
    expect((await status(dir, OK)).api).toMatchObject({
      state: 'protected',
      pods: '2/2 injected',
      rollout: 'rolled-out',
    });
  }, 200_000);

  it('reports a new pod whose wrapper fails closed with its reason, long before --timeout, and exits 1', async () => {
    const started = Date.now();
    const r = await protect(dir, BAD, 300);
    const took = Date.now() - started;
    const STUCK = (pod: string) =>
      `pod ${pod}: container app: CrashLoopBackOff \\(last exit 1, \\d+ restart\\(s\\)\\)`;
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('Warning: '));
    expect(warnings.sort()).toEqual([
      expect.stringMatching(
        new RegExp(`^Warning: DaemonSet ${BAD}/agent: rollout stuck: ${STUCK('agent-[a-z0-9]+')}$`),
      ),
      expect.stringMatching(
        new RegExp(
          `^Warning: Deployment ${BAD}/crash: rollout stuck: ${STUCK('crash-[a-z0-9]+-[a-z0-9]+')}$`,
        ),
      ),
      expect.stringMatching(
        new RegExp(`^Warning: StatefulSet ${BAD}/ledger: rollout stuck: ${STUCK('ledger-0')}$`),
      ),
      expect.stringMatching(
        new RegExp(
          `^Warning: StatefulSet ${BAD}/ondel: the replacement for pod ondel-0 is stuck: ${STUCK('ondel-0')}; 0 pod\\(s\\) restarted, the rest keep the old template until deleted$`,
        ),
      ),
    ]);
    for (const line of [
      `Deployment ${BAD}/crash: injected, restarted, rollout stuck -> migrated`,
      `StatefulSet ${BAD}/ledger: injected, restarted, rollout stuck -> migrated`,
      `DaemonSet ${BAD}/agent: injected, restarted, rollout stuck -> migrated`,
      `StatefulSet ${BAD}/ondel: injected, restart stopped (0 of 1 pod(s) restarted) -> migrated`,
    ])
      expect(r.stdout).toContain(line);
    expect(r.stderr).toContain('4 rollout(s) stuck (see above)');
    expect(r.code).toBe(1);
    // The kubelet backs off 10 s after the first crash, 20 s after the second.
    expect(took).toBeLessThan(90_000);

    // Protected all the same: the plan records the patch, a re-run does not roll again.
    const plan = await planStatuses(join(dir, 'plan.yaml'));
    expect([plan[`${BAD}/crash`], plan[`${BAD}/ledger`], plan[`${BAD}/agent`]]).toEqual([
      'migrated',
      'migrated',
      'migrated',
    ]);
    // The Deployment's old pod keeps serving (maxUnavailable 25% of 1 rounds down to 0).
    const pods = await podsOf(BAD, 'crash');
    const hash = await newestHash(BAD, 'crash');
    expect(
      pods.map((p) => [p.metadata?.labels?.['pod-template-hash'] === hash, isReady(p)]).sort(),
    ).toEqual([
      [false, true],
      [true, false],
    ]);
    // Each wrapper said why in its log (the path, never a value); the report
    // carries only the reason and exit code.
    expect(r.stderr).not.toContain('cloudtaser-wrapper:');
    const rows = await status(dir, BAD);
    expect(rows.crash).toMatchObject({
      state: 'protected',
      pods: '1/2 injected, 1 not Ready',
      rollout: 'old-template',
    });
    // The StatefulSet replaced its only pod: injected, and not Ready.
    expect(rows.ledger).toMatchObject({
      state: 'protected',
      pods: '1/1 injected, 1 not Ready',
      rollout: 'not-ready',
    });
  }, 200_000);
});
