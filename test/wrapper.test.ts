// The PID-1 wrapper as a real process: Kubernetes login to the real OpenBao
// with a TokenRequest token, secrets only in the child's environment.
import { CoreV1Api } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../testenv/paths.js';
import { cli, tempDir } from './helpers/cli.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const WRAPPER = join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper');
const VALUE = `s3cret-${randomBytes(8).toString('hex')}`;
const ns = uniqueName('wrap');
let dir = '';
let tokenFile = '';
let apiTokenFile = '';

beforeAll(async () => {
  const core = kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedServiceAccount({
    namespace: ns,
    body: { metadata: { name: 'payment-api' } },
  });
  dir = await tempDir();
  // Provision the role and policy the way users do: from a plan.
  await writeFile(
    join(dir, 'plan.yaml'),
    [
      'apiVersion: cloudtaser.io/v1',
      'kind: MigrationPlan',
      'metadata: {name: wrapper-test}',
      'tenants:',
      `  - name: ${ns}`,
      `    namespace: ${ns}`,
      '    workloads:',
      '      - kind: Deployment',
      '        name: payment-api',
      '        serviceAccount: payment-api',
      '        secrets:',
      '          - source: k8s-secret/db-credentials',
      `            vaultPath: secret/data/${ns}/db-credentials`,
      '            fields: {username: DB_USER, password: DB_PASS}',
      '',
    ].join('\n'),
  );
  expect((await cli(['source', 'apply-plan', 'plan.yaml'], { cwd: dir })).code).toBe(0);
  await bao('POST', `secret/data/${ns}/db-credentials`, {
    data: { username: 'app', password: VALUE },
  });
  // The token the webhook's projected volume holds: vault's audience.
  const tr = await core.createNamespacedServiceAccountToken({
    name: 'payment-api',
    namespace: ns,
    body: { spec: { audiences: ['cloudtaser'], expirationSeconds: 600 } },
  });
  tokenFile = join(dir, 'sa-token');
  await writeFile(tokenFile, tr.status?.token ?? '');
  // The pod's Kubernetes-API token: the API server's default audience.
  const api = await core.createNamespacedServiceAccountToken({
    name: 'payment-api',
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  apiTokenFile = join(dir, 'api-token');
  await writeFile(apiTokenFile, api.status?.token ?? '');
});

function wrapperEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = `secret/data/${ns}/db-credentials`;
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    // Over TLS, as in production: the wrapper refuses plain http by default.
    VAULT_ADDR: sandbox().baoTlsAddr,
    VAULT_CACERT: sandbox().baoCaFile,
    VAULT_AUTH_ROLE: `${ns}-role`,
    VAULT_AUTH_MOUNT_PATH: 'auth/kubernetes',
    CLOUDTASER_SECRET_PATHS: path,
    CLOUDTASER_ENV_MAP: `${path}:username=DB_USER,${path}:password=DB_PASS`,
    CLOUDTASER_SA_TOKEN_FILE: tokenFile,
    ...extra,
  };
}

function start(
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(WRAPPER, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      resolve(code);
    }),
  );
  return { child, out: () => out, err: () => err, exit };
}

describe('cloudtaser-wrapper', () => {
  it("gives the child DB_PASS, keeps it out of the wrapper's /proc environ, and returns the child's exit code", async () => {
    const w = start(
      [
        'sh',
        '-c',
        'echo "child sees DB_PASS=$DB_PASS DB_USER=$DB_USER"; env | grep -a -c -E "^(VAULT|CLOUDTASER)_" ; echo ready; sleep 2; exit 3',
      ],
      wrapperEnv(),
    );
    await eventually(
      'the child to start',
      () => Promise.resolve(w.out().includes('ready') ? true : undefined),
      20_000,
    );
    const environ = await readFile(`/proc/${w.child.pid ?? 0}/environ`);
    // The right process (its PATH is there), holding neither the value nor,
    // after its clean re-exec, the settings: the guide's `grep DB_PASS` is empty.
    expect(environ.toString()).toContain('PATH=');
    expect(environ.includes(Buffer.from(VALUE))).toBe(false);
    expect(environ.toString()).not.toMatch(/DB_PASS|VAULT_|CLOUDTASER_/);
    expect(await w.exit).toBe(3);
    expect(w.out()).toContain(`child sees DB_PASS=${VALUE} DB_USER=app`);
    // No VAULT_* or CLOUDTASER_* variable reaches the application.
    expect(w.out()).toContain('\n0\n');
    expect(w.err()).not.toContain(VALUE);
  });

  it("keeps a native Secret's value (as envFrom delivers it) out of /proc/1/environ, and gives the child vault's", async () => {
    // A workload still carrying `envFrom: secretRef`: the kubelet puts the
    // native Secret's keys into the container's environment before the
    // wrapper starts.
    const native = `native-${randomBytes(6).toString('hex')}`;
    const w = start(
      ['sh', '-c', 'echo "child sees DB_PASS=$DB_PASS"; echo ready; sleep 2'],
      wrapperEnv({ DB_PASS: native, APP_MODE: 'blue' }),
    );
    await eventually(
      'the child to start',
      () => Promise.resolve(w.out().includes('ready') ? true : undefined),
      20_000,
    );
    const environ = (await readFile(`/proc/${w.child.pid ?? 0}/environ`)).toString();
    expect(environ).toContain('APP_MODE=blue');
    expect(environ).not.toContain(native);
    expect(environ).not.toContain('DB_PASS');
    expect(await w.exit).toBe(0);
    expect(w.out()).toContain(`child sees DB_PASS=${VALUE}`);
  });

  it('forwards SIGTERM to the child', async () => {
    const w = start(
      ['sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.1; done'],
      wrapperEnv(),
    );
    await eventually(
      'the child to start',
      () => Promise.resolve(w.out().includes('ready') ? true : undefined),
      20_000,
    );
    w.child.kill('SIGTERM');
    expect(await w.exit).toBe(42);
    expect(w.out()).toContain('got-term');
  });

  it('fails closed before starting the child when a field is missing', async () => {
    const marker = join(dir, 'started');
    const path = `secret/data/${ns}/db-credentials`;
    const w = start(
      ['sh', '-c', `touch ${marker}`],
      wrapperEnv({ CLOUDTASER_ENV_MAP: `${path}:api_key=API_KEY` }),
    );
    expect(await w.exit).toBe(1);
    expect(w.err()).toContain(
      `cloudtaser-wrapper: not starting sh: ${path} has no field "api_key" (for API_KEY)`,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('fails closed when the role refuses the login or vault is unreachable', async () => {
    const wrongRole = start(['true'], wrapperEnv({ VAULT_AUTH_ROLE: 'someone-elses-role' }));
    expect(await wrongRole.exit).toBe(1);
    expect(wrongRole.err()).toContain('vault refused the login for role "someone-elses-role"');
    const down = start(['true'], wrapperEnv({ VAULT_ADDR: 'https://127.0.0.1:1' }));
    expect(await down.exit).toBe(1);
    expect(down.err()).toContain('cannot reach vault at https://127.0.0.1:1');
  });

  it('supports VAULT_AUTH_METHOD=token and never prints the token', async () => {
    const token = sandbox().baoToken;
    const w = start(
      ['sh', '-c', 'echo "$DB_USER"'],
      wrapperEnv({ VAULT_AUTH_METHOD: 'token', VAULT_TOKEN: token }),
    );
    expect(await w.exit).toBe(0);
    expect(w.out().trim()).toBe('app');
    const bad = start(
      ['true'],
      wrapperEnv({ VAULT_AUTH_METHOD: 'token', VAULT_TOKEN: 'not-a-token' }),
    );
    expect(await bad.exit).toBe(1);
    expect(bad.err()).not.toContain('not-a-token');
    expect(bad.err()).toContain('403');
  });

  it("is refused with the pod's Kubernetes-API token: the role takes only vault's audience", async () => {
    const marker = join(dir, 'started-with-api-token');
    const w = start(
      ['sh', '-c', `touch ${marker}`],
      wrapperEnv({ CLOUDTASER_SA_TOKEN_FILE: apiTokenFile }),
    );
    expect(await w.exit).toBe(1);
    expect(w.err()).toContain(`role "${ns}-role"`);
    expect(existsSync(marker)).toBe(false);
  });

  it('refuses a plain-http VAULT_ADDR before sending anything, unless CLOUDTASER_ALLOW_INSECURE_VAULT', async () => {
    const marker = join(dir, 'started-over-http');
    const plain = start(
      ['sh', '-c', `touch ${marker}`],
      wrapperEnv({ VAULT_ADDR: sandbox().baoAddr }),
    );
    expect(await plain.exit).toBe(1);
    expect(plain.err()).toContain('VAULT_ADDR is plain http');
    expect(plain.err()).toContain('CLOUDTASER_ALLOW_INSECURE_VAULT');
    expect(existsSync(marker)).toBe(false);
    const optedIn = start(
      ['sh', '-c', 'echo "$DB_USER"'],
      wrapperEnv({ VAULT_ADDR: sandbox().baoAddr, CLOUDTASER_ALLOW_INSECURE_VAULT: 'true' }),
    );
    expect(await optedIn.exit).toBe(0);
    expect(optedIn.out().trim()).toBe('app');
  });
});
