// The parts of starting etcd + kube-apiserver that the sandbox and the
// second control plane (control-plane.ts) share: the key and token files,
// both servers' flags, the readiness waits and the admin kubeconfig. Each
// caller still decides when to start and wait, so the sandbox can boot
// OpenBao and the registry while etcd comes up.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpCall, waitFor } from './http.js';

export interface ApiServerFiles {
  saKey: string;
  saPub: string;
  tokensFile: string;
}

/** Writes the service-account key pair and the admin's static token under `dir/pki`. */
export async function writeApiServerFiles(
  dir: string,
  adminToken: string,
): Promise<ApiServerFiles> {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = join(dir, 'pki', 'sa.key');
  const saPub = join(dir, 'pki', 'sa.pub');
  await writeFile(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
  const tokensFile = join(dir, 'pki', 'tokens.csv');
  await writeFile(tokensFile, `${adminToken},cloudtaser-admin,1000,"system:masters"\n`, {
    mode: 0o600,
  });
  return { saKey, saPub, tokensFile };
}

/** A single-member etcd on loopback, data under `dir/etcd`. */
export function etcdArgs(
  name: string,
  dir: string,
  clientPort: number,
  peerPort: number,
): string[] {
  return [
    `--name=${name}`,
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${clientPort}`,
    `--advertise-client-urls=http://127.0.0.1:${clientPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=${name}=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
}

export async function waitForEtcd(
  clientPort: number,
  exited: () => string | undefined,
): Promise<void> {
  await waitFor(
    'etcd',
    async () => {
      const r = await httpCall(`http://127.0.0.1:${clientPort}/health`);
      return r.status === 200 && r.body.includes('true');
    },
    30_000,
    exited,
  );
}

/** kube-apiserver flags; `extra` (e.g. kubelet client flags) goes before the verbosity. */
export function apiServerArgs(o: {
  etcdPort: number;
  apiPort: number;
  apiServer: string;
  certDir: string;
  files: ApiServerFiles;
  extra?: string[];
}): string[] {
  return [
    `--etcd-servers=http://127.0.0.1:${o.etcdPort}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${o.apiPort}`,
    `--cert-dir=${o.certDir}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    `--service-account-issuer=${o.apiServer}`,
    `--service-account-key-file=${o.files.saPub}`,
    `--service-account-signing-key-file=${o.files.saKey}`,
    `--token-auth-file=${o.files.tokensFile}`,
    '--authorization-mode=RBAC',
    '--allow-privileged=true',
    ...(o.extra ?? []),
    '--v=0',
  ];
}

/**
 * Waits for the API server's self-signed serving certificate, then for
 * /readyz as the admin; returns the certificate's path and PEM.
 */
export async function waitForApiServer(
  apiServer: string,
  certDir: string,
  adminToken: string,
  exited: () => string | undefined,
): Promise<{ caFile: string; ca: string }> {
  const caFile = join(certDir, 'apiserver.crt');
  await waitFor(
    'kube-apiserver certificate',
    () => Promise.resolve(existsSync(caFile)),
    60_000,
    exited,
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
    exited,
  );
  return { caFile, ca };
}

/** Writes a kubeconfig with one cluster/user/context named after `name`, as the admin. */
export async function writeAdminKubeconfig(
  file: string,
  name: string,
  apiServer: string,
  ca: string,
  adminToken: string,
): Promise<void> {
  await writeFile(
    file,
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
}
