import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
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
