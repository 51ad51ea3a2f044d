import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadKube } from '../../src/kube/config.js';
import { KubeRest, resourcePath } from '../../src/kube/rest.js';
import type { SandboxInfo, SandboxNode } from '../../testenv/sandbox.js';

export function sandbox(): SandboxInfo {
  return inject('sandbox');
}

/**
 * The global sandbox's node, for a test that needs pods to really run. On a
 * machine that cannot run one, throws the sandbox's one-line reason: the test
 * fails with it, it is never skipped.
 */
export function requireNode(info: SandboxInfo = sandbox()): SandboxNode {
  if (info.node) return info.node;
  throw new Error(
    info.nodeUnavailable ??
      'the test sandbox has no node (it was started without one); this test needs pods to run',
  );
}

export function kubeConfig(info: SandboxInfo = sandbox()): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  return kc;
}

export function kubeClients(info: SandboxInfo = sandbox()): { core: CoreV1Api; apps: AppsV1Api } {
  const kc = kubeConfig(info);
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

/**
 * Creates a Secret holding exactly these keys. Not through the generated
 * client: its serializer copies `data` and `stringData` into a `{}` by
 * assignment, which silently drops a key named `__proto__`. Plain JSON keeps
 * it (server-side apply creates the object).
 */
export async function createSecretExact(
  namespace: string,
  name: string,
  entries: readonly (readonly [string, string])[],
  info: SandboxInfo = sandbox(),
): Promise<void> {
  const rest = new KubeRest(loadKube({ kubeconfig: info.kubeconfig }, {}, process.cwd()));
  await rest.call({
    method: 'PATCH',
    path: resourcePath('v1', 'secrets', namespace, name),
    query: { fieldManager: 'cloudtaser-test' },
    contentType: 'application/apply-patch+yaml',
    body: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace },
      // fromEntries defines own properties, so "__proto__" stays a key.
      data: Object.fromEntries(entries.map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    },
  });
}

/** A namespace name no other test uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** Calls OpenBao's HTTP API as root (test set-up and assertions only). */
export async function bao(
  method: string,
  path: string,
  body?: unknown,
  token: string = sandbox().baoToken,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${sandbox().baoAddr}/v1/${path}`, {
    method,
    headers: {
      'x-vault-token': token,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as unknown) : undefined };
}

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
