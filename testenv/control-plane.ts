// A second, bare Kubernetes control plane (etcd + kube-apiserver, the same
// cached binaries as the sandbox) on free loopback ports, for tests that need
// two clusters: its own etcd, its own service-account signing key, its own
// serving certificate, so nothing about it is shared with the sandbox's.
//
// No controller-manager and no node: pods are created and stay Pending, and
// service accounts are created by the test. Servers run in their own process
// groups with the sandbox's watchdog, so a killed test leaves nothing behind.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries, type Log } from './build.js';
import { httpCall, waitFor } from './http.js';
import {
  apiServerArgs,
  etcdArgs,
  waitForApiServer,
  waitForEtcd,
  writeAdminKubeconfig,
  writeApiServerFiles,
} from './kube-control.js';
import { freePort } from './net.js';
import { startProc, startWatchdog, stopServers } from './sandbox.js';

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
    const etcdPort = await freePort(used, true);
    const etcdPeer = await freePort(used, true);
    const apiPort = await freePort(used, true);
    const adminToken = randomBytes(24).toString('hex');
    const files = await writeApiServerFiles(dir, adminToken);
    const etcd = start('etcd', binaries.etcd, etcdArgs(name, dir, etcdPort, etcdPeer));
    await waitForEtcd(etcdPort, () => etcd.exited);
    const apiServer = `https://127.0.0.1:${apiPort}`;
    const certDir = join(dir, 'pki', 'apiserver');
    const apiserver = start(
      'kube-apiserver',
      binaries.kubeApiserver,
      apiServerArgs({ etcdPort, apiPort, apiServer, certDir, files }),
    );
    const { caFile, ca } = await waitForApiServer(
      apiServer,
      certDir,
      adminToken,
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
    await writeAdminKubeconfig(kubeconfig, name, apiServer, ca, adminToken);
    return { dir, apiServer, caFile, adminToken, kubeconfig, stop };
  } catch (e) {
    await stop().catch((c: unknown) => {
      log(c instanceof Error ? c.message : String(c));
    });
    throw e;
  }
}
