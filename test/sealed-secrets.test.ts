// Migrating off Bitnami Sealed Secrets, on the sandbox's real node: the
// Sealed Secrets controller (v0.40.0, built from its module) runs as a pod
// and generates its key; a Secret is sealed with the real `kubeseal --cert`
// (the plaintext goes in on stdin, never to a file), the controller unseals
// it, and a Deployment reads it. Then discover --from sealed-secrets →
// apply-plan → import (online from the unsealed Secret, and offline from
// the SealedSecret with --sealing-key, the controller's key as its docs back
// it up) → verify → protect (the built webhook serving the pods) → cleanup,
// which deletes the SealedSecret before the Secret; the Secret must stay
// gone. The planted values must appear in no output, log, file or plan.
import type { AppsV1Api, CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deploySealedSecretsController,
  KEY_LABEL,
  type SealedSecretsController,
} from '../testenv/sealed-secrets.js';
import type { SandboxInfo } from '../testenv/sandbox.js';
import {
  parseSealingKeys,
  sealedDocuments,
  unseal,
  type SealedSecretObject,
} from '../src/sources/sealed-secrets.js';
import { cli, sandboxEnv, tempDir, type CliResult } from './helpers/cli.js';
import {
  acquirePodSandbox,
  containerId,
  containerProcesses,
  createVaultCaConfigMap,
  hostEnviron,
  isRunning,
  onlyPod,
  startPodWebhook,
  type PodSandbox,
  type PodWebhook,
} from './helpers/pods.js';
import { bao, eventually, kubeClients, uniqueName } from './helpers/sandbox.js';

const NS = uniqueName('sealed');
const CA_DIR = '/etc/vault-ca';
const VAULT_PATH = `secret/data/${NS}/db-credentials`;
const PLANTED = {
  password: `planted-${randomBytes(12).toString('hex')}`,
  username: `user-${randomBytes(6).toString('hex')}`,
};
const ALL_VALUES = Object.values(PLANTED);
const IMPORT_SEALED = ['target', 'import', '--plan', 'plan.yaml', '--from', 'sealed-secrets'];

let sb: PodSandbox | undefined;
let info: SandboxInfo;
let core: CoreV1Api;
let apps: AppsV1Api;
let hook: PodWebhook | undefined;
let controller: SealedSecretsController | undefined;
let dir = '';
const outputs: string[] = [];

const sha = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

function run(
  file: string,
  args: readonly string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      [...args],
      {
        // kubectl's discovery cache: in the sandbox dir, not the cwd (no HOME here).
        env: {
          PATH: process.env.PATH,
          KUBECONFIG: info.kubeconfig,
          KUBECACHEDIR: join(info.dir, 'kube-cache'),
        },
        maxBuffer: 16 << 20,
      },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

async function ctl(args: readonly string[], stdin?: string): Promise<string> {
  const r = await run(info.binaries.kubectl, args, stdin);
  outputs.push(r.stdout, r.stderr);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function step(
  argv: string[],
  what: string,
  expectCode = 0,
  env?: NodeJS.ProcessEnv,
): Promise<CliResult> {
  const r = await cli(argv, { cwd: dir, ...(env ? { env } : {}) });
  outputs.push(r.stdout, r.stderr);
  for (const v of ALL_VALUES) {
    expect(r.stdout.includes(v) || r.stderr.includes(v), `${what} printed a value`).toBe(false);
  }
  expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(expectCode);
  return r;
}

async function secretGone(name: string): Promise<boolean> {
  return core.readNamespacedSecret({ name, namespace: NS }).then(
    () => false,
    (e: unknown) => (e as { code?: number }).code === 404,
  );
}

/** The vault path's fields compared with the planted values, in memory: a boolean per field. */
async function vaultMatches(): Promise<Record<string, boolean>> {
  const r = await bao('GET', VAULT_PATH);
  const data =
    (r.json as { data?: { data?: Record<string, string> } } | undefined)?.data?.data ?? {};
  return Object.fromEntries(Object.entries(PLANTED).map(([k, v]) => [k, data[k] === v]));
}

/** sha256 of DB_PASS/DB_USER as the app process has them, read from the host. */
async function appEnv(p: V1Pod): Promise<Record<string, string>> {
  const id = containerId(p, 'app');
  const app = await eventually('the app process', () =>
    Promise.resolve(containerProcesses(id).find((x) => x.argv[0] === 'sh')),
  );
  const out: Record<string, string> = {};
  for (const kv of hostEnviron(app.pid)) {
    const i = kv.indexOf('=');
    const name = kv.slice(0, i);
    if (name === 'DB_PASS' || name === 'DB_USER') out[name] = sha(kv.slice(i + 1));
  }
  return out;
}

beforeAll(async () => {
  sb = await acquirePodSandbox();
  info = sb.info;
  ({ core, apps } = kubeClients(info));
  dir = await tempDir('ct-sealed-');
  // The first run on a machine builds kubeseal and the controller (minutes).
  controller = await deploySealedSecretsController(info, {
    work: dir,
    log: (l) => {
      process.stderr.write(`${l}\n`);
    },
  });
  await writeFile(join(dir, 'controller.crt'), controller.certPem);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'web' } } });
  await createVaultCaConfigMap(core, NS, info);

  // Sealed as a GitOps user seals: kubeseal with the controller's
  // certificate, the plaintext Secret on stdin; the SealedSecret lands in
  // the repo and is applied from there.
  const secret = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'db-credentials', namespace: NS },
    stringData: PLANTED,
  });
  const sealed = await run(
    controller.kubeseal,
    ['--cert', join(dir, 'controller.crt'), '--format', 'yaml'],
    secret,
  );
  outputs.push(sealed.stderr);
  expect(sealed.code, sealed.stderr).toBe(0);
  await mkdir(join(dir, 'repo', 'apps', 'payments'), { recursive: true });
  await writeFile(join(dir, 'repo', 'apps', 'payments', 'db-sealed.yaml'), sealed.stdout);
  await ctl(['apply', '-f', join(dir, 'repo', 'apps', 'payments', 'db-sealed.yaml')]);

  // The controller pod unseals it into a Secret it owns.
  await eventually(
    'the controller to unseal db-credentials',
    async () => {
      const s = await core
        .readNamespacedSecret({ name: 'db-credentials', namespace: NS })
        .catch(() => undefined);
      return s?.metadata?.ownerReferences?.some((o) => o.kind === 'SealedSecret')
        ? true
        : undefined;
    },
    120_000,
  );

  // A workload reading a plain Secret: not part of a sealed-secrets plan.
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'plain' }, stringData: { token: 'not-sealed' } },
  });
  // A SealedSecret of the same name: the controller leaves a Secret it does
  // not own alone, so discover must not take the plain Secret for a sealed one.
  const shadow = await run(
    controller.kubeseal,
    ['--cert', join(dir, 'controller.crt'), '--format', 'yaml'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'plain', namespace: NS },
      stringData: { token: 'shadow' },
    }),
  );
  expect(shadow.code, shadow.stderr).toBe(0);
  await ctl(['apply', '-f', '-'], shadow.stdout);
  await apps.createNamespacedDeployment({
    namespace: NS,
    body: {
      metadata: { name: 'other' },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'other' } },
        template: {
          metadata: { labels: { app: 'other' } },
          spec: {
            containers: [
              {
                name: 'app',
                image: 'example.invalid/app:1',
                envFrom: [{ secretRef: { name: 'plain' } }],
              },
            ],
          },
        },
      },
    },
  });

  await apps.createNamespacedDeployment({
    namespace: NS,
    body: {
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
                env: [
                  { name: 'VAULT_CACERT', value: `${CA_DIR}/ca.crt` },
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'password' } },
                  },
                  {
                    name: 'DB_USER',
                    valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'username' } },
                  },
                ],
                volumeMounts: [{ name: 'vault-ca', mountPath: CA_DIR, readOnly: true }],
              },
            ],
            volumes: [{ name: 'vault-ca', configMap: { name: 'vault-ca' } }],
          },
        },
      },
    },
  });
  hook = await startPodWebhook(info, {
    dir,
    namespace: NS,
    initImage: info.node?.images.init ?? '',
  });
}, 2_700_000);

afterAll(async () => {
  hook?.stop();
  await core.deleteNamespace({ name: NS }).catch(() => undefined);
  await controller?.stop();
  await sb?.release();
}, 300_000);

describe('migrating off Sealed Secrets, with the real controller on a real node', () => {
  it('discover → apply → import online and offline → verify → protect → cleanup; the Secret stays gone', async () => {
    const expected = { DB_PASS: sha(PLANTED.password), DB_USER: sha(PLANTED.username) };
    expect(await appEnv(await onlyPod(core, NS, 'web', false))).toEqual(expected);

    // What cleanup must not trigger: deleting the Secret while its
    // SealedSecret exists makes the controller write it back.
    const first = await core.readNamespacedSecret({ name: 'db-credentials', namespace: NS });
    await core.deleteNamespacedSecret({ name: 'db-credentials', namespace: NS });
    await eventually(
      'the controller to recreate db-credentials',
      async () => {
        const s = await core
          .readNamespacedSecret({ name: 'db-credentials', namespace: NS })
          .catch(() => undefined);
        return s && s.metadata?.uid !== first.metadata?.uid ? true : undefined;
      },
      60_000,
    );

    const d = await step(
      ['target', 'discover', '--from', 'sealed-secrets', '-o', 'plan.yaml', '-n', NS],
      'discover',
    );
    expect(d.stderr).toContain(
      'Found 1 SealedSecret(s); 1 plan source(s) read from them (sealed-secret/<name>)',
    );
    expect(d.stderr).toContain(
      `Secret ${NS}/plain exists but SealedSecret ${NS}/plain does not own it`,
    );
    const plan = await readFile(join(dir, 'plan.yaml'), 'utf8');
    expect(plan).toContain('source: sealed-secret/db-credentials');
    expect(plan).toContain(`vaultPath: ${VAULT_PATH}`);
    expect(plan).toMatch(/password: DB_PASS/);
    expect(plan).toMatch(/username: DB_USER/);
    expect(plan).toContain('unsealed from SealedSecret');
    // Only what SealedSecrets deliver: the plain Secret's workload is not planned.
    expect(plan).not.toContain('name: other');
    expect(plan).not.toContain('k8s-secret/');

    await step(
      ['source', 'apply-plan', 'plan.yaml', '--auth-path', info.baoKubeAuthPath],
      'apply-plan',
    );

    // Online: from the Secret the controller unsealed.
    const online = await step(IMPORT_SEALED, 'import online');
    expect(online.stdout).toContain('the Secrets the controller unsealed');
    expect(online.stdout).toContain(`created ${VAULT_PATH} [password, username]`);
    expect(await vaultMatches()).toEqual({ password: true, username: true });

    // Offline: from the SealedSecret with the controller's key, backed up as
    // the Sealed Secrets docs say (kubectl get secret -l … -o yaml).
    const backup = await ctl([
      'get',
      'secret',
      '-n',
      controller?.namespace ?? '',
      '-l',
      KEY_LABEL,
      '-o',
      'yaml',
    ]);
    await writeFile(join(dir, 'main.key'), backup, { mode: 0o600 });
    const wrong = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(
      join(dir, 'wrong.key'),
      wrong.privateKey.export({ type: 'pkcs1', format: 'pem' }),
      { mode: 0o600 },
    );
    expect((await bao('DELETE', `secret/metadata/${NS}/db-credentials`)).status).toBe(204);
    const refused = await step(
      [...IMPORT_SEALED, '--sealing-key', 'wrong.key'],
      'import with a wrong key',
      1,
    );
    expect(refused.stdout).toContain(
      `SealedSecret ${NS}/db-credentials key password could not be unsealed`,
    );
    expect((await bao('GET', VAULT_PATH)).status).toBe(404);
    const offline = await step([...IMPORT_SEALED, '--sealing-key', 'main.key'], 'import offline');
    expect(offline.stdout).toContain('SealedSecrets unsealed offline with --sealing-key');
    expect(offline.stdout).toContain(`created ${VAULT_PATH} [password, username]`);
    expect(await vaultMatches()).toEqual({ password: true, username: true });

    // Offline from git: the manifest kubeseal wrote, no cluster at all (the
    // kubeconfig names a file that does not exist).
    expect((await bao('DELETE', `secret/metadata/${NS}/db-credentials`)).status).toBe(204);
    const fromGit = await step(
      [...IMPORT_SEALED, '--sealing-key', 'main.key', '--repo', 'repo'],
      'import offline from git',
      0,
      sandboxEnv({ KUBECONFIG: join(dir, 'no-such-kubeconfig') }),
    );
    expect(fromGit.stdout).toContain('(manifests under repo)');
    expect(fromGit.stdout).toContain(`created ${VAULT_PATH} [password, username]`);
    expect(await vaultMatches()).toEqual({ password: true, username: true });

    await step(['source', 'verify-plan', 'plan.yaml'], 'verify-plan');
    await step(
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
      'protect',
    );
    const protectedPod = await onlyPod(core, NS, 'web', true);
    expect(JSON.stringify(protectedPod.spec)).not.toMatch(/secretKeyRef|secretRef|secretName/);
    // The app has the same values, now from vault.
    expect(await appEnv(protectedPod)).toEqual(expected);

    const dry = await step(
      ['target', 'cleanup', '--plan', 'plan.yaml', '--repo', 'repo'],
      'cleanup dry run',
    );
    const wouldDelete = dry.stdout
      .split('\n')
      .find((l) => l.startsWith(`Secret ${NS}/db-credentials: `));
    expect(wouldDelete).toContain(
      `would delete -- SealedSecret ${NS}/db-credentials first, then the Secret; 2 key(s) match vault (${VAULT_PATH})`,
    );
    expect(dry.stdout).toContain(
      `remove SealedSecret ${NS}/db-credentials from git, or it is applied again: ${join('apps', 'payments', 'db-sealed.yaml')}`,
    );
    expect(await secretGone('db-credentials')).toBe(false);
    const clean = await step(
      ['target', 'cleanup', '--plan', 'plan.yaml', '--repo', 'repo', '--yes'],
      'cleanup',
    );
    expect(clean.stdout).toContain(
      `SealedSecret ${NS}/db-credentials: deleted first, orphaning Secret ${NS}/db-credentials`,
    );
    expect(clean.stdout).toContain(`Secret ${NS}/db-credentials: deleted -- 2 key(s) match vault`);
    expect(clean.stdout).toContain(
      `remove SealedSecret ${NS}/db-credentials from git, or it is applied again: ${join('apps', 'payments', 'db-sealed.yaml')}`,
    );
    expect(await secretGone('db-credentials')).toBe(true);
    // Only the one the plan did not cover is left.
    expect(await ctl(['get', 'sealedsecrets', '-n', NS, '-o', 'name'])).toBe(
      'sealedsecret.bitnami.com/plain\n',
    );

    // The controller is still running and would recreate a Secret whose
    // SealedSecret exists: for 30 s, nothing comes back.
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      expect(await secretGone('db-credentials'), 'Secret recreated').toBe(true);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const controllerPods = await core.listNamespacedPod({
      namespace: controller?.namespace ?? '',
      labelSelector: 'app.kubernetes.io/name=sealed-secrets-controller',
    });
    expect(controllerPods.items.some((p) => isRunning(p, 'controller'))).toBe(true);

    // A re-run finds nothing left to do.
    const again = await step(
      ['target', 'cleanup', '--plan', 'plan.yaml', '--repo', 'repo', '--yes'],
      'cleanup again',
    );
    expect(again.stdout).toContain(`Secret ${NS}/db-credentials: already gone`);

    // The planted values: in no output, log, file of this run, nor the plan.
    outputs.push(
      await ctl([
        'logs',
        '-n',
        controller?.namespace ?? '',
        'deployment/sealed-secrets-controller',
      ]),
    );
    outputs.push(hook?.process.log() ?? '');
    for (const v of ALL_VALUES) {
      expect(outputs.some((o) => o.includes(v))).toBe(false);
      expect(filesHolding(dir, v)).toEqual([]);
    }
  }, 900_000);
});

describe('the offline unseal against kubeseal', () => {
  it('opens what kubeseal seals in every scope, and only under the name and namespace it was sealed for', async () => {
    const backup = await ctl([
      'get',
      'secret',
      '-n',
      controller?.namespace ?? '',
      '-l',
      KEY_LABEL,
      '-o',
      'json',
    ]);
    const keys = parseSealingKeys(backup, 'backup');
    for (const scope of ['strict', 'namespace-wide', 'cluster-wide']) {
      const value = `scope-${scope}-${randomBytes(8).toString('hex')}`;
      const r = await run(
        controller?.kubeseal ?? '',
        ['--cert', join(dir, 'controller.crt'), '--format', 'json', '--scope', scope],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'scoped', namespace: 'team-a' },
          data: { v: Buffer.from(value).toString('base64') },
        }),
      );
      expect(r.code, r.stderr).toBe(0);
      const [doc] = sealedDocuments(r.stdout);
      expect(doc, `kubeseal --scope ${scope} printed a SealedSecret`).toBeDefined();
      const ss = doc as SealedSecretObject;
      const opened = unseal(ss, keys);
      expect(opened.kind === 'found' && opened.data.get('v')?.toString() === value).toBe(true);
      // Moved to another name: opens only where the scope allows it.
      const renamed = unseal({ ...ss, metadata: { ...ss.metadata, name: 'other' } }, keys);
      expect(renamed.kind, scope).toBe(scope === 'strict' ? 'missing' : 'found');
      const moved = unseal({ ...ss, metadata: { ...ss.metadata, namespace: 'team-b' } }, keys);
      expect(moved.kind, scope).toBe(scope === 'cluster-wide' ? 'found' : 'missing');
    }
  });
});

/** Files under `root` whose bytes contain `value` (names only). */
function filesHolding(root: string, value: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && readFileSync(p).includes(value)) out.push(p);
    }
  };
  walk(root);
  return out;
}
