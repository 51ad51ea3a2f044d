// Starts a real local control plane (etcd, kube-apiserver,
// kube-controller-manager) and an OpenBao dev server on free loopback ports,
// wires OpenBao's Kubernetes auth to that API server, and tears it all down.
//
// Every server runs in its own process group so one signal stops it and its
// children. A watchdog shell process outlives a killed parent (SIGKILL,
// crashed test runner) just long enough to stop the servers and remove the
// temporary directory, so no orphan survives its owner.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
} from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ensureBinaries, type Binaries, type Log } from './build.js';
import { httpCall, waitFor } from './http.js';
import { loopbackPki } from './pki.js';

/** Everything a test or a person needs to reach the sandbox. */
export interface SandboxInfo {
  dir: string;
  kubeconfig: string;
  apiServer: string;
  /** CA that signed the API server's serving certificate (PEM file). */
  caFile: string;
  adminToken: string;
  baoAddr: string;
  /**
   * The same OpenBao server on a second listener, over TLS (certificate for
   * 127.0.0.1 signed by baoCaFile): for tests of the pod-side path, which
   * refuses plain http.
   */
  baoTlsAddr: string;
  baoCaFile: string;
  baoToken: string;
  /** Kubernetes auth mount configured against the API server. */
  baoKubeAuthPath: string;
  envFile: string;
  binaries: Binaries;
  /** Process-group leaders, for `down` and for leak checks. */
  pids: number[];
}

export interface Sandbox {
  info: SandboxInfo;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Log;
  /** Directory to hold state; a fresh temp dir when omitted. */
  dir?: string;
  /**
   * Watch this pid and tear everything down when it disappears. Defaults to
   * the current process; `null` leaves the sandbox running on its own (the
   * `sandbox up` command, stopped later with `sandbox down`).
   */
  ownerPid?: number | null;
}

async function freePort(avoid: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => {
          resolve(p);
        });
      });
    });
    // OpenBao's dev server also binds port+1 for cluster traffic.
    if (!avoid.has(port) && !avoid.has(port + 1) && !avoid.has(port - 1)) {
      avoid.add(port);
      return port;
    }
  }
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => {
      resolve(false);
    });
    srv.listen(port, '127.0.0.1', () => {
      srv.close(() => {
        resolve(true);
      });
    });
  });
}

interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited?: string;
}

function startProc(name: string, bin: string, args: string[], dir: string): Proc {
  const logFile = join(dir, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, args, {
    cwd: dir,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
  closeSync(fd);
  const proc: Proc = { name, child, logFile };
  child.on('exit', (code, signal) => {
    proc.exited = `code ${code ?? '-'} signal ${signal ?? '-'} (log: ${logFile})`;
  });
  // The child must not keep the owner's event loop alive.
  child.unref();
  return proc;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * True while any non-zombie process is in the group. `kill(-pgid, 0)` alone
 * also counts zombies, which an init that reaps slowly can leave around for
 * seconds after the servers have really stopped.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the parenthesised command: state, ppid, pgrp, ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[2]) === pgid && rest[0] !== 'Z') return true;
  }
  return false;
}

/**
 * Stops the given process groups and removes the directory. The sandbox's
 * data is thrown away, so a short grace after SIGTERM is enough: the API
 * server's own graceful drain takes over ten seconds and protects nothing here.
 */
export async function stopGroups(pids: readonly number[], dir?: string): Promise<void> {
  for (const pid of pids) killGroup(pid, 'SIGTERM');
  const deadline = Date.now() + 2_000;
  while (pids.some(groupAlive) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const pid of pids) if (groupAlive(pid)) killGroup(pid, 'SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
}

/**
 * A POSIX sh process, independent of Node, that outlives the owner: once the
 * owner is gone it stops every group listed in `pidsFile` (appended to as
 * servers start, so a kill during start-up is covered too) and removes `dir`.
 */
function startWatchdog(ownerPid: number, pidsFile: string, dir: string): ChildProcess {
  const script = [
    `while kill -0 ${ownerPid} 2>/dev/null; do sleep 0.5; done`,
    `groups=$(sed 's/^/-/' '${pidsFile}' 2>/dev/null)`,
    `[ -n "$groups" ] && kill -TERM $groups 2>/dev/null`,
    `i=0; while [ $i -lt 4 ] && [ -n "$groups" ] && kill -0 $groups 2>/dev/null; do sleep 0.5; i=$((i+1)); done`,
    `[ -n "$groups" ] && kill -KILL $groups 2>/dev/null`,
    `rm -rf '${dir}'`,
  ].join('\n');
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

/** Brings up the whole sandbox; throws (after cleaning up) if any part fails. */
export async function startSandbox(opts: StartOptions = {}): Promise<Sandbox> {
  const log = opts.log ?? (() => undefined);
  const binaries = await ensureBinaries(log);
  const started = Date.now();
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'cloudtaser-sandbox-')));
  await mkdir(join(dir, 'logs'), { recursive: true });
  await mkdir(join(dir, 'pki'), { recursive: true });
  const procs: Proc[] = [];
  const pidsFile = join(dir, 'pids');
  await writeFile(pidsFile, '');
  // Guards start-up even for a detached sandbox: if this process dies before
  // the sandbox is up, nothing is left behind. A detached sandbox dismisses
  // it once up.
  const watchdog = startWatchdog(opts.ownerPid ?? process.pid, pidsFile, dir);
  const start = (name: string, bin: string, args: string[]): Proc => {
    const proc = startProc(name, bin, args, dir);
    if (proc.child.pid) appendFileSync(pidsFile, `${proc.child.pid}\n`);
    procs.push(proc);
    return proc;
  };

  const cleanup = async (): Promise<void> => {
    await stopGroups(
      procs.map((p) => p.child.pid ?? 0).filter((p) => p > 0),
      dir,
    );
    watchdog.kill('SIGKILL');
  };

  try {
    const used = new Set<number>();
    const etcdPort = await freePort(used);
    const etcdPeer = await freePort(used);
    const apiPort = await freePort(used);
    let baoPort = await freePort(used);
    while (!(await portIsFree(baoPort + 1))) baoPort = await freePort(used);
    const baoTlsPort = await freePort(used);
    const baoTlsClusterPort = await freePort(used);

    const adminToken = randomBytes(24).toString('hex');
    const baoToken = `root-${randomBytes(16).toString('hex')}`;
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'pki', 'sa.key');
    const saPub = join(dir, 'pki', 'sa.pub');
    await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
    const tokensFile = join(dir, 'pki', 'tokens.csv');
    await writeFile(tokensFile, `${adminToken},cloudtaser-admin,1000,"system:masters"\n`, {
      mode: 0o600,
    });

    // --- etcd
    const etcd = start('etcd', binaries.etcd, [
      '--name=sandbox',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=sandbox=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);

    // --- OpenBao (independent of Kubernetes, so it boots in parallel)
    const baoAddr = `http://127.0.0.1:${baoPort}`;
    const baoTlsAddr = `https://127.0.0.1:${baoTlsPort}`;
    // A second, TLS listener on the same dev server: the dev flags set up the
    // plain one, and OpenBao merges the listeners of a -config file with them.
    const baoPki = join(dir, 'pki', 'openbao');
    await mkdir(baoPki, { recursive: true });
    const tls = await loopbackPki(baoPki);
    const baoCaFile = join(baoPki, 'ca.crt');
    const baoConfig = join(baoPki, 'tls-listener.hcl');
    await writeFile(
      baoConfig,
      [
        'listener "tcp" {',
        `  address = "127.0.0.1:${baoTlsPort}"`,
        `  cluster_address = "127.0.0.1:${baoTlsClusterPort}"`,
        `  tls_cert_file = "${tls.certFile}"`,
        `  tls_key_file = "${tls.keyFile}"`,
        '}',
        '',
      ].join('\n'),
    );
    const bao = start('openbao', binaries.bao, [
      'server',
      '-dev',
      `-dev-root-token-id=${baoToken}`,
      `-dev-listen-address=127.0.0.1:${baoPort}`,
      '-dev-no-store-token',
      `-config=${baoConfig}`,
      '-log-level=warn',
    ]);

    await waitFor(
      'etcd',
      async () => {
        const r = await httpCall(`http://127.0.0.1:${etcdPort}/health`);
        return r.status === 200 && r.body.includes('true');
      },
      30_000,
      () => etcd.exited,
    );

    // --- kube-apiserver
    const certDir = join(dir, 'pki', 'apiserver');
    const apiServer = `https://127.0.0.1:${apiPort}`;
    const apiserver = start('kube-apiserver', binaries.kubeApiserver, [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${certDir}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--service-account-issuer=${apiServer}`,
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      `--token-auth-file=${tokensFile}`,
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      '--v=0',
    ]);
    const caFile = join(certDir, 'apiserver.crt');
    await waitFor(
      'kube-apiserver certificate',
      () => Promise.resolve(existsSync(caFile)),
      60_000,
      () => apiserver.exited,
    );
    const ca = await readFile(caFile, 'utf8');
    const auth = { authorization: `Bearer ${adminToken}` };
    await waitFor(
      'kube-apiserver',
      async () => (await httpCall(`${apiServer}/readyz`, { ca, headers: auth })).status === 200,
      120_000,
      () => apiserver.exited,
    );

    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: sandbox',
        '  cluster:',
        `    server: ${apiServer}`,
        `    certificate-authority-data: ${Buffer.from(ca).toString('base64')}`,
        'users:',
        '- name: sandbox-admin',
        '  user:',
        `    token: ${adminToken}`,
        'contexts:',
        '- name: sandbox',
        '  context:',
        '    cluster: sandbox',
        '    user: sandbox-admin',
        'current-context: sandbox',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    // --- kube-controller-manager (Deployments → ReplicaSets → Pods, service accounts, GC)
    const kcm = start('kube-controller-manager', binaries.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--root-ca-file=${caFile}`,
      `--service-account-private-key-file=${saKey}`,
      '--controllers=*',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
      '--kube-api-qps=500',
      '--kube-api-burst=1000',
      '--v=0',
    ]);

    await waitFor(
      'OpenBao',
      async () =>
        (await httpCall(`${baoAddr}/v1/sys/health`)).status === 200 &&
        (await httpCall(`${baoTlsAddr}/v1/sys/health`, { ca: tls.ca })).status === 200,
      60_000,
      () => bao.exited,
    );

    // The service-account controller creating `default` proves the
    // controller-manager is up and talking to the API server.
    await waitFor(
      'kube-controller-manager',
      async () =>
        (
          await httpCall(`${apiServer}/api/v1/namespaces/default/serviceaccounts/default`, {
            ca,
            headers: auth,
          })
        ).status === 200,
      120_000,
      () => kcm.exited,
    );

    const baoKubeAuthPath = 'kubernetes';
    await configureKubernetesAuth({ apiServer, ca, auth, baoAddr, baoToken, baoKubeAuthPath });

    const envFile = join(dir, 'env');
    const binDirs = [...new Set([dirname(binaries.kubectl), dirname(binaries.bao)])].join(':');
    await writeFile(
      envFile,
      [
        '# source this file to use the cloudtaser sandbox',
        `export KUBECONFIG='${kubeconfig}'`,
        `export BAO_ADDR='${baoAddr}'`,
        `export BAO_TOKEN='${baoToken}'`,
        `# the same server over TLS: BAO_ADDR='${baoTlsAddr}' BAO_CACERT='${baoCaFile}'`,
        `export PATH='${binDirs}':"$PATH"`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    const pids = procs.map((p) => p.child.pid ?? 0);
    if (opts.ownerPid === null) watchdog.kill('SIGKILL');
    const info: SandboxInfo = {
      dir,
      kubeconfig,
      apiServer,
      caFile,
      adminToken,
      baoAddr,
      baoTlsAddr,
      baoCaFile,
      baoToken,
      baoKubeAuthPath,
      envFile,
      binaries,
      pids,
    };
    await writeFile(join(dir, 'state.json'), JSON.stringify(info, null, 2), { mode: 0o600 });
    log(`testenv: sandbox up in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir})`);
    return { info, stop: cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function configureKubernetesAuth(a: {
  apiServer: string;
  ca: string;
  auth: Record<string, string>;
  baoAddr: string;
  baoToken: string;
  baoKubeAuthPath: string;
}): Promise<void> {
  const kube = async (method: string, path: string, body: unknown): Promise<string> => {
    const r = await httpCall(`${a.apiServer}${path}`, { method, ca: a.ca, headers: a.auth, body });
    if (r.status >= 300 && r.status !== 409) {
      throw new Error(`testenv: ${method} ${path} → ${r.status}: ${r.body.slice(0, 300)}`);
    }
    return r.body;
  };
  await kube('POST', '/api/v1/namespaces/kube-system/serviceaccounts', {
    metadata: { name: 'openbao-reviewer' },
  });
  await kube('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    metadata: { name: 'openbao-reviewer-auth-delegator' },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'system:auth-delegator',
    },
    subjects: [{ kind: 'ServiceAccount', name: 'openbao-reviewer', namespace: 'kube-system' }],
  });
  const tr = JSON.parse(
    await kube('POST', '/api/v1/namespaces/kube-system/serviceaccounts/openbao-reviewer/token', {
      spec: { expirationSeconds: 7 * 24 * 3600 },
    }),
  ) as { status?: { token?: string } };
  const reviewerJwt = tr.status?.token;
  if (!reviewerJwt) throw new Error('testenv: TokenRequest for the reviewer returned no token');

  const bao = async (path: string, body: unknown): Promise<void> => {
    const r = await httpCall(`${a.baoAddr}/v1/${path}`, {
      method: 'POST',
      headers: { 'x-vault-token': a.baoToken },
      body,
    });
    if (r.status >= 300) throw new Error(`testenv: OpenBao ${path} → ${r.status}: ${r.body}`);
  };
  await bao(`sys/auth/${a.baoKubeAuthPath}`, { type: 'kubernetes' });
  await bao(`auth/${a.baoKubeAuthPath}/config`, {
    kubernetes_host: a.apiServer,
    kubernetes_ca_cert: a.ca,
    token_reviewer_jwt: reviewerJwt,
    disable_local_ca_jwt: true,
  });
}
