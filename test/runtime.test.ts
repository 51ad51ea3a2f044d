// End to end at run time: the webhook, registered with the real API server,
// mutates the Pods the controller-manager creates for a Deployment that
// `target protect` annotated; the wrapper then starts the app with the
// pod's own settings and a token bound to that pod.
import { AppsV1Api, CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/webhook/registry.js';
import { startWebhookServer, type WebhookServer } from '../src/webhook/server.js';
import { projectRoot } from '../testenv/paths.js';
import { loopbackPki } from '../testenv/pki.js';
import { cli, tempDir } from './helpers/cli.js';
import { startRegistry, type LocalRegistry } from './helpers/registry.js';
import { registerWebhook, removeWebhookAndNamespace, waitForWebhook } from './helpers/webhook.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const run = promisify(execFile);
const ns = uniqueName('rt');
const VALUE = `rt-${randomBytes(8).toString('hex')}`;
const hookName = `cloudtaser-${ns}`;
let server: WebhookServer | undefined;
let registry: LocalRegistry | undefined;
let dir = '';

beforeAll(async () => {
  dir = await tempDir();
  const pki = await loopbackPki(dir);
  registry = await startRegistry(dir);
  await registry.push('team/app', '1.0', { Entrypoint: ['/bin/app'], Cmd: ['--serve'] }, true);
  const images = new RegistryClient({ insecure: [registry.host] });
  server = await startWebhookServer({
    resolve: (image, namespace, pullSecrets) => images.resolve(image, namespace, pullSecrets),
    cert: pki.cert,
    key: pki.key,
    port: 0,
    host: '127.0.0.1',
    config: {
      initImage: 'registry.example.com/cloudtaser-init:test',
      authMountPath: 'auth/kubernetes',
    },
    log: () => undefined,
  });
  const kc = kubeConfig();
  await registerWebhook({
    name: hookName,
    namespace: ns,
    port: server.port,
    caPems: [pki.ca],
    reinvocation: true,
  });
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  // The API server picks up a new webhook configuration asynchronously.
  await waitForWebhook(core, ns);
  await core.createNamespacedServiceAccount({
    namespace: ns,
    body: { metadata: { name: 'payment-api' } },
  });
  await core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: 'db-credentials' },
      stringData: { username: 'app', password: VALUE },
    },
  });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'payment-api' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'payment-api' } },
        template: {
          metadata: { labels: { app: 'payment-api' } },
          spec: {
            serviceAccountName: 'payment-api',
            // Runs before the app and reads the same Secret: once the native
            // Secret is gone it must get the value from vault too.
            initContainers: [
              {
                name: 'migrate',
                image: 'registry.example.com/payments/migrate:1.0',
                command: ['/migrate'],
                args: ['--up'],
                env: [
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } },
                  },
                ],
              },
            ],
            containers: [
              {
                name: 'api',
                image: 'registry.example.com/payments/payment-api:1.4.2',
                command: ['/app/payment-api'],
                args: ['--listen', ':8080'],
                env: [
                  {
                    name: 'DB_USER',
                    valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'username' } },
                  },
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  });
  // The migration, as the guide runs it.
  const steps = [
    ['target', 'discover', '-o', 'plan.yaml', '-n', ns],
    ['source', 'apply-plan', 'plan.yaml'],
  ];
  for (const s of steps) expect((await cli(s, { cwd: dir })).code).toBe(0);
  await bao('POST', `secret/data/${ns}/db-credentials`, {
    data: { username: 'app', password: VALUE },
  });
  expect((await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir })).code).toBe(0);
  const p = await cli(
    ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', sandbox().baoTlsAddr, '--yes'],
    { cwd: dir },
  );
  expect(p.code).toBe(0);
});

afterAll(async () => {
  await removeWebhookAndNamespace(hookName, ns);
  await server?.close();
  registry?.stop();
});

async function injectedPod(): Promise<V1Pod> {
  const core = kubeConfig().makeApiClient(CoreV1Api);
  return eventually(
    'a pod created from the protected template',
    async () => {
      const pods = await core.listNamespacedPod({
        namespace: ns,
        labelSelector: 'app=payment-api',
      });
      return pods.items.find((p) => p.metadata?.annotations?.['cloudtaser.io/inject'] === 'true');
    },
    60_000,
  );
}

describe('runtime injection', () => {
  it("injects cloudtaser-init into the controller-created pods, as the guide's jsonpath shows", async () => {
    const pod = await injectedPod();
    const info = sandbox();
    const { stdout } = await run(info.binaries.kubectl, [
      '--kubeconfig',
      info.kubeconfig,
      'get',
      'pod',
      pod.metadata?.name ?? '',
      '-n',
      ns,
      '-o',
      'jsonpath={.spec.initContainers[*].name}',
    ]);
    // The copy first; the pod's own init container after it, wrapped.
    expect(stdout).toBe('cloudtaser-init migrate');
    const c = pod.spec?.containers[0];
    expect(c?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '/app/payment-api',
      '--listen',
      ':8080',
    ]);
    expect(c?.args).toBeUndefined();
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? 'valueFrom']));
    const path = `secret/data/${ns}/db-credentials`;
    const injected = {
      VAULT_ADDR: sandbox().baoTlsAddr,
      VAULT_AUTH_ROLE: `${ns}-role`,
      VAULT_AUTH_MOUNT_PATH: 'auth/kubernetes',
      CLOUDTASER_SECRET_PATHS: path,
      CLOUDTASER_ENV_MAP: `${path}:password=DB_PASS,${path}:username=DB_USER`,
      CLOUDTASER_SA_TOKEN_FILE: '/var/run/secrets/cloudtaser.io/serviceaccount/token',
    };
    // The app container also gets its started marker, read by its startup probe.
    expect(env).toEqual({ ...injected, CLOUDTASER_STARTED_FILE: '/cloudtaser/run/api' });
    expect(c?.startupProbe?.exec?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '--started',
      '/cloudtaser/run/api',
    ]);
    const migrate = pod.spec?.initContainers?.[1];
    expect(migrate?.command).toEqual(['/cloudtaser/bin/cloudtaser-wrapper', '/migrate', '--up']);
    expect(migrate?.args).toBeUndefined();
    // The native Secret's DB_PASS is gone from the init container too.
    expect(
      Object.fromEntries((migrate?.env ?? []).map((e) => [e.name, e.value ?? 'valueFrom'])),
    ).toEqual(injected);
    expect(pod.spec?.volumes?.find((v) => v.name === 'cloudtaser-bin')?.emptyDir?.medium).toBe(
      'Memory',
    );
    // The wrapper's token: projected for vault's audience, never the API token.
    expect(pod.spec?.volumes?.find((v) => v.name === 'cloudtaser-token')?.projected).toEqual({
      sources: [
        { serviceAccountToken: { audience: 'cloudtaser', expirationSeconds: 600, path: 'token' } },
      ],
      defaultMode: 420,
    });
    for (const k of [c, migrate]) {
      expect(k?.volumeMounts).toContainEqual({
        name: 'cloudtaser-token',
        mountPath: '/var/run/secrets/cloudtaser.io/serviceaccount',
        readOnly: true,
      });
    }
    expect(JSON.stringify(pod)).not.toContain(VALUE);
  });

  it("starts the init container and the app through the wrapper with the pod's settings and a token bound to the pod", async () => {
    const pod = await injectedPod();
    const core = kubeConfig().makeApiClient(CoreV1Api);
    // What the kubelet writes into the projected volume: vault's audience, bound to the pod.
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'payment-api',
      namespace: ns,
      body: {
        spec: {
          audiences: ['cloudtaser'],
          expirationSeconds: 600,
          boundObjectRef: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata?.name ?? '',
            uid: pod.metadata?.uid ?? '',
          },
        },
      },
    });
    const tokenFile = join(dir, 'pod-token');
    await writeFile(tokenFile, tr.status?.token ?? '');
    const envOf = (c: V1Container | undefined): Record<string, string> =>
      Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? '']));
    // The projected file's path and the trust store the image would hold
    // stand in for what a kubelet and the image provide.
    const local = {
      CLOUDTASER_SA_TOKEN_FILE: tokenFile,
      VAULT_CACERT: sandbox().baoCaFile,
      CLOUDTASER_STARTED_FILE: join(dir, 'started'),
    };
    const init = await run(
      join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper'),
      ['sh', '-c', 'echo "init DB_PASS=$DB_PASS"'],
      { env: { PATH: process.env.PATH ?? '', ...envOf(pod.spec?.initContainers?.[1]), ...local } },
    );
    expect(init.stdout).toContain(`init DB_PASS=${VALUE}`);
    // The app waits for the test's go-ahead, so it (and the wrapper) is
    // certainly alive while its environ is read.
    const release = join(dir, 'release-app');
    const child = spawn(
      join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper'),
      [
        'sh',
        '-c',
        `echo "DB_PASS=$DB_PASS"; echo ready; while [ ! -e ${release} ]; do sleep 0.05; done`,
      ],
      {
        env: { PATH: process.env.PATH ?? '', ...envOf(pod.spec?.containers[0]), ...local },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        resolve(code);
      }),
    );
    try {
      await eventually(
        'the app to start',
        () => Promise.resolve(out.includes('ready') || child.exitCode !== null ? true : undefined),
        20_000,
      );
      expect(child.exitCode, err).toBeNull();
      // The read must succeed and be the wrapper's own environment: an
      // unreadable or empty environ proves nothing.
      const environ = await readFile(`/proc/${child.pid ?? 0}/environ`);
      expect(environ.toString()).toContain('PATH=');
      expect(environ.includes(Buffer.from(VALUE))).toBe(false);
      await writeFile(release, '');
      expect(await exited, err).toBe(0);
      expect(out).toContain(`DB_PASS=${VALUE}`);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('passes pods without the annotation untouched and rejects malformed annotations by name', async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const plain = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'plain' },
        spec: { containers: [{ name: 'c', image: 'busybox', command: ['sleep', '1'] }] },
      },
    });
    expect(plain.spec?.initContainers).toBeUndefined();
    expect(plain.spec?.containers[0]?.command).toEqual(['sleep', '1']);
    const bad = await core
      .createNamespacedPod({
        namespace: ns,
        body: {
          metadata: {
            name: 'bad',
            annotations: {
              'cloudtaser.io/inject': 'true',
              'cloudtaser.io/vault-address': 'https://vault',
              'cloudtaser.io/vault-role': 'r',
              'cloudtaser.io/secret-paths': 'secret/data/x',
              'cloudtaser.io/env-map': 'not-a-mapping',
            },
          },
          spec: { containers: [{ name: 'c', image: 'busybox', command: ['true'] }] },
        },
      })
      .then(
        () => 'created',
        (e: unknown) => String((e as { body?: unknown }).body),
      );
    expect(bad).toContain('cloudtaser.io/env-map');
  });

  it('refuses a plain-http vault address at admission unless the template opts in', async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const path = `secret/data/${ns}/db-credentials`;
    const annotations = {
      'cloudtaser.io/inject': 'true',
      'cloudtaser.io/vault-address': sandbox().baoAddr,
      'cloudtaser.io/vault-role': `${ns}-role`,
      'cloudtaser.io/secret-paths': path,
      'cloudtaser.io/env-map': `${path}:password=DB_PASS`,
    };
    const spec = { containers: [{ name: 'c', image: 'busybox', command: ['true'] }] };
    const refused = await core
      .createNamespacedPod({
        namespace: ns,
        body: { metadata: { name: 'plain-http', annotations }, spec },
      })
      .then(
        () => 'created',
        (e: unknown) => String((e as { body?: unknown }).body),
      );
    expect(refused).toContain('is plain http');
    expect(refused).toContain('cloudtaser.io/allow-insecure-vault');
    const optedIn = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: {
          name: 'plain-http-opted-in',
          annotations: { ...annotations, 'cloudtaser.io/allow-insecure-vault': 'true' },
        },
        spec,
      },
    });
    expect(optedIn.spec?.containers[0]?.env).toContainEqual({
      name: 'CLOUDTASER_ALLOW_INSECURE_VAULT',
      value: 'true',
    });
  });

  it("takes a command-less container's ENTRYPOINT and CMD from a real registry, and refuses when it cannot", async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const path = `secret/data/${ns}/db-credentials`;
    const annotations = {
      'cloudtaser.io/inject': 'true',
      'cloudtaser.io/vault-address': sandbox().baoTlsAddr,
      'cloudtaser.io/vault-role': `${ns}-role`,
      'cloudtaser.io/secret-paths': path,
      'cloudtaser.io/env-map': `${path}:password=DB_PASS`,
    };
    const host = registry?.host ?? '';
    const created = await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'from-registry', annotations },
        spec: { containers: [{ name: 'app', image: `${host}/team/app:1.0` }] },
      },
    });
    expect(created.spec?.containers[0]?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '/bin/app',
      '--serve',
    ]);
    expect(created.spec?.initContainers?.[0]?.name).toBe('cloudtaser-init');
    const refused = await core
      .createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'unknown-image', annotations },
          spec: { containers: [{ name: 'app', image: `${host}/team/missing:1` }] },
        },
      })
      .then(
        () => 'created',
        (e: unknown) => String((e as { body?: unknown }).body),
      );
    expect(refused).toContain('cloudtaser: cannot find the command of container app');
    expect(refused).toContain('answered 404');
  });
});
