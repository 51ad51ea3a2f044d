// A second, bare Kubernetes control plane (etcd + kube-apiserver, the same
// cached binaries as the sandbox) on free loopback ports, for tests that need
// two clusters: its own etcd, its own service-account signing key, its own
// serving certificate, so nothing about it is shared with the sandbox's.
//
// No controller-manager and no node: pods are created and stay Pending, and
// service accounts are created by the test. Servers run in their own process
// groups with the sandbox's watchdog, so a killed test leaves nothing behind.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, type Log } from './build.js';
import { httpCall, waitFor } from './http.js';
import { freePort, startProc, startWatchdog, stopServers } from './sandbox.js';

export interface ControlPlane {
  dir: string;
  apiServer: string;
  /** The API server's self-signed serving certificate (PEM file). */
  caFile: string;
  adminToken: string;
  /** A kubeconfig with one context, `name`, as system:masters. */
  kubeconfig: string;
  /** Stops both servers and removes the directory. */
  stop(): Promise<void>;
}

export async function startControlPlane(
  opts: { name?: string; log?: Log } = {},
): Promise<ControlPlane> {
  const log = opts.log ?? (() => undefined);
  const name = opts.name ?? 'second';
  const binaries = await ensureBinaries(log);
  const dir = await mkdtemp(join(tmpdir(), 'cloudtaser-cp-'));
  await mkdir(join(dir, 'logs'), { recursive: true });
  await mkdir(join(dir, 'pki'), { recursive: true });
  const pidsFile = join(dir, 'pids');
  await writeFile(pidsFile, '');
  const watchdog = startWatchdog(process.pid, pidsFile, dir);
  const started: number[] = [];
  const start = (proc: string, bin: string, args: string[]) => {
    const p = startProc(proc, bin, args, dir, pidsFile, process.pid);
    if (p.child.pid) started.push(p.child.pid);
    return p;
  };
  const stop = async (): Promise<void> => {
    await stopServers(dir, [binaries.etcd, binaries.kubeApiserver], started);
    await rm(dir, { recursive: true, force: true });
    watchdog.kill('SIGKILL');
  };
  try {
    const used = new Set<number>();
    const etcdPort = await freePort(used);
    const etcdPeer = await freePort(used);
    const apiPort = await freePort(used);
    const adminToken = randomBytes(24).toString('hex');
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'pki', 'sa.key');
    const saPub = join(dir, 'pki', 'sa.pub');
    await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
    const tokensFile = join(dir, 'pki', 'tokens.csv');
    await writeFile(tokensFile, `${adminToken},cloudtaser-admin,1000,"system:masters"\n`, {
      mode: 0o600,
    });
    const etcd = start('etcd', binaries.etcd, [
      `--name=${name}`,
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=${name}=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
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
    const apiServer = `https://127.0.0.1:${apiPort}`;
    const certDir = join(dir, 'pki', 'apiserver');
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
    await waitFor(
      'kube-apiserver',
      async () =>
        (
          await httpCall(`${apiServer}/readyz`, {
            ca,
            headers: { authorization: `Bearer ${adminToken}` },
          })
        ).status === 200,
      120_000,
      () => apiserver.exited,
    );
    // The API server creates its system namespaces just after it turns ready;
    // the cluster's identity is kube-system's UID.
    await waitFor(
      'namespace kube-system',
      async () =>
        (
          await httpCall(`${apiServer}/api/v1/namespaces/kube-system`, {
            ca,
            headers: { authorization: `Bearer ${adminToken}` },
          })
        ).status === 200,
      60_000,
      () => apiserver.exited,
    );
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: ${name}`,
        '  cluster:',
        `    server: ${apiServer}`,
        `    certificate-authority-data: ${Buffer.from(ca).toString('base64')}`,
        'users:',
        `- name: ${name}-admin`,
        '  user:',
        `    token: ${adminToken}`,
        'contexts:',
        `- name: ${name}`,
        '  context:',
        `    cluster: ${name}`,
        `    user: ${name}-admin`,
        `current-context: ${name}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return { dir, apiServer, caFile, adminToken, kubeconfig, stop };
  } catch (e) {
    await stop().catch((c: unknown) => {
      log(c instanceof Error ? c.message : String(c));
    });
    throw e;
  }
}
