// Shared by the tests that run the product's runtime in real pods on the
// sandbox's node: the run's sandbox with its node, waiting for a pod's state,
// and reading a container's processes from the host. The built `cloudtaser
// webhook serve` registered for one namespace comes from testenv/pods.ts (the
// bench uses it too) and is re-exported here.
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { MEDIA, registryClient, type Descriptor, type ImageConfig } from '../../testenv/images.js';
import { nodeCgroupDirs } from '../../testenv/node.js';
import type { SandboxInfo } from '../../testenv/sandbox.js';
import { eventually, requireNode, sandbox } from './sandbox.js';

export interface PodSandbox {
  info: SandboxInfo;
  /** Lets go of the sandbox (the run's shared one: nothing to stop). */
  release(): Promise<void>;
}

/**
 * A sandbox whose node really runs pods. The one place that decides where
 * it comes from: the test run's sandbox and its node. On a machine that
 * cannot run one, this throws the sandbox's one-line reason (the test
 * fails; it is never skipped). Pods must carry `node.toleration`.
 */
export function acquirePodSandbox(): Promise<PodSandbox> {
  const info = sandbox();
  requireNode(info);
  return Promise.resolve({ info, release: () => Promise.resolve() });
}

export {
  clientsFor,
  createVaultCaConfigMap,
  startPodWebhook,
  type PodWebhook,
} from '../../testenv/pods.js';

/** Waits until the pod satisfies `ok` and returns it; names the last state on timeout. */
export async function waitForPod(
  core: CoreV1Api,
  namespace: string,
  name: string,
  what: string,
  ok: (p: V1Pod) => boolean,
  timeoutMs = 90_000,
): Promise<V1Pod> {
  let last = '';
  try {
    return await eventually(
      `pod ${namespace}/${name}: ${what}`,
      async () => {
        const p = await core.readNamespacedPod({ name, namespace });
        last = describePod(p);
        return ok(p) ? p : undefined;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}; last seen: ${last}`);
  }
}

/**
 * The one running pod labelled `app=<app>`, once it is the only one and is
 * injected (or not) as wanted: after a rollout, the old pods are gone.
 */
export async function onlyPod(
  core: CoreV1Api,
  namespace: string,
  app: string,
  injected: boolean,
): Promise<V1Pod> {
  let last = '';
  try {
    return await eventually(
      `one running ${injected ? 'protected' : 'native'} pod of ${app}`,
      async () => {
        const pods = (await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` }))
          .items;
        last = pods.map(describePod).join('; ');
        const [p, ...more] = pods;
        if (!p || more.length > 0) return undefined;
        const isInjected = p.metadata?.annotations?.['cloudtaser.io/injected-by'] !== undefined;
        return isInjected === injected && isRunning(p, 'app') ? p : undefined;
      },
      180_000,
    );
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}; last seen: ${last}`);
  }
}

/** Phase and container states in one line, for failure messages (no env, no values). */
export function describePod(p: V1Pod): string {
  const states = [
    ...(p.status?.initContainerStatuses ?? []),
    ...(p.status?.containerStatuses ?? []),
  ]
    .map((s) => {
      const st = s.state;
      const state = st?.running
        ? 'running'
        : st?.terminated
          ? `terminated(${st.terminated.exitCode}${st.terminated.reason ? ` ${st.terminated.reason}` : ''})`
          : st?.waiting
            ? `waiting(${st.waiting.reason ?? ''}${st.waiting.message ? `: ${st.waiting.message}` : ''})`
            : '?';
      return `${s.name}=${state}`;
    })
    .join(' ');
  return `phase ${p.status?.phase ?? '?'} ${states}`;
}

export const isRunning = (p: V1Pod, container: string): boolean =>
  (p.status?.containerStatuses ?? []).some((s) => s.name === container && s.state?.running);

export const isTerminated = (p: V1Pod, container: string): boolean =>
  (p.status?.containerStatuses ?? []).some((s) => s.name === container && s.state?.terminated);

/** The container's runtime id (without the `containerd://` prefix). */
export function containerId(p: V1Pod, container: string): string {
  const s = (p.status?.containerStatuses ?? []).find((c) => c.name === container);
  const id = s?.containerID?.replace(/^[a-z]+:\/\//, '') ?? '';
  if (!id) throw new Error(`container ${container} has no id yet (${describePod(p)})`);
  return id;
}

/** A process of a container, as the host sees it. */
export interface HostProcess {
  /** pid on the host */
  pid: number;
  /** pid inside the container's pid namespace */
  nsPid: number;
  ppid: number;
  argv: string[];
}

function statusField(pid: number, field: string): string[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return (line?.slice(field.length + 1).trim() ?? '').split(/\s+/);
}

/**
 * The live processes of a container, found through its cgroup on the node
 * (the kubelet's cgroupfs driver names the container's cgroup after its id).
 */
export function containerProcesses(id: string): HostProcess[] {
  const pids = new Set<number>();
  for (const d of nodeCgroupDirs().filter((d) => basename(d) === id)) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n'))
        if (l) pids.add(Number(l));
    } catch {
      // gone meanwhile
    }
  }
  const out: HostProcess[] = [];
  for (const pid of pids) {
    try {
      const ns = statusField(pid, 'NSpid');
      out.push({
        pid,
        nsPid: Number(ns[ns.length - 1]),
        ppid: Number(statusField(pid, 'PPid')[0]),
        argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
      });
    } catch {
      // exited meanwhile
    }
  }
  return out.sort((a, b) => a.nsPid - b.nsPid);
}

/** The container's PID 1 and its direct children, once both exist. */
export async function containerInitAndChild(
  id: string,
  isChild: (p: HostProcess) => boolean,
  timeoutMs = 30_000,
): Promise<{ pid1: HostProcess; child: HostProcess }> {
  return eventually(
    `PID 1 of container ${id.slice(0, 12)} and its child`,
    () => {
      const procs = containerProcesses(id);
      const pid1 = procs.find((p) => p.nsPid === 1);
      const child = procs.find((p) => pid1 !== undefined && p.ppid === pid1.pid && isChild(p));
      return Promise.resolve(pid1 && child ? { pid1, child } : undefined);
    },
    timeoutMs,
  );
}

/** A process's environment as the kernel shows it in /proc (read as root). */
export function hostEnviron(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`).toString('utf8').split('\0').filter(Boolean);
}

/** sha256 of a process's executable, read through /proc (the file inside its container). */
export function exeDigest(pid: number): string {
  return createHash('sha256')
    .update(readFileSync(`/proc/${pid}/exe`))
    .digest('hex');
}

export function fileDigest(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Short, value-free description of a secret for assertion messages. */
export function fingerprint(value: string): string {
  return `${value.length} chars, sha256 ${createHash('sha256').update(value).digest('hex').slice(0, 12)}`;
}

/** Every pid on the host whose argv contains `text` (for "is it gone" checks). */
export function hostPidsWith(text: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(text)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Pushes `repo:tag` to the registry at `host`: the layers of the image
 * `repo:from` already there, under a new image config (an app image whose
 * Dockerfile sets ENTRYPOINT, say). Returns the new image's reference.
 */
export async function pushWithConfig(
  host: string,
  repo: string,
  from: string,
  tag: string,
  config: ImageConfig,
): Promise<string> {
  const base = `http://${host}/v2/${repo}`;
  const res = await fetch(`${base}/manifests/${from}`, { headers: { accept: MEDIA.manifest } });
  if (res.status !== 200) throw new Error(`${host}/${repo}:${from}: ${res.status}`);
  const manifest = (await res.json()) as { config: Descriptor; layers: Descriptor[] };
  const cfgRes = await fetch(`${base}/blobs/${manifest.config.digest}`);
  const cfg = (await cfgRes.json()) as { config?: ImageConfig };
  cfg.config = config;
  const client = registryClient(host);
  const blob = await client.blob(repo, Buffer.from(JSON.stringify(cfg)));
  await client.manifest(repo, tag, MEDIA.manifest, {
    ...manifest,
    config: { ...blob, mediaType: MEDIA.config },
  });
  return `${host}/${repo}:${tag}`;
}
