// Files as a delivery form, end to end against the real API server and
// OpenBao: discover maps a mounted Secret to files at the paths the app reads
// today, protect writes the file-map, the webhook (registered with the API
// server) swaps the Secret volume for a memory-backed emptyDir in the pods
// the controller-manager creates, and the wrapper, run as a host process
// with that pod's settings, writes the files before it starts the app.
import { AppsV1Api, CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookServer, type WebhookServer } from '../src/webhook/server.js';
import { projectRoot } from '../testenv/paths.js';
import { loopbackPki } from '../testenv/pki.js';
import { cli, tempDir } from './helpers/cli.js';
import { registerWebhook, removeWebhookAndNamespace, waitForWebhook } from './helpers/webhook.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const run = promisify(execFile);
const ns = uniqueName('rtf');
const KEY = `key-${randomBytes(8).toString('hex')}`;
const CRT = `crt-${randomBytes(8).toString('hex')}`;
const PASS = `pass-${randomBytes(8).toString('hex')}`;
const hookName = `cloudtaser-${ns}`;
let server: WebhookServer | undefined;
let dir = '';
/** Where the app reads its TLS files: a host path, since the wrapper runs on the host. */
let tlsDir = '';
let planText = '';

beforeAll(async () => {
  dir = await tempDir();
  tlsDir = join(dir, 'tls');
  const pki = await loopbackPki(dir);
  server = await startWebhookServer({
    resolve: () => Promise.reject(new Error('no image lookups in this test')),
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
  await waitForWebhook(core, ns);
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'web' } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'tls' }, stringData: { 'tls.key': KEY, 'tls.crt': CRT } },
  });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { password: PASS } },
  });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            serviceAccountName: 'web',
            containers: [
              {
                name: 'web',
                image: 'registry.example.com/web:1.0',
                command: ['/web'],
                env: [
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
                  },
                ],
                volumeMounts: [{ name: 'tls', mountPath: tlsDir, readOnly: true }],
              },
            ],
            volumes: [{ name: 'tls', secret: { secretName: 'tls', defaultMode: 0o440 } }],
          },
        },
      },
    },
  });
  expect((await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd: dir })).code).toBe(
    0,
  );
  planText = await readFile(join(dir, 'plan.yaml'), 'utf8');
  expect((await cli(['source', 'apply-plan', 'plan.yaml'], { cwd: dir })).code).toBe(0);
  await bao('POST', `secret/data/${ns}/tls`, { data: { 'tls.key': KEY, 'tls.crt': CRT } });
  await bao('POST', `secret/data/${ns}/db`, { data: { password: PASS } });
  const verify = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir });
  expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  const p = await cli(
    ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', sandbox().baoTlsAddr, '--yes'],
    { cwd: dir },
  );
  expect(p.code, p.stdout + p.stderr).toBe(0);
});

afterAll(async () => {
  await removeWebhookAndNamespace(hookName, ns);
  await server?.close();
});

async function injectedPod(): Promise<V1Pod> {
  const core = kubeConfig().makeApiClient(CoreV1Api);
  return eventually(
    'a pod created from the protected template',
    async () => {
      const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app=web' });
      return pods.items.find((p) => p.metadata?.annotations?.['cloudtaser.io/inject'] === 'true');
    },
    60_000,
  );
}

const envOf = (c: V1Container | undefined): Record<string, string> =>
  Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? 'valueFrom']));

describe('files from vault', () => {
  it('are planned at the mounted paths, with the volume mode, and annotated by protect', async () => {
    expect(planText).toContain(`path: ${tlsDir}/tls.key`);
    expect(planText).toContain(`mountPath: ${tlsDir}`);
    expect(planText).toContain('mode: "0440"');
    const apps = kubeConfig().makeApiClient(AppsV1Api);
    const d = await apps.readNamespacedDeployment({ name: 'web', namespace: ns });
    const path = `secret/data/${ns}/tls`;
    expect(d.spec?.template.metadata?.annotations?.['cloudtaser.io/file-map']).toBe(
      `${path}:tls.crt=${tlsDir}/tls.crt;mount=${tlsDir};mode=0440,${path}:tls.key=${tlsDir}/tls.key;mount=${tlsDir};mode=0440`,
    );
  });

  it('replace the Secret volume with a memory-backed emptyDir at the same path in the admitted pod', async () => {
    const pod = await injectedPod();
    expect(pod.spec?.volumes?.find((v) => v.name === 'tls')).toEqual({
      name: 'tls',
      emptyDir: { medium: 'Memory', sizeLimit: '8Mi' },
    });
    const c = pod.spec?.containers[0];
    expect(c?.volumeMounts).toContainEqual({ name: 'tls', mountPath: tlsDir });
    expect(envOf(c).CLOUDTASER_FILE_MAP).toContain(`tls.key=${tlsDir}/tls.key`);
    expect(JSON.stringify(pod)).not.toContain(KEY);
  });

  it('are written by the wrapper before the app starts: content, mode, owner; the env is as before', async () => {
    const pod = await injectedPod();
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'web',
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
    // The kubelet creates the emptyDir's mount point; here, the test does.
    await mkdir(tlsDir);
    const local = { CLOUDTASER_SA_TOKEN_FILE: tokenFile, VAULT_CACERT: sandbox().baoCaFile };
    const app = await run(
      join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper'),
      // The app reads the file: it is there before the app starts.
      ['sh', '-c', `cat ${tlsDir}/tls.key; echo; env`],
      { env: { PATH: process.env.PATH ?? '', ...envOf(pod.spec?.containers[0]), ...local } },
    );
    const [first, ...envLines] = app.stdout.split('\n');
    expect(first).toBe(KEY);
    const env = Object.fromEntries(
      envLines
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // The env-map still delivers DB_PASS; the files add no variable.
    expect(env.DB_PASS).toBe(PASS);
    expect(Object.keys(env).filter((k) => /^(CLOUDTASER_|VAULT_|TLS)/.test(k))).toEqual([]);
    expect(envLines.join('\n')).not.toContain(KEY);
    for (const [name, value] of [
      ['tls.key', KEY],
      ['tls.crt', CRT],
    ] as const) {
      const file = join(tlsDir, name);
      expect(await readFile(file, 'utf8')).toBe(value);
      const st = await stat(file);
      expect((st.mode & 0o777).toString(8)).toBe('440');
      expect([st.uid, st.gid]).toEqual([process.getuid?.(), process.getgid?.()]);
    }
    expect(app.stderr).not.toContain(KEY);
  });
});
