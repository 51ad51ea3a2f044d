// The PID-1 wrapper as a real process: Kubernetes login to the real OpenBao
// with a TokenRequest token, secrets only in the child's environment.
import { CoreV1Api } from '@kubernetes/client-node';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  mkdir,
  readFile,
  readdir,
  readlink,
  stat,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../testenv/paths.js';
import { cli, tempDir } from './helpers/cli.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const WRAPPER = join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper');
const run = promisify(execFile);
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

/** Processes a test started indirectly (namespaces, their PID 1): stopped after each test. */
const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0).reverse()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
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
  command = WRAPPER,
): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) started.push(child.pid);
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      resolve(code ?? (signal === null ? null : 128 + signalNumber(signal)));
    }),
  );
  return { child, out: () => out, err: () => err, exit };
}

/** Shell that waits until a file exists: the test's go-ahead. */
function waitFile(path: string): string {
  return `while [ ! -e ${path} ]; do sleep 0.05; done`;
}

function signalNumber(signal: NodeJS.Signals): number {
  return signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 0;
}

function waitForOutput(w: { out: () => string; err: () => string }, text: string): Promise<true> {
  return eventually(
    `"${text}" in the output (stderr so far: ${w.err()})`,
    () => Promise.resolve(w.out().includes(text) ? true : undefined),
    20_000,
  );
}

interface ProcStat {
  state: string;
  ppid: number;
}

/** State and parent of a host PID, or undefined once it no longer exists. */
async function procStat(pid: number): Promise<ProcStat | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: f[0] ?? '', ppid: Number(f[1]) };
}

/** Host PIDs of the processes whose parent is ppid. */
async function childrenOf(ppid: number): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = await procStat(Number(name));
    if (st?.ppid === ppid) out.push(Number(name));
  }
  return out;
}

/** The host PID of the process that is PID nsPid in the PID namespace of host PID inNsOf. */
async function hostPid(inNsOf: number, nsPid: number): Promise<number | undefined> {
  const ns = await readlink(`/proc/${inNsOf}/ns/pid`);
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    const ids = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/) ?? [];
    if (ids.at(-1) !== String(nsPid)) continue;
    if ((await readlink(`/proc/${name}/ns/pid`).catch(() => '')) === ns) return Number(name);
  }
  return undefined;
}

function statusField(status: string, field: string): string {
  return new RegExp(`^${field}:\\s+(.*)$`, 'm').exec(status)?.[1] ?? '';
}

/**
 * Runs the wrapper as PID 1 of a new PID namespace (as in a container),
 * optionally through launchers that exec it (setpriv, a shell setting a limit).
 * Returns the unshare process and the wrapper's host PID.
 */
async function startAsPid1(
  args: string[],
  env: NodeJS.ProcessEnv,
  launchers: string[] = [],
  wrapper = WRAPPER,
): Promise<ReturnType<typeof start> & { pid1: number }> {
  // --kill-child: should unshare die, its child (the namespace's PID 1,
  // hence every process in it) is killed too.
  const w = start(
    ['--pid', '--fork', '--mount-proc', '--kill-child', ...launchers, wrapper, ...args],
    env,
    'unshare',
  );
  const pid1 = await eventually(
    'the namespace to start',
    async () => (await childrenOf(w.child.pid ?? 0))[0],
    20_000,
  );
  started.push(pid1);
  const status = await readFile(`/proc/${pid1}/status`, 'utf8');
  // Host PID, then 1: the wrapper is PID 1 of its own namespace.
  expect(statusField(status, 'NSpid').split(/\s+/).at(-1)).toBe('1');
  return { ...w, pid1 };
}

/** Accessors of live vault tokens that a login with this role created. */
async function tokensOfRole(role: string): Promise<string[]> {
  const list = await bao('GET', 'auth/token/accessors?list=true');
  const keys = (list.json as { data?: { keys?: string[] } }).data?.keys ?? [];
  const out: string[] = [];
  for (const accessor of keys) {
    const r = await bao('POST', 'auth/token/lookup-accessor', { accessor });
    const meta = (r.json as { data?: { meta?: Record<string, string> | null } }).data?.meta;
    if (meta?.role === role) out.push(accessor);
  }
  return out;
}

describe('cloudtaser-wrapper', () => {
  it("gives the child DB_PASS, keeps it out of the wrapper's /proc environ, and returns the child's exit code", async () => {
    // The child holds on until the test has read the environ (not a sleep
    // that a loaded machine can outlast).
    const release = join(dir, 'release-1');
    const w = start(
      [
        'sh',
        '-c',
        `echo "child sees DB_PASS=$DB_PASS DB_USER=$DB_USER"; env | grep -a -c -E "^(VAULT|CLOUDTASER)_" ; echo ready; ${waitFile(release)}; exit 3`,
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
    await writeFile(release, '');
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
    const release = join(dir, 'release-2');
    const w = start(
      ['sh', '-c', `echo "child sees DB_PASS=$DB_PASS"; echo ready; ${waitFile(release)}`],
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
    await writeFile(release, '');
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
    expect(wrongRole.err()).toContain('vault refused the login (400: invalid role name');
    expect(wrongRole.err()).toContain('for role "someone-elses-role"');
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

describe('cloudtaser-wrapper, a refused login', () => {
  it("logs vault's own reason, the role, mount and service account, with a different hint for a missing role and an unbound service account", async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'other-sa' } },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'other-sa',
      namespace: ns,
      body: { spec: { audiences: ['cloudtaser'], expirationSeconds: 600 } },
    });
    const otherToken = join(dir, 'other-sa-token');
    await writeFile(otherToken, tr.status?.token ?? '');

    const missing = start(['true'], wrapperEnv({ VAULT_AUTH_ROLE: `${ns}-missing` }));
    expect(await missing.exit).toBe(1);
    const unbound = start(['true'], wrapperEnv({ CLOUDTASER_SA_TOKEN_FILE: otherToken }));
    expect(await unbound.exit).toBe(1);

    const missingLine = missing.err().trim();
    const unboundLine = unbound.err().trim();
    expect(missingLine.split('\n')).toHaveLength(1);
    expect(unboundLine.split('\n')).toHaveLength(1);
    // OpenBao's reason (400 and 403), who asked, and a hint for that case.
    expect(missingLine).toContain('vault refused the login (400: invalid role name');
    expect(missingLine).toContain(`for role "${ns}-missing" at auth/kubernetes`);
    expect(missingLine).toContain(`as service account ${ns}/payment-api`);
    expect(missingLine).toContain('cloudtaser source apply-plan');
    expect(unboundLine).toContain(
      'vault refused the login (403: service account name not authorized)',
    );
    expect(unboundLine).toContain(`for role "${ns}-role" at auth/kubernetes`);
    expect(unboundLine).toContain(`as service account ${ns}/other-sa`);
    expect(unboundLine).toContain('bound_service_account_names');
    expect(unboundLine).not.toContain('apply-plan` for');
    // Neither token appears.
    for (const line of [missingLine, unboundLine]) {
      expect(line).not.toContain((await readFile(tokenFile, 'utf8')).slice(0, 40));
      expect(line).not.toContain((tr.status?.token ?? '').slice(0, 40));
    }
  });
});

describe('cloudtaser-wrapper, its vault token', () => {
  it('is revoked before the app starts', async () => {
    const role = `${ns}-role`;
    const w = start(['sh', '-c', 'echo "DB_USER=$DB_USER"'], wrapperEnv());
    expect(await w.exit, w.err()).toBe(0);
    expect(w.out()).toContain('DB_USER=app');
    // Every login with the role happened in this file's tests, each revoked.
    expect(await tokensOfRole(role)).toEqual([]);
  });

  it('logs a failed revoke (a role without the default policy may not revoke itself) and still starts the app', async () => {
    const role = `${ns}-nodefault`;
    const template = await bao('GET', `auth/kubernetes/role/${ns}-role`);
    const policies = (template.json as { data: { token_policies: string[] } }).data.token_policies;
    const created = await bao('POST', `auth/kubernetes/role/${role}`, {
      bound_service_account_names: ['payment-api'],
      bound_service_account_namespaces: [ns],
      token_policies: policies,
      token_no_default_policy: true,
    });
    expect(created.status).toBe(204);
    const w = start(['sh', '-c', 'echo "DB_USER=$DB_USER"'], wrapperEnv({ VAULT_AUTH_ROLE: role }));
    const code = await w.exit;
    // The token the wrapper could not revoke: found, then revoked here.
    const leaked = await tokensOfRole(role);
    for (const accessor of leaked) await bao('POST', 'auth/token/revoke-accessor', { accessor });
    expect(code, w.err()).toBe(0);
    expect(w.out()).toContain('DB_USER=app');
    expect(leaked).toHaveLength(1);
    expect(w.err()).toContain(
      'cloudtaser-wrapper: warning: could not revoke the vault login token: vault POST auth/token/revoke-self: 403',
    );
    expect(w.err()).toContain('it stays valid until its TTL ends');
    expect(w.err()).toContain('token_no_default_policy');
  });
});

describe('cloudtaser-wrapper on a terminal', () => {
  it("starts the command in its own process group and makes it the terminal's foreground group", async () => {
    // `script` runs the wrapper with a pseudo-terminal as its controlling
    // terminal, as `kubectl run -it` or a `tty: true` container would.
    const w = start(
      ['-qec', `${WRAPPER} sh -c 'echo "stat=$(cat /proc/$$/stat)"'`, '/dev/null'],
      wrapperEnv(),
      'script',
    );
    expect(await w.exit, w.out()).toBe(0);
    const stat = /stat=(\d+) \(.*\) \S+ \d+ (\d+) \d+ \d+ (-?\d+)/.exec(w.out());
    expect(stat, w.out()).not.toBeNull();
    const [pid, pgrp, tpgid] = [stat?.[1], stat?.[2], stat?.[3]];
    // Its own group (signals go to the group), and the foreground one (it
    // can still read the terminal).
    expect(pgrp).toBe(pid);
    expect(tpgid).toBe(pgrp);
  });
});

describe('cloudtaser-wrapper as PID 1 of its own PID namespace', () => {
  it("passes SIGTERM to a non-exec'ing sh -c's worker, stops orphans before exiting, reaps them, locks its memory and returns the command's code", async () => {
    const release = join(dir, `release-${randomBytes(3).toString('hex')}`);
    const script = [
      // An orphan: its parent (a subshell) exits at once, so it is
      // re-parented to PID 1; it ends when the test releases it.
      `( sh -c 'echo orphan=$$; while [ ! -e ${release} ]; do sleep 0.05; done' & )`,
      // A daemon in its own session: outside the command's process group.
      `setsid sh -c 'trap "echo daemon-got-term; exit 0" TERM; echo daemon-ready; while :; do sleep 0.1; done' &`,
      // The worker, under a shell that does not exec it.
      `sh -c 'trap "echo worker-got-term; exit 0" TERM; echo worker-ready; while :; do sleep 0.1; done'`,
      'echo the shell itself never sees the signal',
    ].join('\n');
    const w = await startAsPid1(['sh', '-c', script], wrapperEnv());
    await waitForOutput(w, 'worker-ready');
    await waitForOutput(w, 'daemon-ready');

    // Reaped: the orphan, once re-parented to PID 1 and ended, is gone, not a zombie.
    const nsPid = Number(/orphan=(\d+)/.exec(w.out())?.[1]);
    const orphan = await eventually(
      'the orphan in the namespace',
      () => hostPid(w.pid1, nsPid),
      10_000,
    );
    await eventually(
      'the orphan to be re-parented to the wrapper',
      async () => ((await procStat(orphan))?.ppid === w.pid1 ? true : undefined),
      10_000,
    );
    await writeFile(release, '');
    await eventually(
      'the orphan to be reaped',
      async () => ((await procStat(orphan)) === undefined ? true : undefined),
      10_000,
    );

    // Read while it runs, checked last (the signal checks come first).
    const status = await readFile(`/proc/${w.pid1}/status`, 'utf8');

    process.kill(w.pid1, 'SIGTERM');
    // The outer shell dies of SIGTERM (no trap): 128+15, passed on by unshare.
    expect(await w.exit, w.err()).toBe(143);
    expect(w.out()).toContain('worker-got-term');
    expect(w.out()).toContain('daemon-got-term');
    expect(w.out()).not.toContain('never sees');
    // Memory locked (root holds CAP_IPC_LOCK), and not pre-faulted (MCL_ONFAULT).
    expect(parseInt(statusField(status, 'VmLck'), 10)).toBeGreaterThan(0);
    expect(parseInt(statusField(status, 'VmRSS'), 10)).toBeLessThan(40_000);
    expect(w.err()).not.toContain('memory not locked');
  });

  it('is not dumpable and says when it cannot lock memory (non-root, small memlock limit)', async () => {
    // A directory the unprivileged user can read, with its own copies.
    const pub = join(dir, `pub-${randomBytes(3).toString('hex')}`);
    await mkdir(pub);
    await chmod(dir, 0o755);
    await chmod(pub, 0o755);
    const wrapper = join(pub, 'cloudtaser-wrapper');
    await copyFile(WRAPPER, wrapper);
    await chmod(wrapper, 0o755);
    const token = join(pub, 'token');
    await copyFile(tokenFile, token);
    await chmod(token, 0o644);
    const ca = join(pub, 'ca.crt');
    await copyFile(sandbox().baoCaFile, ca);
    await chmod(ca, 0o644);
    const w = await startAsPid1(
      ['sh', '-c', 'echo "child=$$"; while :; do sleep 0.1; done'],
      wrapperEnv({ CLOUDTASER_SA_TOKEN_FILE: token, VAULT_CACERT: ca }),
      [
        // A 64 KiB memlock limit, then exec (the wrapper stays PID 1).
        'sh',
        '-c',
        'ulimit -l 64 && exec "$@"',
        'sh',
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
      ],
      wrapper,
    );
    await waitForOutput(w, 'child=');
    const status = await readFile(`/proc/${w.pid1}/status`, 'utf8');
    expect(statusField(status, 'Uid').split(/\s+/)[0]).toBe('65534');
    // A non-dumpable process's /proc files belong to root, so its own user
    // cannot read its environment; the app (dumpable) is the control.
    const app = await hostPid(w.pid1, Number(/child=(\d+)/.exec(w.out())?.[1]));
    expect(app).toBeDefined();
    expect((await stat(`/proc/${app ?? 0}/environ`)).uid).toBe(65534);
    expect((await stat(`/proc/${w.pid1}/environ`)).uid).toBe(0);
    const asUser = (path: string): Promise<string> =>
      run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', path]).then(
        () => 'read',
        (e: unknown) => String((e as { stderr?: string }).stderr),
      );
    expect(await asUser(`/proc/${app ?? 0}/environ`)).toBe('read');
    expect(await asUser(`/proc/${w.pid1}/environ`)).toContain('Permission denied');
    expect(parseInt(statusField(status, 'VmLck'), 10)).toBe(0);
    expect(w.err()).toContain('cloudtaser-wrapper: memory not locked: RLIMIT_MEMLOCK is 64 KiB');
  });
});
