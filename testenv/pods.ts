// The built `cloudtaser webhook serve` registered for one namespace of a
// sandbox whose node runs pods. Shared by the pod tests and the bench.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { readFile } from 'node:fs/promises';
import { loopbackPki } from './pki.js';
import type { SandboxInfo } from './sandbox.js';
import { waitForWebhook } from './webhook-probe.js';
import { registerWebhook, startWebhookProcess, type WebhookProcess } from './webhook.js';

export function clientsFor(info: SandboxInfo): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  return { kc, core: kc.makeApiClient(CoreV1Api) };
}

/**
 * The trust store for OpenBao's TLS listener in `namespace`, as ConfigMap
 * `vault-ca` (key `ca.crt`): what an image's CA bundle would carry in a real
 * cluster. Pods mount it and point VAULT_CACERT at it.
 */
export async function createVaultCaConfigMap(
  core: CoreV1Api,
  namespace: string,
  info: SandboxInfo,
): Promise<void> {
  await core.createNamespacedConfigMap({
    namespace,
    body: {
      metadata: { name: 'vault-ca' },
      data: { 'ca.crt': await readFile(info.baoCaFile, 'utf8') },
    },
  });
}

export interface PodWebhook {
  process: WebhookProcess;
  stop(): void;
}

/**
 * Runs the built `cloudtaser webhook serve` on loopback with a throwaway
 * certificate, as a cluster runs it (Kubernetes auth at the sandbox's mount),
 * and registers it with the sandbox's API server for `namespace` only; returns
 * once the API server calls it.
 */
export async function startPodWebhook(
  info: SandboxInfo,
  o: {
    dir: string;
    namespace: string;
    initImage: string;
    /** Registries (host:port) the webhook reads image configs from over plain HTTP. */
    insecureRegistries?: string[];
  },
): Promise<PodWebhook> {
  const pki = await loopbackPki(o.dir);
  const w = await startWebhookProcess([
    '--tls-cert',
    pki.certFile,
    '--tls-key',
    pki.keyFile,
    '--init-image',
    o.initImage,
    '--auth-mount-path',
    `auth/${info.baoKubeAuthPath}`,
    '--kubeconfig',
    info.kubeconfig,
    ...(o.insecureRegistries?.length ? ['--insecure-registry', ...o.insecureRegistries] : []),
  ]);
  try {
    const { kc, core } = clientsFor(info);
    await registerWebhook({
      name: `cloudtaser-${o.namespace}`,
      namespace: o.namespace,
      port: w.port,
      caPems: [pki.ca],
      kubeConfig: kc,
    });
    await waitForWebhook(core, o.namespace);
  } catch (e) {
    w.kill();
    throw e;
  }
  return {
    process: w,
    stop: () => {
      w.kill();
    },
  };
}
