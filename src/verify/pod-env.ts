// The pure parts of `target verify-pod`: which pod a reference names, what
// the debug container runs, how its log is read, and the verdict. The check
// reads the NAMES in PID 1's environment, never a value: the script cuts each
// entry at its first '=' inside the pod, so values never reach the log, the
// API server or this process.
import type { V1Container, V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { ANNOTATION, parseEnvMap } from '../contract/annotations.js';

/** A workload or pod as `kubectl exec` names it: `deploy/NAME`, `sts/NAME`, `pod/NAME`, `NAME`. */
export interface PodRef {
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Pod';
  name: string;
}

const KINDS: Record<string, PodRef['kind']> = {
  deploy: 'Deployment',
  deployment: 'Deployment',
  deployments: 'Deployment',
  sts: 'StatefulSet',
  statefulset: 'StatefulSet',
  statefulsets: 'StatefulSet',
  ds: 'DaemonSet',
  daemonset: 'DaemonSet',
  daemonsets: 'DaemonSet',
  po: 'Pod',
  pod: 'Pod',
  pods: 'Pod',
};

/** Parses the reference; undefined when it names no supported kind or no valid name. */
export function parsePodRef(ref: string): PodRef | undefined {
  const slash = ref.indexOf('/');
  const kindPart =
    slash < 0
      ? 'pod'
      : ref
          .slice(0, slash)
          .toLowerCase()
          .replace(/\.apps$/, '');
  const name = slash < 0 ? ref : ref.slice(slash + 1);
  const kind = KINDS[kindPart];
  if (!kind || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
    return undefined;
  }
  return { kind, name };
}

/**
 * A label selector in the query form (`a=b,c in (d,e),!f`); undefined when
 * it selects nothing reliably (empty, or an operator this does not know).
 */
export function selectorString(sel: V1LabelSelector | undefined): string | undefined {
  const parts = Object.entries(sel?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else return undefined;
  }
  return parts.length > 0 ? parts.join(',') : undefined;
}

const isReady = (p: V1Pod): boolean =>
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * The pod to inspect among a workload's pods: running and not being
 * deleted; Ready ones first, then the newest (after a rollout, the one on
 * the new template).
 */
export function pickPod(pods: readonly V1Pod[]): V1Pod | undefined {
  const running = pods.filter(
    (p) => p.status?.phase === 'Running' && p.metadata?.deletionTimestamp === undefined,
  );
  const created = (p: V1Pod): number => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  return [...running].sort(
    (a, b) => Number(isReady(b)) - Number(isReady(a)) || created(b) - created(a),
  )[0];
}

/** The app container: `--container`, else kubectl's default-container annotation, else the first. */
export function pickContainer(pod: V1Pod, wanted: string | undefined): V1Container | string {
  const containers = pod.spec?.containers ?? [];
  const name =
    wanted ?? pod.metadata?.annotations?.['kubectl.kubernetes.io/default-container'] ?? undefined;
  if (name === undefined) return containers[0] ?? 'the pod has no containers';
  return (
    containers.find((c) => c.name === name) ??
    `the pod has no container "${name}" (it has: ${containers.map((c) => c.name).join(', ')})`
  );
}

/**
 * The names that must not be in PID 1's environment: the env-map
 * annotation's variables, the container's own secretKeyRef variables, and
 * any the user adds. (envFrom brings in a whole Secret whose keys only the
 * Secret knows; a migrated template's env-map lists them.)
 */
export function secretNames(
  pod: V1Pod,
  container: V1Container,
  extra: readonly string[],
): string[] {
  const names = new Set<string>();
  const map = pod.metadata?.annotations?.[ANNOTATION.envMap];
  for (const e of map ? (parseEnvMap(map) ?? []) : []) names.add(e.env);
  for (const e of container.env ?? []) if (e.valueFrom?.secretKeyRef) names.add(e.name);
  for (const n of extra) names.add(n);
  return [...names].sort();
}

/** The settings the webhook injects for the wrapper; the wrapper removes them all before the app starts. */
export const SETTINGS_PREFIXES = ['VAULT_', 'CLOUDTASER_'] as const;

const MARK = 'cloudtaser-verify-pod';
export const BEGIN = `${MARK} begin`;
export const END = `${MARK} end`;
export const UNREADABLE = `${MARK} unreadable`;
export const PID1 = `${MARK} pid1 `;

/**
 * The debug container's shell script. `tr` turns each newline inside a
 * value into '=' (so a value never spans lines) and each NUL into a
 * newline; `cut` keeps what comes before the first '='. A refused read
 * prints the shell's own error and the unreadable marker, so an environ the
 * container cannot read is an error, never an empty (and so "clean") list.
 */
export function probeScript(): string {
  return [
    `echo "${BEGIN}"`,
    `echo "${PID1}$(cat /proc/1/comm 2>/dev/null)"`,
    `{ tr '\\n\\0' '=\\n' < /proc/1/environ || echo "${UNREADABLE}"; } | cut -d= -f1`,
    `echo "${END}"`,
  ].join('\n');
}

export type ProbeResult =
  { ok: true; pid1: string; names: string[] } | { ok: false; reason: string };

/** Reads the debug container's log (stdout and stderr, as the kubelet keeps it). */
export function parseProbeLog(log: string): ProbeResult {
  const lines = log.split('\n').map((l) => l.replace(/\r$/, ''));
  const begin = lines.indexOf(BEGIN);
  const end = lines.lastIndexOf(END);
  if (begin < 0 || end < begin) {
    return { ok: false, reason: 'the debug container did not print a complete list' };
  }
  const body = lines.slice(begin + 1, end);
  const pid1 =
    body
      .find((l) => l.startsWith(PID1))
      ?.slice(PID1.length)
      .trim() ?? '';
  if (body.includes(UNREADABLE)) {
    // The shell's own message ("can't open '/proc/1/environ': Permission
    // denied") says why; it holds a path, never a value.
    const said = body.find((l) => /\/proc\/1\/environ/.test(l) && !l.startsWith(MARK));
    return {
      ok: false,
      reason: `cannot read PID 1's environment${said ? ` (${said.trim()})` : ''}`,
    };
  }
  const names = body.filter((l) => !l.startsWith(MARK) && l !== '');
  return { ok: true, pid1, names: [...new Set(names)].sort() };
}

export interface NameVerdict {
  name: string;
  present: boolean;
}

/**
 * One verdict per secret name, then every VAULT_* and CLOUDTASER_* name
 * PID 1 holds (none, once the wrapper has started again without them).
 */
export function verdicts(found: readonly string[], secret: readonly string[]): NameVerdict[] {
  const have = new Set(found);
  const out = secret.map((name) => ({ name, present: have.has(name) }));
  for (const name of found) {
    if (SETTINGS_PREFIXES.some((p) => name.startsWith(p)) && !secret.includes(name)) {
      out.push({ name, present: true });
    }
  }
  return out;
}
