// `target verify-pod`: proves that a running pod's PID 1 holds no secret in
// its environment. `kubectl exec … cat /proc/1/environ` cannot: the wrapper
// is not dumpable, so an exec'd process without CAP_SYS_PTRACE is refused
// and the guide's pipeline prints nothing whether or not the value is there.
// This adds an ephemeral container to the pod (what `kubectl debug --target`
// does) that shares the app container's process namespace and has
// CAP_SYS_PTRACE, lets it print the NAMES in /proc/1/environ, reads its log
// and compares. Values never leave the pod.
import { AppsV1Api, CoreV1Api, PatchStrategy, type V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { pause, say, type Context } from '../core/context.js';
import { CheckFailed, ServerError, UserError } from '../core/errors.js';
import { loadKubeFor, type KubeOptions, type KubeTarget } from '../kube/config.js';
import { kubeError, statusOf } from '../kube/errors.js';
import { KubeRest } from '../kube/rest.js';
import {
  parsePodRef,
  parseProbeLog,
  pickContainer,
  pickPod,
  probeScript,
  secretNames,
  selectorString,
  verdicts,
  type NameVerdict,
  type PodRef,
} from './pod-env.js';

/** Any image with sh, cat, tr and cut; `--image` for a mirror or an air-gapped registry. */
export const DEFAULT_DEBUG_IMAGE = 'busybox:1.36';
/** Long enough for a first pull of a small image on a slow link. */
export const DEFAULT_TIMEOUT_MS = 120_000;

export interface VerifyPodOptions {
  ref: string;
  namespace?: string | undefined;
  container?: string | undefined;
  image: string;
  /** More names that must be absent (beside the env-map annotation's). */
  env: readonly string[];
  timeoutMs: number;
  output: 'table' | 'json';
  kube: KubeOptions;
}

export interface VerifyPodReport {
  pod: string;
  namespace: string;
  container: string;
  pid1: string;
  names: NameVerdict[];
  ok: boolean;
}

/** Waiting reasons after which the debug container will not start by itself. */
const STUCK = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

export async function runVerifyPod(o: VerifyPodOptions, ctx: Context): Promise<VerifyPodReport> {
  const ref = parsePodRef(o.ref);
  if (!ref) {
    throw new UserError(
      `cannot read "${o.ref}" as a pod or workload`,
      'name it as kubectl does: deploy/NAME, statefulset/NAME, daemonset/NAME or pod/NAME',
    );
  }
  const kube = loadKubeFor(o.kube, ctx);
  const namespace = o.namespace ?? kube.kc.getContextObject(kube.context)?.namespace ?? 'default';
  const core = kube.api(CoreV1Api);
  const pod = await findPod(kube, core, ref, namespace);
  const podName = pod.metadata?.name ?? '';
  if (pod.spec?.shareProcessNamespace) {
    throw new UserError(
      `pod ${namespace}/${podName} shares one process namespace among its containers, so PID 1 is the pod's pause process, not the app's`,
      "check the wrapper's environment by its PID as root on the node instead",
    );
  }
  const container = pickContainer(pod, o.container);
  if (typeof container === 'string')
    throw new UserError(`pod ${namespace}/${podName}: ${container}`);
  const running = pod.status?.containerStatuses?.find((s) => s.name === container.name);
  if (!running?.state?.running) {
    const waiting = running?.state?.waiting?.reason;
    throw new CheckFailed(
      `container ${container.name} of pod ${namespace}/${podName} is not running${waiting ? ` (${waiting})` : ''}: there is no PID 1 to inspect`,
    );
  }
  const names = secretNames(pod, container, o.env);
  if (names.length === 0) {
    throw new UserError(
      `pod ${namespace}/${podName} has no cloudtaser.io/env-map annotation and container ${container.name} reads no Secret into its environment: nothing to check`,
      'name the variables to look for with --env NAME',
    );
  }

  const debugName = `cloudtaser-verify-${randomBytes(3).toString('hex')}`;
  await addDebugContainer(kube, namespace, podName, container.name, debugName, o.image);
  const log = await awaitLog(core, kube, namespace, podName, debugName, o, ctx);
  const probe = parseProbeLog(log);
  if (!probe.ok) {
    throw new ServerError(
      `pod ${namespace}/${podName}: ${probe.reason}`,
      'the debug container needs CAP_SYS_PTRACE (the wrapper is not dumpable) and an image with sh, cat, tr and cut (--image)',
    );
  }
  const result = verdicts(probe.names, names);
  const report: VerifyPodReport = {
    pod: podName,
    namespace,
    container: container.name,
    pid1: probe.pid1,
    names: result,
    ok: result.every((v) => !v.present),
  };
  if (o.output === 'json') ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    say(
      ctx.stdout,
      `pod ${namespace}/${podName}, container ${container.name}, PID 1: ${probe.pid1 || '?'}`,
    );
    const width = Math.max(...result.map((v) => v.name.length));
    for (const v of result)
      say(ctx.stdout, `${v.name.padEnd(width)}  ${v.present ? 'PRESENT' : 'absent'}`);
    if (!result.some((v) => v.present && !names.includes(v.name))) {
      say(ctx.stdout, 'no VAULT_* or CLOUDTASER_* variable in its environment');
    }
  }
  const present = result.filter((v) => v.present).map((v) => v.name);
  if (present.length > 0) {
    throw new CheckFailed(
      `PID 1 of pod ${namespace}/${podName} has ${present.join(', ')} in its environment (names read, values not)`,
      'a secret reaches PID 1 when the pod started without the wrapper (created before protect, or with the webhook bypassed) or a native Secret still feeds it: check the pod has the cloudtaser-init container and restart it',
    );
  }
  return report;
}

async function findPod(
  kube: KubeTarget,
  core: CoreV1Api,
  ref: PodRef,
  namespace: string,
): Promise<V1Pod> {
  if (ref.kind === 'Pod') {
    try {
      return await core.readNamespacedPod({ name: ref.name, namespace });
    } catch (e) {
      if (statusOf(e) === 404) throw new UserError(`pod ${namespace}/${ref.name} not found`);
      throw kubeError(e, { verb: 'get', resource: 'pods', name: ref.name, namespace }, kube.server);
    }
  }
  const apps = kube.api(AppsV1Api);
  const resource = `${ref.kind.toLowerCase()}s.apps`;
  let selector: string | undefined;
  try {
    const p = { name: ref.name, namespace };
    const w =
      ref.kind === 'Deployment'
        ? await apps.readNamespacedDeployment(p)
        : ref.kind === 'StatefulSet'
          ? await apps.readNamespacedStatefulSet(p)
          : await apps.readNamespacedDaemonSet(p);
    selector = selectorString(w.spec?.selector);
  } catch (e) {
    if (statusOf(e) === 404) throw new UserError(`${ref.kind} ${namespace}/${ref.name} not found`);
    throw kubeError(e, { verb: 'get', resource, name: ref.name, namespace }, kube.server);
  }
  if (!selector) throw new UserError(`${ref.kind} ${namespace}/${ref.name} has no usable selector`);
  let pods: V1Pod[];
  try {
    pods = (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
  } catch (e) {
    throw kubeError(e, { verb: 'list', resource: 'pods', namespace }, kube.server);
  }
  const pod = pickPod(pods);
  if (!pod) {
    throw new CheckFailed(
      `${ref.kind} ${namespace}/${ref.name} has no running pod (${pods.length} pod(s), none Running)`,
    );
  }
  return pod;
}

async function addDebugContainer(
  kube: KubeTarget,
  namespace: string,
  pod: string,
  target: string,
  name: string,
  image: string,
): Promise<void> {
  const body = {
    spec: {
      ephemeralContainers: [
        {
          name,
          image,
          command: ['sh', '-c', probeScript()],
          targetContainerName: target,
          terminationMessagePolicy: 'File',
          // Root with CAP_SYS_PTRACE: the wrapper is not dumpable, and a
          // non-root process loses added capabilities when it execs.
          securityContext: {
            runAsUser: 0,
            runAsNonRoot: false,
            allowPrivilegeEscalation: false,
            capabilities: { add: ['SYS_PTRACE'], drop: ['ALL'] },
          },
          resources: {},
        },
      ],
    },
  };
  try {
    await new KubeRest(kube).call({
      method: 'PATCH',
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/ephemeralcontainers`,
      query: { fieldManager: 'cloudtaser' },
      body,
      contentType: PatchStrategy.StrategicMergePatch,
    });
  } catch (e) {
    const status = statusOf(e);
    const said = serverMessage(e);
    if (status === 403 && /PodSecurity|violates/i.test(said)) {
      throw new ServerError(
        `the cluster refused the debug container for pod ${namespace}/${pod}: ${said}`,
        "a container that adds SYS_PTRACE is beyond the namespace's Pod Security level; run the check where policy allows it, or read the wrapper's /proc/<pid>/environ as root on the node",
      );
    }
    if (status === 404 && said === '') {
      throw new ServerError(
        `the API server has no ephemeral containers for pod ${namespace}/${pod} (404)`,
        'ephemeral containers need Kubernetes 1.25 or later',
      );
    }
    throw kubeError(
      e,
      { verb: 'patch', resource: 'pods/ephemeralcontainers', name: pod, namespace },
      kube.server,
    );
  }
}

function serverMessage(e: unknown): string {
  const body = (e as { body?: unknown } | undefined)?.body;
  if (typeof body === 'object' && body !== null && 'message' in body) {
    const m = (body as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  }
  return '';
}

/** Waits for the debug container to end (or to be stuck) and returns its log. */
async function awaitLog(
  core: CoreV1Api,
  kube: KubeTarget,
  namespace: string,
  pod: string,
  name: string,
  o: VerifyPodOptions,
  ctx: Context,
): Promise<string> {
  const started = Date.now();
  let last = 'not started yet';
  for (;;) {
    if (ctx.signal?.aborted) throw new ServerError('interrupted');
    let live: V1Pod;
    try {
      live = await core.readNamespacedPod({ name: pod, namespace });
    } catch (e) {
      throw kubeError(e, { verb: 'get', resource: 'pods', name: pod, namespace }, kube.server);
    }
    const s = live.status?.ephemeralContainerStatuses?.find((c) => c.name === name);
    if (s?.state?.terminated) break;
    const waiting = s?.state?.waiting;
    if (waiting?.reason && STUCK.has(waiting.reason)) {
      throw new ServerError(
        `the debug container in pod ${namespace}/${pod} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message.split('\n')[0] ?? ''}` : ''}`,
        waiting.reason.includes('Image')
          ? `check that the node can pull ${o.image}, or pass --image with one it can (any image with sh, cat, tr and cut)`
          : undefined,
      );
    }
    if (waiting?.reason) last = waiting.reason;
    else if (s?.state?.running) last = 'running';
    if (Date.now() - started > o.timeoutMs) {
      throw new ServerError(
        `the debug container in pod ${namespace}/${pod} did not finish within ${o.timeoutMs / 1000} s (${last})`,
        'raise --timeout, or look at `kubectl describe pod` for why',
      );
    }
    await pause(250, ctx.signal);
  }
  try {
    return await core.readNamespacedPodLog({ name: pod, namespace, container: name });
  } catch (e) {
    throw kubeError(e, { verb: 'get', resource: 'pods/log', name: pod, namespace }, kube.server);
  }
}
