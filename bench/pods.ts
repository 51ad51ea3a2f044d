// Pods on the sandbox's real node (kubelet, containerd, runc), admitted by
// the built `cloudtaser webhook serve` through the real API server:
// - pods: create → Ready of injected pods (cloudtaser-init, the wrapper, the
//   secrets from OpenBao through Kubernetes auth) against identical pods that
//   read the same values from a native Secret, one pod at a time, alternating.
// - admission: 200 annotated pods created at once; the webhook's own timing
//   of each review and the API server's histogram of its calls.
import { Watch, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import { projectRoot } from '../testenv/paths.js';
import {
  clientsFor,
  createVaultCaConfigMap,
  startPodWebhook,
  type PodWebhook,
} from '../testenv/pods.js';
import type { SandboxInfo } from '../testenv/sandbox.js';

export const POD_STEPS = ['pods', 'admission'] as const;
export type PodStep = (typeof POD_STEPS)[number];

const NS = 'bench-pods';
const SA = 'app';
const VAULT_PATH = `secret/data/${NS}/db`;
const CA_DIR = '/etc/vault-ca';
const WEBHOOK_NAME = 'inject.cloudtaser.io';
/** Pairs measured; one more pair before them pulls the images and is not counted. */
const PAIRS = 20;
const BURST = 200;
// The app notes when it started, by the kernel's boot clock (the host's and
// every container's: /proc/uptime is not namespaced), and that it has its
// password, by length only; then idles until stopped.
const APP_SCRIPT = [
  'read up rest < /proc/uptime',
  'echo "$up ${#DB_PASS}" > /out/started',
  "trap 'exit 0' TERM",
  'while true; do sleep 1 & wait $!; done',
].join('\n');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const uptime = (): number => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ');

/** Nearest-rank percentile of `xs` (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

const ms = (x: number): string => `${Math.round(x)} ms`;
const signed = (x: number): string => `${x < 0 ? '−' : '+'}${ms(Math.abs(x))}`;

interface Ctx {
  info: SandboxInfo;
  core: CoreV1Api;
  work: string;
  outDir: string;
  log: (line: string) => void;
}

export interface PodRows {
  rows: string[][];
  notes: string[];
}

export async function runPodSteps(
  info: SandboxInfo,
  work: string,
  steps: ReadonlySet<PodStep>,
  log: (line: string) => void,
): Promise<PodRows> {
  if (!info.node) throw new Error('the pod steps need a sandbox with a node');
  const { core } = clientsFor(info);
  const outDir = join(work, 'pods-out');
  await mkdir(outDir, { recursive: true });
  const ctx: Ctx = { info, core, work, outDir, log };
  const password = `pw-${randomBytes(12).toString('hex')}`;
  await prepare(ctx, password);
  const hook = await startPodWebhook(info, {
    dir: work,
    namespace: NS,
    initImage: info.node.images.init,
  });
  const out: PodRows = { rows: [], notes: [] };
  try {
    if (steps.has('pods')) await podStart(ctx, password.length, out);
    if (steps.has('admission')) await admissionBurst(ctx, hook, out);
  } finally {
    hook.stop();
  }
  return out;
}

/** The namespace, its service account, the CA, the native Secret, and OpenBao's side. */
async function prepare(ctx: Ctx, password: string): Promise<void> {
  const { core, info } = ctx;
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: SA } } });
  await createVaultCaConfigMap(core, NS, info);
  // What the uninjected pods read, as before a migration.
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: 'db' }, stringData: { password } },
  });
  // After it: the product's apply-plan writes the policy and the role bound
  // to the service account, the value goes in as `bao kv put` would.
  const plan: MigrationPlan = {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'bench-pods', cluster: info.apiServer },
    tenants: [
      {
        name: NS,
        namespace: NS,
        workloads: [
          {
            kind: 'Deployment',
            name: 'app',
            replicas: 1,
            serviceAccount: SA,
            status: 'pending',
            secrets: [
              { source: 'k8s-secret/db', vaultPath: VAULT_PATH, fields: { password: 'DB_PASS' } },
            ],
          },
        ],
      },
    ],
  };
  await writeFile(join(ctx.work, 'plan-pods.yaml'), renderPlan(plan));
  const env = { ...process.env, BAO_ADDR: info.baoAddr, BAO_TOKEN: info.baoToken };
  await promisify(execFile)(
    process.execPath,
    [
      join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
      ...['source', 'apply-plan', 'plan-pods.yaml', '--auth-path', info.baoKubeAuthPath],
    ],
    { cwd: ctx.work, env },
  );
  const put = await fetch(`${info.baoAddr}/v1/${VAULT_PATH}`, {
    method: 'POST',
    headers: { 'x-vault-token': info.baoToken, 'content-type': 'application/json' },
    body: JSON.stringify({ data: { password } }),
  });
  if (put.status !== 200) throw new Error(`writing ${VAULT_PATH}: ${put.status}`);
}

/**
 * The pods compared: `injected` carries the annotations `target protect`
 * writes (the webhook adds cloudtaser-init and the wrapper; the wrapper
 * logs in to OpenBao with the pod's projected token); `plain` reads the
 * value from the native Secret (same image, command, volumes, hostNetwork);
 * `plain-init` is `plain` with an init container that does nothing (the
 * busybox image, `sh -c :`): what any init container costs the kubelet.
 */
type Kind = 'injected' | 'plain' | 'plain-init';

function pod(ctx: Ctx, name: string, kind: Kind): V1Pod {
  const node = ctx.info.node;
  const injected = kind === 'injected';
  return {
    metadata: {
      name,
      labels: { bench: 'pods' },
      ...(injected
        ? {
            annotations: {
              'cloudtaser.io/inject': 'true',
              'cloudtaser.io/vault-address': ctx.info.baoTlsAddr,
              'cloudtaser.io/vault-role': `${NS}-role`,
              'cloudtaser.io/secret-paths': VAULT_PATH,
              'cloudtaser.io/env-map': `${VAULT_PATH}:password=DB_PASS`,
            },
          }
        : {}),
    },
    spec: {
      hostNetwork: true,
      serviceAccountName: SA,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      // The sandbox's node is tainted: only pods that mean to run there do.
      tolerations: node ? [node.toleration] : [],
      ...(kind === 'plain-init'
        ? {
            initContainers: [
              { name: 'noop', image: node?.images.busybox ?? '', command: ['sh', '-c', ':'] },
            ],
          }
        : {}),
      containers: [
        {
          name: 'app',
          image: node?.images.busybox ?? '',
          command: ['sh', '-c', APP_SCRIPT],
          env: [
            { name: 'VAULT_CACERT', value: `${CA_DIR}/ca.crt` },
            ...(injected
              ? []
              : [
                  { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
                ]),
          ],
          volumeMounts: [
            { name: 'vault-ca', mountPath: CA_DIR, readOnly: true },
            { name: 'out', mountPath: '/out' },
          ],
        },
      ],
      volumes: [
        { name: 'vault-ca', configMap: { name: 'vault-ca' } },
        { name: 'out', hostPath: { path: join(ctx.outDir, name), type: 'DirectoryOrCreate' } },
      ],
    },
  };
}

const isReady = (p: V1Pod): boolean =>
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/** Local arrival time (performance.now) of each pod's first Ready, from one watch. */
async function watchReady(
  ctx: Ctx,
): Promise<{ ready(name: string, timeoutMs: number): Promise<number>; stop(): void }> {
  const seen = new Map<string, number>();
  const waiters = new Map<string, (t: number) => void>();
  const { kc } = clientsFor(ctx.info);
  let failed: unknown;
  const controller = await new Watch(kc).watch(
    `/api/v1/namespaces/${NS}/pods`,
    { labelSelector: 'bench=pods' },
    (_type: string, obj: V1Pod) => {
      const t = performance.now();
      const name = obj.metadata?.name ?? '';
      if (!isReady(obj) || seen.has(name)) return;
      seen.set(name, t);
      waiters.get(name)?.(t);
    },
    (err: unknown) => {
      failed = err ?? new Error('the pod watch ended');
    },
  );
  return {
    ready: async (name, timeoutMs) => {
      const at = seen.get(name);
      if (at !== undefined) return at;
      const deadline = Date.now() + timeoutMs;
      return new Promise<number>((resolve, reject) => {
        waiters.set(name, resolve);
        const check = (): void => {
          if (seen.has(name)) return;
          if (failed !== undefined)
            reject(new Error(`pod watch: ${failed instanceof Error ? failed.message : 'ended'}`));
          else if (Date.now() > deadline)
            reject(new Error(`pod ${NS}/${name} not Ready within ${timeoutMs / 1000} s`));
          else setTimeout(check, 500);
        };
        check();
      });
    },
    stop: () => {
      controller.abort();
    },
  };
}

async function gone(ctx: Ctx, name: string): Promise<void> {
  await ctx.core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const present = await ctx.core.readNamespacedPod({ name, namespace: NS }).then(
      () => true,
      (e: unknown) => (e as { code?: number }).code !== 404,
    );
    if (!present) return;
    if (Date.now() > deadline) throw new Error(`pod ${NS}/${name} still there 60 s after delete`);
    await sleep(250);
  }
}

interface Start {
  readyMs: number;
  appMs: number;
}

async function startOne(
  ctx: Ctx,
  watch: Awaited<ReturnType<typeof watchReady>>,
  name: string,
  kind: Kind,
  passwordLength: number,
): Promise<Start> {
  const injected = kind === 'injected';
  const body = pod(ctx, name, kind);
  const boot = uptime();
  const t0 = performance.now();
  const created = await ctx.core.createNamespacedPod({ namespace: NS, body });
  const wasInjected = (created.spec?.initContainers ?? []).some(
    (c) => c.name === 'cloudtaser-init',
  );
  if (wasInjected !== injected)
    throw new Error(`pod ${name}: injected ${wasInjected}, wanted ${injected}`);
  const readyAt = await watch.ready(name, 180_000);
  // The app's own note, written before Ready is reported (or just after).
  const file = join(ctx.outDir, name, 'started');
  const deadline = Date.now() + 30_000;
  while (!existsSync(file) || !readFileSync(file, 'utf8').includes('\n')) {
    if (Date.now() > deadline) throw new Error(`pod ${name}: the app never noted its start`);
    await sleep(100);
  }
  const [up = '', len = ''] = readFileSync(file, 'utf8').trim().split(' ');
  // Both kinds must really have the value; by length only.
  if (Number(len) !== passwordLength)
    throw new Error(`pod ${name}: the app's DB_PASS has ${len} chars, wanted ${passwordLength}`);
  await gone(ctx, name);
  return { readyMs: readyAt - t0, appMs: (Number(up) - boot) * 1000 };
}

async function podStart(ctx: Ctx, passwordLength: number, out: PodRows): Promise<void> {
  const watch = await watchReady(ctx);
  const kinds: Kind[] = ['injected', 'plain', 'plain-init'];
  const starts = new Map<Kind, Start[]>(kinds.map((k) => [k, []]));
  const loads: string[] = [load()];
  try {
    // Untimed: the node pulls busybox and cloudtaser-init.
    for (const k of kinds) await startOne(ctx, watch, `warm-${k}`, k, passwordLength);
    for (let i = 0; i < PAIRS; i++) {
      // Rotating which goes first, so none always follows the same one's deletion.
      for (let j = 0; j < kinds.length; j++) {
        const kind = kinds[(i + j) % kinds.length] ?? 'plain';
        const name = `${kind}-${String(i).padStart(2, '0')}`;
        const s = await startOne(ctx, watch, name, kind, passwordLength);
        starts.get(kind)?.push(s);
        ctx.log(`${name}: Ready after ${ms(s.readyMs)}, app started after ${ms(s.appMs)}`);
      }
      if (i === PAIRS / 2 - 1) loads.push(load());
    }
    loads.push(load());
  } finally {
    watch.stop();
  }
  const of = (kind: Kind, k: keyof Start): number[] => (starts.get(kind) ?? []).map((x) => x[k]);
  const stat = (kind: Kind, k: keyof Start): { med: number; p95: number } => ({
    med: percentile(of(kind, k), 50),
    p95: percentile(of(kind, k), 95),
  });
  for (const [k, label] of [
    ['readyMs', 'create → Ready (watch event)'],
    ['appMs', "create → app started with its secret (the app's clock, 10 ms steps)"],
  ] as const) {
    const a = stat('injected', k);
    const b = stat('plain', k);
    const c = stat('plain-init', k);
    out.rows.push([
      `pod start, ${label}, ${PAIRS} pods of each kind, interleaved`,
      `injected: median ${ms(a.med)}, p95 ${ms(a.p95)}`,
      `uninjected: median ${ms(b.med)}, p95 ${ms(b.p95)}; uninjected + no-op init container: median ${ms(c.med)}, p95 ${ms(c.p95)}`,
      `median ${signed(a.med - b.med)}, p95 ${signed(a.p95 - b.p95)} (vs no-op init: median ${signed(a.med - c.med)})`,
      k === 'readyMs' ? 'median ≤ uninjected + 300 ms' : '(same target, the stricter view)',
    ]);
  }
  const list = (kind: Kind, k: keyof Start): string =>
    of(kind, k)
      .map((x) => Math.round(x))
      .join(', ');
  out.notes.push(
    `pods: load average (1 / 5 / 15 min) ${loads.join(' → ')}. Every run in ms, in order: ${kinds.map((kind) => `${kind} Ready ${list(kind, 'readyMs')}; app ${list(kind, 'appMs')}`).join('; ')}`,
  );
}

/** apiserver_admission_webhook_admission_duration_seconds buckets of our webhook's CREATE calls. */
async function webhookHistogram(
  info: SandboxInfo,
): Promise<{ buckets: Map<number, number>; count: number }> {
  const { stdout } = await promisify(execFile)(
    info.binaries.kubectl,
    ['--kubeconfig', info.kubeconfig, 'get', '--raw', '/metrics'],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  const buckets = new Map<number, number>();
  let count = 0;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('apiserver_admission_webhook_admission_duration_seconds')) continue;
    if (!line.includes(`name="${WEBHOOK_NAME}"`) || !line.includes('operation="CREATE"')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (line.includes('_bucket{') && le !== undefined) {
      const bound = le === '+Inf' ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (line.includes('_count{')) count += value;
  }
  return { buckets, count };
}

/** The bucket a quantile falls in, from cumulative bucket counts: "(lo, hi] ms". */
function bucketQuantile(buckets: Map<number, number>, count: number, q: number): string {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  let lo = 0;
  for (const b of bounds) {
    if ((buckets.get(b) ?? 0) >= q * count) {
      const f = (s: number): string => (s === Infinity ? '∞' : `${Math.round(s * 1000)}`);
      return `(${f(lo)}, ${f(b)}] ms`;
    }
    lo = b;
  }
  return '?';
}

async function admissionBurst(ctx: Ctx, hook: PodWebhook, out: PodRows): Promise<void> {
  const { core, info } = ctx;
  const before = await webhookHistogram(info);
  const names = Array.from({ length: BURST }, (_, i) => `burst-${String(i).padStart(3, '0')}`);
  const body = (name: string): V1Pod => {
    const p = pod(ctx, name, 'injected');
    if (p.metadata) p.metadata.labels = { bench: 'admission' };
    // No node has this label: admitted and stored, never scheduled.
    if (p.spec) p.spec.nodeSelector = { 'cloudtaser.io/bench': 'nowhere' };
    return p;
  };
  const loadBefore = load();
  const clientMs: number[] = [];
  const results = await Promise.allSettled(
    names.map(async (name) => {
      const t0 = performance.now();
      const created = await core.createNamespacedPod({ namespace: NS, body: body(name) });
      clientMs.push(performance.now() - t0);
      return created;
    }),
  );
  const loadAfter = load();
  const rejected = results.filter((r) => r.status === 'rejected');
  const injected = results.filter(
    (r) =>
      r.status === 'fulfilled' &&
      (r.value.spec?.initContainers ?? []).some((c) => c.name === 'cloudtaser-init'),
  ).length;
  for (const r of rejected.slice(0, 3))
    ctx.log(`admission: rejected: ${String((r.reason as { body?: unknown }).body ?? r.reason)}`);
  // The webhook logs each review with its own duration.
  const reviewed = new Map<string, number>();
  const deadline = Date.now() + 30_000;
  while (reviewed.size < BURST - rejected.length && Date.now() < deadline) {
    for (const m of hook.process
      .log()
      .matchAll(new RegExp(`^admission ${NS}/(burst-\\d+) in ([\\d.]+) ms: `, 'gm')))
      reviewed.set(m[1] ?? '', Number(m[2]));
    if (reviewed.size < BURST - rejected.length) await sleep(200);
  }
  const after = await webhookHistogram(info);
  const diff = new Map([...after.buckets].map(([b, n]) => [b, n - (before.buckets.get(b) ?? 0)]));
  const calls = after.count - before.count;
  await core.deleteCollectionNamespacedPod({
    namespace: NS,
    labelSelector: 'bench=admission',
    gracePeriodSeconds: 0,
  });
  const own = [...reviewed.values()];
  out.rows.push([
    `admission, ${BURST} annotated pods created at once`,
    `webhook's own timing (${own.length} reviews): p50 ${percentile(own, 50).toFixed(1)} ms, p99 ${percentile(own, 99).toFixed(1)} ms, max ${Math.max(...own).toFixed(1)} ms`,
    `API server's apiserver_admission_webhook_admission_duration_seconds (${calls} calls, bucket resolution): p50 in ${bucketQuantile(diff, calls, 0.5)}, p99 in ${bucketQuantile(diff, calls, 0.99)}`,
    `${rejected.length} of ${BURST} rejected, ${injected} injected`,
    'p99 ≤ 50 ms, none rejected',
  ]);
  out.notes.push(
    `admission: load average ${loadBefore} before the burst, ${loadAfter} after; client-side create calls: p50 ${ms(percentile(clientMs, 50))}, p99 ${ms(percentile(clientMs, 99))}; API server buckets (le → calls): ${[
      ...diff,
    ]
      .sort((a, b) => a[0] - b[0])
      .map(([b, n]) => `${b === Infinity ? '+Inf' : `${b * 1000} ms`}: ${n}`)
      .join(', ')}`,
  );
}
