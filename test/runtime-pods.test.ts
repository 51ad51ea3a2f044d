// The runtime in real pods: the built webhook (`cloudtaser webhook serve`)
// registered with the API server, the sandbox's node running the pods
// (kubelet, containerd, runc), the cloudtaser-init image installing the
// wrapper, and OpenBao's Kubernetes auth checking each pod's own projected
// token against the API server. Processes are inspected from the host, as
// root, through the container's cgroup: what a node's administrator (or an
// attacker on the node) would see, not what the pod itself may read.
//
// Secret values are random per run and never printed: assertions compare
// booleans, and messages carry lengths and hashes only.
import type { CoreV1Api, V1Container, V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import { WRAPPER_PATH } from '../src/webhook/mutate.js';
import { NODE_IMAGES } from '../testenv/images.js';
import type { SandboxInfo } from '../testenv/sandbox.js';
import { cli, tempDir } from './helpers/cli.js';
import { freePort } from './helpers/net.js';
import {
  acquirePodSandbox,
  clientsFor,
  createVaultCaConfigMap,
  containerId,
  containerInitAndChild,
  describePod,
  exeDigest,
  fileDigest,
  fingerprint,
  hostEnviron,
  isRunning,
  pushWithConfig,
  startPodWebhook,
  waitForPod,
  type PodSandbox,
  type PodWebhook,
} from './helpers/pods.js';
import { eventually, uniqueName } from './helpers/sandbox.js';

// Unique, so the file can move onto a shared sandbox unchanged.
const NS = uniqueName('pods');
const ROLE = `${NS}-role`;
const SA = 'app';
const VAULT_PATH = `secret/data/${NS}/db`;
const VALUES = {
  password: `pw-${randomBytes(12).toString('hex')}`,
  username: `user-${randomBytes(6).toString('hex')}`,
};
/** What a native Secret still referenced through envFrom holds: must reach no process. */
const NATIVE = {
  DB_PASS: `native-${randomBytes(12).toString('hex')}`,
  DB_USER: `native-${randomBytes(6).toString('hex')}`,
};
const CA_DIR = '/etc/vault-ca';
const APP_SCRIPT = [
  // /out is a host directory: the test sees that SIGTERM reached the app.
  "trap 'echo TERM > /out/term; exit 0' TERM",
  // Lengths only: the log must never hold a value.
  'echo "app started: DB_PASS has ${#DB_PASS} chars, DB_USER has ${#DB_USER} chars"',
  // `wait` returns as soon as a signal arrives, so the trap runs at once.
  'while true; do sleep 1 & wait $!; done',
].join('\n');

let sb: PodSandbox | undefined;
let info: SandboxInfo;
let core: CoreV1Api;
let hook: PodWebhook | undefined;
let dir = '';
let outDir = '';

beforeAll(async () => {
  sb = await acquirePodSandbox();
  info = sb.info;
  core = clientsFor(info).core;
  dir = await tempDir('ct-pods-');
  outDir = join(dir, 'out');
  await mkdir(outDir);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  for (const name of [SA, 'other']) {
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name } } });
  }
  await createVaultCaConfigMap(core, NS, info);
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'native' }, stringData: NATIVE },
  });

  // OpenBao: the product's apply writes the policy and the role bound to the
  // service account; the value goes in as `bao kv put` would.
  const plan: MigrationPlan = {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'pods', cluster: info.apiServer },
    tenants: [
      {
        name: NS,
        namespace: NS,
        workloads: [
          {
            kind: 'Deployment',
            name: 'app',
            replicas: 1,
            serviceAccount: SA,
            status: 'pending',
            secrets: [
              {
                source: 'k8s-secret/native',
                vaultPath: VAULT_PATH,
                fields: { password: 'DB_PASS', username: 'DB_USER' },
              },
            ],
          },
        ],
      },
    ],
  };
  await writeFile(join(dir, 'plan.yaml'), renderPlan(plan));
  const env = { USER: 'tester', BAO_ADDR: info.baoAddr, BAO_TOKEN: info.baoToken };
  const applied = await cli(
    ['source', 'apply-plan', 'plan.yaml', '--auth-path', info.baoKubeAuthPath],
    { cwd: dir, env },
  );
  expect(applied.code, applied.stderr).toBe(0);
  const put = await fetch(`${info.baoAddr}/v1/${VAULT_PATH}`, {
    method: 'POST',
    headers: { 'x-vault-token': info.baoToken, 'content-type': 'application/json' },
    body: JSON.stringify({ data: VALUES }),
  });
  expect(put.status).toBe(200);
  const verified = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir, env });
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);

  hook = await startPodWebhook(info, {
    dir,
    namespace: NS,
    initImage: info.node?.images.init ?? '',
    // Where it reads the ENTRYPOINT of an image the pod gives no command for.
    insecureRegistries: [info.registry],
  });
}, 900_000);

afterAll(async () => {
  hook?.stop();
  await sb?.release();
}, 180_000);

interface PodOptions {
  role?: string;
  address?: string;
  serviceAccount?: string;
  restartPolicy?: 'Always' | 'Never';
  container?: Partial<V1Container>;
}

/** A pod annotated as `target protect` annotates a template, for the node (hostNetwork). */
function pod(name: string, o: PodOptions = {}): V1Pod {
  return {
    metadata: {
      name,
      annotations: {
        'cloudtaser.io/inject': 'true',
        'cloudtaser.io/vault-address': o.address ?? info.baoTlsAddr,
        'cloudtaser.io/vault-role': o.role ?? ROLE,
        'cloudtaser.io/secret-paths': VAULT_PATH,
        'cloudtaser.io/env-map': `${VAULT_PATH}:password=DB_PASS,${VAULT_PATH}:username=DB_USER`,
      },
    },
    spec: {
      hostNetwork: true,
      tolerations: info.node ? [info.node.toleration] : [],
      serviceAccountName: o.serviceAccount ?? SA,
      // The only token in the pod is then the one the webhook projects for
      // vault's audience: a successful login used it.
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 30,
      restartPolicy: o.restartPolicy ?? 'Always',
      containers: [
        {
          name: 'app',
          image: info.node?.images.busybox ?? '',
          command: ['sh', '-c', APP_SCRIPT],
          env: [{ name: 'VAULT_CACERT', value: `${CA_DIR}/ca.crt` }],
          volumeMounts: [
            { name: 'vault-ca', mountPath: CA_DIR, readOnly: true },
            { name: 'out', mountPath: '/out' },
          ],
          ...o.container,
        },
      ],
      volumes: [
        { name: 'vault-ca', configMap: { name: 'vault-ca' } },
        { name: 'out', hostPath: { path: join(outDir, name), type: 'DirectoryOrCreate' } },
      ],
    },
  };
}

async function createPod(body: V1Pod): Promise<V1Pod> {
  return core.createNamespacedPod({ namespace: NS, body });
}

const podLog = (name: string, container = 'app'): Promise<string> =>
  core.readNamespacedPodLog({ name, namespace: NS, container });

/** The wrapper (the container's PID 1) and the app it started, on the host. */
async function wrapperAndApp(p: V1Pod) {
  return containerInitAndChild(containerId(p, 'app'), (c) => c.argv[0] === 'sh');
}

const names = (environ: string[]): string[] => environ.map((kv) => kv.split('=')[0] ?? '');

/** Whether an environ holds `value` anywhere, reported without the value. */
function holds(environ: string[], value: string): boolean {
  return environ.some((kv) => kv.includes(value));
}

describe('the runtime in real pods', () => {
  it('cloudtaser-init installs the wrapper, which starts the app with its secrets from OpenBao', async () => {
    const created = await createPod(pod('app'));
    // The webhook rewrote the pod; the API server stored no value.
    expect(created.spec?.initContainers?.map((c) => c.name)).toEqual(['cloudtaser-init']);
    expect(created.spec?.containers[0]?.command?.[0]).toBe(WRAPPER_PATH);
    expect(JSON.stringify(created).includes(VALUES.password)).toBe(false);
    // One token in the pod: the one projected for vault's audience.
    expect(
      (created.spec?.volumes ?? [])
        .filter((v) => v.projected)
        .map((v) => v.projected?.sources?.map((s) => s.serviceAccountToken?.audience)),
    ).toEqual([['cloudtaser']]);

    const running = await waitForPod(core, NS, 'app', 'app running', (p) => isRunning(p, 'app'));
    const init = running.status?.initContainerStatuses?.find((s) => s.name === 'cloudtaser-init');
    expect(init?.state?.terminated?.exitCode, describePod(running)).toBe(0);
    expect(init?.image).toContain(info.node?.images.init ?? '?');

    const { pid1, child } = await wrapperAndApp(running);
    // PID 1 is the wrapper the init container copied into the emptyDir: the
    // same bytes as the wrapper this checkout built.
    expect(pid1.argv.slice(0, 3)).toEqual([WRAPPER_PATH, '--cloudtaser-stage2', 'sh']);
    expect(exeDigest(pid1.pid)).toBe(fileDigest(info.node?.binaries.wrapper ?? '?'));

    // The app has the values, read from vault with the pod's projected token.
    const appEnv = hostEnviron(child.pid);
    expect(
      appEnv.includes(`DB_PASS=${VALUES.password}`),
      `DB_PASS (${fingerprint(VALUES.password)}) in the app's environ`,
    ).toBe(true);
    expect(appEnv.includes(`DB_USER=${VALUES.username}`), 'DB_USER in the app').toBe(true);
    expect(names(appEnv).filter((n) => /^(VAULT_|CLOUDTASER_)/.test(n))).toEqual([]);
    const logText = await eventually('the app to log', async () => {
      const l = await podLog('app');
      return l.includes('app started') ? l : undefined;
    });
    expect(logText).toContain(
      `app started: DB_PASS has ${VALUES.password.length} chars, DB_USER has ${VALUES.username.length} chars`,
    );
    expect(logText.includes(VALUES.password)).toBe(false);
  });

  it("keeps values and VAULT_*/CLOUDTASER_* out of PID 1's environ", async () => {
    const p = await waitForPod(core, NS, 'app', 'app running', (q) => isRunning(q, 'app'));
    const { pid1 } = await wrapperAndApp(p);
    const environ = hostEnviron(pid1.pid);
    // A readable, non-empty environ: an empty read would prove nothing.
    expect(names(environ)).toContain('PATH');
    expect(names(environ).filter((n) => /^(VAULT_|CLOUDTASER_|DB_)/.test(n))).toEqual([]);
    for (const [field, value] of Object.entries(VALUES)) {
      expect(holds(environ, value), `${field} (${fingerprint(value)}) in PID 1's environ`).toBe(
        false,
      );
    }
  });

  it("refuses the guide's in-pod read of PID 1's environ: the wrapper is not dumpable", async () => {
    // `kubectl exec … cat /proc/1/environ` prints nothing because the read
    // is refused, not because the environ was read and found clean: the
    // host-side read above is the proof; this is what a user sees.
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        info.binaries.kubectl,
        [
          `--kubeconfig=${info.kubeconfig}`,
          '-n',
          NS,
          'exec',
          'app',
          '-c',
          'app',
          '--',
          'cat',
          '/proc/1/environ',
        ],
        { timeout: 30_000 },
        (err, stdout, stderr) => {
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
            out: stdout + stderr,
          });
        },
      );
    });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('Permission denied');
    for (const v of Object.values(VALUES)) expect(r.out.includes(v)).toBe(false);
  });

  it('delivers SIGTERM through the wrapper on pod deletion; the pod ends well before its grace period', async () => {
    const p = await waitForPod(core, NS, 'app', 'app running', (q) => isRunning(q, 'app'));
    const { pid1, child } = await wrapperAndApp(p);
    const t0 = Date.now();
    await core.deleteNamespacedPod({ name: 'app', namespace: NS });
    await eventually(
      'the pod to be gone',
      () =>
        core.readNamespacedPod({ name: 'app', namespace: NS }).then(
          () => undefined,
          (e: unknown) => ((e as { code?: number }).code === 404 ? true : undefined),
        ),
      40_000,
    );
    const elapsed = Date.now() - t0;
    // The app's trap ran: the signal reached it through the wrapper.
    expect(existsSync(join(outDir, 'app', 'term'))).toBe(true);
    // Grace period 30 s: without forwarding, the kubelet would wait it out.
    expect(elapsed).toBeLessThan(10_000);
    for (const pid of [pid1.pid, child.pid]) expect(existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('keeps the values of a native Secret still referenced by envFrom out of PID 1', async () => {
    await createPod(
      pod('envfrom', {
        container: { envFrom: [{ secretRef: { name: 'native' } }] },
      }),
    );
    const p = await waitForPod(core, NS, 'envfrom', 'app running', (q) => isRunning(q, 'app'));
    const { pid1, child } = await wrapperAndApp(p);
    const environ = hostEnviron(pid1.pid);
    expect(names(environ)).toContain('PATH');
    expect(names(environ).filter((n) => n.startsWith('DB_'))).toEqual([]);
    for (const [k, v] of Object.entries(NATIVE)) {
      expect(holds(environ, v), `native ${k} (${fingerprint(v)}) in PID 1's environ`).toBe(false);
    }
    // The app gets vault's values in their place.
    const appEnv = hostEnviron(child.pid);
    expect(appEnv.includes(`DB_PASS=${VALUES.password}`), 'vault DB_PASS in the app').toBe(true);
    expect(holds(appEnv, NATIVE.DB_PASS), 'native DB_PASS in the app').toBe(false);
    await core.deleteNamespacedPod({ name: 'envfrom', namespace: NS, gracePeriodSeconds: 0 });
  });

  it('target verify-pod: absent on an injected pod, PRESENT on the same pod created past the webhook', async () => {
    const body = pod('verify', { container: { envFrom: [{ secretRef: { name: 'native' } }] } });
    await createPod(body);
    // Ready only once the wrapper has started the app (the webhook's startup probe).
    const p = await waitForPod(core, NS, 'verify', 'Ready', (q) =>
      (q.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    expect(p.spec?.containers[0]?.startupProbe?.exec?.command?.slice(0, 2)).toEqual([
      WRAPPER_PATH,
      '--started',
    ]);
    const env = { KUBECONFIG: info.kubeconfig, USER: 'tester' };
    const image = info.node?.images.busybox ?? '';
    const absent = await cli(['target', 'verify-pod', 'pod/verify', '-n', NS, '--image', image], {
      env,
    });
    expect(absent.stderr).toBe('');
    expect(absent.stdout).toBe(
      [
        `pod ${NS}/verify, container app, PID 1: cloudtaser-wrap`,
        'DB_PASS  absent',
        'DB_USER  absent',
        'no VAULT_* or CLOUDTASER_* variable in its environment',
        '',
      ].join('\n'),
    );
    expect(absent.code).toBe(0);

    // The same annotated pod in a namespace the webhook does not serve: the
    // app is PID 1 and the native envFrom values are in its environment.
    const bypassed = `${NS}-bypassed`;
    await core.createNamespace({ body: { metadata: { name: bypassed } } });
    await core.createNamespacedSecret({
      namespace: bypassed,
      body: { metadata: { name: 'native' }, stringData: NATIVE },
    });
    await core.createNamespacedServiceAccount({
      namespace: bypassed,
      body: { metadata: { name: SA } },
    });
    const plain = pod('verify', { container: { envFrom: [{ secretRef: { name: 'native' } }] } });
    if (plain.spec)
      plain.spec.volumes = [
        { name: 'vault-ca', emptyDir: {} },
        { name: 'out', emptyDir: {} },
      ];
    const created = await core.createNamespacedPod({ namespace: bypassed, body: plain });
    expect(created.spec?.initContainers ?? []).toEqual([]);
    await waitForPod(core, bypassed, 'verify', 'app running', (q) => isRunning(q, 'app'));
    const present = await cli(
      ['target', 'verify-pod', 'pod/verify', '-n', bypassed, '--image', image],
      { env },
    );
    // The pod spec's own VAULT_CACERT setting reaches PID 1 too: reported, not a value.
    expect(present.stdout).toBe(
      [
        `pod ${bypassed}/verify, container app, PID 1: sh`,
        'DB_PASS       PRESENT',
        'DB_USER       PRESENT',
        'VAULT_CACERT  PRESENT',
        '',
      ].join('\n'),
    );
    expect(present.stderr).toContain('has DB_PASS, DB_USER, VAULT_CACERT in its environment');
    expect(present.code).toBe(1);
    for (const r of [absent, present]) {
      for (const v of [...Object.values(VALUES), ...Object.values(NATIVE)]) {
        expect((r.stdout + r.stderr).includes(v)).toBe(false);
      }
    }
    await core.deleteNamespacedPod({ name: 'verify', namespace: NS, gracePeriodSeconds: 0 });
    await core.deleteNamespace({ name: bypassed });
  });

  it('starts an image without `command` with the ENTRYPOINT from its registry, through the wrapper', async () => {
    const [repo = '', tag = ''] = NODE_IMAGES.busybox.split(':');
    // The busybox files under an image config whose ENTRYPOINT is the app.
    const image = await pushWithConfig(info.registry, repo, tag, 'entrypoint', {
      Env: ['PATH=/bin'],
      Entrypoint: ['sh', '-c', APP_SCRIPT],
    });
    const body = pod('entrypoint', { container: { image } });
    const app = body.spec?.containers[0];
    if (app) delete app.command;
    const created = await createPod(body);
    expect(created.spec?.containers[0]?.command).toEqual([WRAPPER_PATH, 'sh', '-c', APP_SCRIPT]);
    const p = await waitForPod(core, NS, 'entrypoint', 'app running', (q) => isRunning(q, 'app'));
    const { child } = await wrapperAndApp(p);
    expect(
      hostEnviron(child.pid).includes(`DB_PASS=${VALUES.password}`),
      `DB_PASS (${fingerprint(VALUES.password)}) in the app's environ`,
    ).toBe(true);
    const text = await eventually('the app to log', async () => {
      const l = await podLog('entrypoint');
      return l.includes('app started') ? l : undefined;
    });
    expect(text).toContain(`app started: DB_PASS has ${VALUES.password.length} chars`);
    await core.deleteNamespacedPod({ name: 'entrypoint', namespace: NS, gracePeriodSeconds: 0 });
  });

  describe('fails closed with one clear log line and no secret', () => {
    const cases: { name: string; o: () => PodOptions; line: (o: PodOptions) => string[] }[] = [
      {
        name: 'a role vault does not have',
        o: () => ({ role: 'nope-role' }),
        line: () => ['vault refused the login', 'role "nope-role"', 'vault has no role'],
      },
      {
        name: 'a service account the role does not bind',
        o: () => ({ serviceAccount: 'other' }),
        line: () => [
          'vault refused the login',
          `as service account ${NS}/other`,
          'the role does not bind service account "other"',
        ],
      },
      {
        name: 'an unreachable vault',
        o: () => ({ address: unreachable }),
        line: (o) => [`cannot reach vault at ${o.address ?? ''}`, 'nothing listens there'],
      },
    ];
    let unreachable = '';
    beforeAll(async () => {
      unreachable = `https://127.0.0.1:${await freePort()}`;
    });

    for (const c of cases) {
      it(c.name, async () => {
        const name = `fail-${cases.indexOf(c)}`;
        const o = { ...c.o(), restartPolicy: 'Never' as const };
        await createPod(pod(name, o));
        const p = await waitForPod(
          core,
          NS,
          name,
          'phase Failed',
          (q) => q.status?.phase === 'Failed',
        );
        const app = p.status?.containerStatuses?.find((s) => s.name === 'app');
        expect(app?.state?.terminated?.exitCode, describePod(p)).toBe(1);
        const text = await podLog(name);
        const lines = text.split('\n').filter((l) => l.includes('not starting'));
        expect(lines, text).toHaveLength(1);
        for (const part of c.line(o)) expect(lines[0]).toContain(part);
        expect(lines[0]).toMatch(/^cloudtaser-wrapper: not starting sh: /);
        // The app never ran, and no value reached the log.
        expect(text).not.toContain('app started');
        for (const v of Object.values(VALUES)) expect(text.includes(v)).toBe(false);
      });
    }
  });
});
