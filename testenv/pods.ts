// A sandbox whose node runs pods, and the built `cloudtaser webhook serve`
// registered for one of its namespaces. Shared by the pod tests and the bench.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { cacheRoot } from './paths.js';
import { loopbackPki } from './pki.js';
import { startSandbox, type Sandbox, type SandboxInfo } from './sandbox.js';
import { waitForWebhook } from './webhook-probe.js';
import { registerWebhook, startWebhookProcess, type WebhookProcess } from './webhook.js';

/**
 * One node user at a time on the machine: a node test's before/after host
 * snapshots would see another run's node. (Node starts themselves already
 * wait on the node lock; this covers the snapshots around them.)
 */
export function withNodeTestLock<T>(fn: () => Promise<T>): Promise<T> {
  const lock = join(cacheRoot(), 'node-tests.lock');
  return withLock(
    lock,
    {
      timeoutMs: 20 * 60_000,
      pollMs: 1000,
      waiting: () => undefined,
      stuck: () => new Error(`node tests: ${lock} held for 20 min`),
    },
    fn,
  );
}

export interface PodSandbox {
  info: SandboxInfo;
  /** Stops what acquirePodSandbox started and lets the next node user run. */
  release(): Promise<void>;
}

/**
 * A sandbox whose node really runs pods. The one place that decides where
 * it comes from: today a sandbox of the caller's own, held under the
 * node-test lock until release.
 */
export async function acquirePodSandbox(
  log: (line: string) => void = () => undefined,
): Promise<PodSandbox> {
  let handOut: (sb: Sandbox) => void = () => undefined;
  let release: () => void = () => undefined;
  const handedOut = new Promise<Sandbox>((r) => {
    handOut = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  const held = withNodeTestLock(async () => {
    const sb = await startSandbox({ node: true, log });
    try {
      handOut(sb);
      await released;
    } finally {
      await sb.stop();
    }
  });
  // A failed start rejects `held` before anything was handed out.
  const failed = held.then((): never => {
    throw new Error('the pod sandbox stopped before it was handed out');
  });
  failed.catch(() => undefined);
  const sb = await Promise.race([handedOut, failed]);
  return {
    info: sb.info,
    release: async () => {
      release();
      await held;
    },
  };
}

export function clientsFor(info: SandboxInfo): { kc: KubeConfig; core: CoreV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  return { kc, core: kc.makeApiClient(CoreV1Api) };
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
    await registerWebhook({
      name: `cloudtaser-${o.namespace}`,
      namespace: o.namespace,
      port: w.port,
      caPems: [pki.ca],
      sandbox: info,
    });
    await waitForWebhook(clientsFor(info).core, o.namespace);
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
