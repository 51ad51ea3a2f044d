// The whole migration of a workload that reads Secrets both ways, on the
// sandbox's real node: a Deployment reads a TLS key pair and a config file
// from a mounted Secret (items, per-item and default modes) and variables
// from another Secret through envFrom. discover, apply-plan, import from
// Kubernetes, verify, protect (with the built webhook serving the pods),
// cleanup; then the app reads the same files at the same paths with the
// same mode and owner, and has the same variables, while the API server
// has no Secret left and the template no reference to one; unprotect puts
// the template back exactly.
//
// Values are random per run and never printed: files and variables are
// compared by sha256, messages carry fingerprints only.
import type { AppsV1Api, CoreV1Api, V1Deployment, V1Pod } from '@kubernetes/client-node';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxInfo } from '../testenv/sandbox.js';
import { cli, tempDir, type CliResult } from './helpers/cli.js';
import {
  acquirePodSandbox,
  containerId,
  containerProcesses,
  hostEnviron,
  onlyPod,
  createVaultCaConfigMap,
  startPodWebhook,
  type PodSandbox,
  type PodWebhook,
} from './helpers/pods.js';
import { eventually, kubeClients, uniqueName } from './helpers/sandbox.js';

const NS = uniqueName('files');
const TLS_DIR = '/etc/tls';
const CA_DIR = '/etc/vault-ca';
const FILES = {
  'tls.crt': `crt-${randomBytes(16).toString('hex')}`,
  'tls.key': `key-${randomBytes(16).toString('hex')}`,
  config: `conf-${randomBytes(16).toString('hex')}`,
};
const ENV = {
  API_TOKEN: `tok-${randomBytes(12).toString('hex')}`,
  DB_URL: `db-${randomBytes(12).toString('hex')}`,
};
const ALL_VALUES = [...Object.values(FILES), ...Object.values(ENV)];

let sb: PodSandbox | undefined;
let info: SandboxInfo;
let core: CoreV1Api;
let apps: AppsV1Api;
let hook: PodWebhook | undefined;
let dir = '';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function deployment(): V1Deployment {
  return {
    metadata: { name: 'web' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          hostNetwork: true,
          tolerations: info.node ? [info.node.toleration] : [],
          serviceAccountName: 'web',
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'app',
              image: info.node?.images.busybox ?? '',
              command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done"],
              env: [{ name: 'VAULT_CACERT', value: `${CA_DIR}/ca.crt` }],
              envFrom: [{ secretRef: { name: 'web-env' } }],
              volumeMounts: [
                { name: 'vault-ca', mountPath: CA_DIR, readOnly: true },
                { name: 'tls', mountPath: TLS_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'vault-ca', configMap: { name: 'vault-ca' } },
            {
              name: 'tls',
              secret: {
                secretName: 'web-files',
                defaultMode: 0o440,
                items: [
                  { key: 'tls.crt', path: 'tls.crt' },
                  { key: 'tls.key', path: 'tls.key', mode: 0o400 },
                  { key: 'config', path: 'app.conf' },
                ],
              },
            },
          ],
        },
      },
    },
  };
}

beforeAll(async () => {
  sb = await acquirePodSandbox();
  info = sb.info;
  ({ core, apps } = kubeClients(info));
  dir = await tempDir('ct-files-');
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'web' } } });
  await createVaultCaConfigMap(core, NS, info);
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'web-files' }, stringData: FILES },
  });
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'web-env' }, stringData: ENV },
  });
  hook = await startPodWebhook(info, {
    dir,
    namespace: NS,
    initImage: info.node?.images.init ?? '',
  });
}, 900_000);

afterAll(async () => {
  hook?.stop();
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await sb?.release();
}, 180_000);

interface Seen {
  /** File name -> sha256, mode, uid, gid. */
  files: Record<string, { sha: string; mode: string; uid: number; gid: number }>;
  /** Variable -> sha256 of its value. */
  env: Record<string, string>;
}

/** What the app process sees, read from the host through /proc (as root). */
async function appView(p: V1Pod): Promise<Seen> {
  const id = containerId(p, 'app');
  const app = await eventually('the app process', () =>
    Promise.resolve(containerProcesses(id).find((x) => x.argv[0] === 'sh')),
  );
  const root = `/proc/${app.pid}/root${TLS_DIR}`;
  const files: Seen['files'] = {};
  // The names the app lists; the Secret volume's own ..data links are hidden.
  for (const name of readdirSync(root).filter((n) => !n.startsWith('..'))) {
    const st = statSync(join(root, name));
    files[name] = {
      sha: sha(readFileSync(join(root, name))),
      mode: (st.mode & 0o777).toString(8),
      uid: st.uid,
      gid: st.gid,
    };
  }
  const env: Seen['env'] = {};
  for (const kv of hostEnviron(app.pid)) {
    const i = kv.indexOf('=');
    const name = kv.slice(0, i);
    if (name in ENV) env[name] = sha(kv.slice(i + 1));
  }
  return { files, env };
}

function expectOk(r: CliResult, what: string): void {
  for (const v of ALL_VALUES) {
    expect(r.stdout.includes(v) || r.stderr.includes(v), `${what} printed a value`).toBe(false);
  }
  expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(0);
}

describe('migrating a workload that reads files and envFrom from Secrets, on a real node', () => {
  it('keeps what the app reads, leaves no Secret behind, and unprotect restores the template', async () => {
    const created = await apps.createNamespacedDeployment({ namespace: NS, body: deployment() });
    const before = await eventually('the Deployment as the API server keeps it', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'web', namespace: NS });
      return d.metadata?.generation === created.metadata?.generation ? d : undefined;
    });
    const native = await appView(await onlyPod(core, NS, 'web', false));
    // The expected view, from the values themselves: the test reads what it means to.
    expect(native).toEqual({
      files: {
        'tls.crt': { sha: sha(FILES['tls.crt']), mode: '440', uid: 0, gid: 0 },
        'tls.key': { sha: sha(FILES['tls.key']), mode: '400', uid: 0, gid: 0 },
        'app.conf': { sha: sha(FILES.config), mode: '440', uid: 0, gid: 0 },
      },
      env: { API_TOKEN: sha(ENV.API_TOKEN), DB_URL: sha(ENV.DB_URL) },
    });

    expectOk(
      await cli(['target', 'discover', '-o', 'plan.yaml', '-n', NS], { cwd: dir }),
      'discover',
    );
    const planText = await readFile(join(dir, 'plan.yaml'), 'utf8');
    expect(planText).toContain(`path: ${TLS_DIR}/app.conf`);
    expectOk(
      await cli(['source', 'apply-plan', 'plan.yaml', '--auth-path', info.baoKubeAuthPath], {
        cwd: dir,
      }),
      'apply-plan',
    );
    expectOk(
      await cli(['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes'], { cwd: dir }),
      'import',
    );
    expectOk(await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir }), 'verify-plan');
    const p = await cli(
      [
        'target',
        'protect',
        '--plan',
        'plan.yaml',
        '--vault-address',
        info.baoTlsAddr,
        '--yes',
        '--wait',
      ],
      { cwd: dir },
    );
    expectOk(p, 'protect');
    expect(p.stdout).toContain(
      `Deployment ${NS}/web: removed native Secret references: envFrom Secret web-env in container app, volume tls`,
    );
    expect(p.stdout).not.toContain('kept native Secret references');

    const protectedPod = await onlyPod(core, NS, 'web', true);
    expect(JSON.stringify(protectedPod.spec)).not.toMatch(/secretName|secretRef|secretKeyRef/);
    expect(ALL_VALUES.some((v) => JSON.stringify(protectedPod).includes(v))).toBe(false);
    expect(protectedPod.metadata?.annotations).not.toHaveProperty(
      'cloudtaser.io/native-secret-volumes',
    );

    expectOk(
      await cli(['target', 'cleanup', '--plan', 'plan.yaml', '--yes'], { cwd: dir }),
      'cleanup',
    );
    for (const name of ['web-files', 'web-env']) {
      const gone = await core.readNamespacedSecret({ name, namespace: NS }).then(
        () => false,
        (e: unknown) => (e as { code?: number }).code === 404,
      );
      expect(gone, `Secret ${name} deleted`).toBe(true);
    }

    // The same files, paths, modes and owners, and the same variables.
    expect(await appView(protectedPod)).toEqual(native);
    const t = (await apps.readNamespacedDeployment({ name: 'web', namespace: NS })).spec?.template;
    expect(JSON.stringify(t?.spec)).not.toMatch(/secretName|secretRef|secretKeyRef/);

    expectOk(
      await cli(['target', 'unprotect', '--plan', 'plan.yaml', '--yes'], { cwd: dir }),
      'unprotect',
    );
    const restored = await apps.readNamespacedDeployment({ name: 'web', namespace: NS });
    expect(restored.spec?.template).toEqual(before.spec?.template);
  }, 900_000);
});
