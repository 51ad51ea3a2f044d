// `target protect` and `target unprotect`: for each selected workload,
// read it (from one up-front list per kind with --yes, fresh before each
// question when interactive), decide, patch its pod template in one request
// guarded by the resourceVersion that was checked, optionally restart and
// wait, and record the status durably.
//
// Resumability rests on the cluster, not only on the plan: a workload whose
// live template already carries exactly the annotations we would write is
// recorded as migrated without a second patch, so a run killed between the
// patch and the status write never causes a second rollout. The template's
// references to the migrated Secrets are removed in that same patch
// (native-refs.ts), so a template that carries the annotations has already
// lost them, and the record of what to put back travels with it.
import { Prompter } from '../core/prompt.js';
import { pause, rfc3339, say, type Context } from '../core/context.js';
import { mapLimit } from '../core/concurrency.js';
import { CheckFailed, ServerError, UserError } from '../core/errors.js';
import { referencedSources, type WorkloadObject } from '../contract/workload.js';
import { loadKubeFor, type KubeOptions } from '../kube/config.js';
import { KubeApiError } from '../kube/errors.js';
import {
  isPaused,
  rolloutProgress,
  updateStrategy,
  Workloads,
  type LiveWorkload,
} from '../kube/workloads.js';
import { stuckPods } from '../kube/pod-problems.js';
import { RevisionPods } from '../kube/revision.js';
import { readPlan, type LoadedPlan } from '../plan/read.js';
import { workloadKey } from '../plan/write.js';
import type { PlanWorkload, Tenant } from '../plan/schema.js';
import { nativeSecretOf, type WorkloadStatus } from '../plan/model.js';
import { ANNOTATION, OWNED_ANNOTATIONS } from '../contract/annotations.js';
import { alreadyApplied, fileMapEntries, protectAnnotations } from './annotations.js';
import { servedVolumes } from '../webhook/mutate.js';
import {
  annotationOps,
  appendRecord,
  describeRef,
  envFromSecrets,
  findNativeRefs,
  migratedSecrets,
  readRecord,
  recordedSecrets,
  removalOps,
  restoreOps,
  servedInFull,
  wholeVolumeSecrets,
  type JsonPatchOp,
  type NativeRefsFinding,
  type Restore,
} from './native-refs.js';
import { PlanLock, PlanStore } from './plan-store.js';
import { NOT_RESTARTED_ONDELETE, OnDeleteRestart } from './restart.js';

export interface RunOptions {
  display: string;
  mode: 'interactive' | 'yes';
  namespace?: string | undefined;
  kube: KubeOptions;
  concurrency: number;
  dryRun: boolean;
  wait: boolean;
  timeoutMs: number;
  /** With --yes: restart OnDelete workloads' pods (one at a time); without it they are left. */
  restartOnDelete?: boolean;
  /** Runs on the plan the run will use (re-read under the lock) before anything else; throws to stop. */
  checkPlan?: ((current: LoadedPlan) => Promise<void>) | undefined;
}

export interface ProtectOptions extends RunOptions {
  vaultAddress: string;
  /** A plain-http vaultAddress is intended: the pod templates say so. */
  allowInsecureVault?: boolean | undefined;
  /** Leave the template's references to migrated Secrets in place (a two-step cut-over). */
  keepNativeRefs?: boolean | undefined;
  /** Vault's auth mount for this cluster (`--auth-path`); absent: the webhook's default. */
  authPath?: string | undefined;
}

interface Item {
  tenant: Tenant;
  workload: PlanWorkload;
}

interface Outcome {
  status: WorkloadStatus;
  steps: string[];
  /** Why a workload stays pending (a check, a failure, a dry run). */
  reason?: string;
  /** The reason is an error: the run exits non-zero. */
  failed?: boolean;
  /** Done, but --wait ran out before the rollout finished. */
  incomplete?: string;
  /** ...because it cannot finish by itself (`incomplete` says why). */
  stuck?: boolean;
  /** Lines printed after the outcome (what was removed or kept, and why). */
  notes?: string[];
  dryRun?: boolean;
}

interface Decision {
  inject: boolean;
  restart: boolean;
}

const label = (i: Item): string => `${i.workload.kind} ${i.tenant.namespace}/${i.workload.name}`;
const ref = (i: Item) => ({
  namespace: i.tenant.namespace,
  kind: i.workload.kind,
  name: i.workload.name,
});

function selectItems(
  loaded: LoadedPlan,
  namespace: string | undefined,
  statuses: WorkloadStatus[],
): Item[] {
  return loaded.plan.tenants
    .filter((t) => namespace === undefined || t.namespace === namespace)
    .flatMap((tenant) =>
      tenant.workloads
        .filter((w) => statuses.includes(w.status))
        .map((workload) => ({ tenant, workload })),
    );
}

/** Why a live workload no longer matches its plan entry, if it does not. */
function mismatch(item: Item, live: LiveWorkload): string | undefined {
  const obj: WorkloadObject = {
    kind: item.workload.kind,
    metadata: { name: item.workload.name, namespace: item.tenant.namespace },
    ...(live.spec ? { spec: live.spec } : {}),
  };
  const sources = referencedSources(obj);
  // References protect removed earlier still count: they are recorded on the template.
  for (const name of recordedSecrets(readRecord(live.spec?.template.metadata?.annotations)))
    sources.add(`k8s-secret/${name}`);
  // A sealed-secret/<name>, sops/<file>#<doc> or eso/<es> entry is there as
  // long as the template reads the native Secret it stands for
  // (nativeSecretOf); a vault-agent one through its annotation.
  const gone = item.workload.secrets
    .filter((s) => {
      const native = nativeSecretOf(s);
      return !sources.has(native ? `k8s-secret/${native.name}` : s.source);
    })
    .map((s) =>
      s.source.startsWith('sops/') ? `${s.source} (Secret ${s.secret ?? '?'})` : s.source,
    );
  if (gone.length > 0) return `no longer references ${gone.join(', ')}`;
  return undefined;
}

function printBlock(item: Item, live: LiveWorkload, ctx: Context): void {
  const out = (line: string): void => {
    say(ctx.stdout, line);
  };
  const w = item.workload;
  const replicas =
    w.kind === 'DaemonSet'
      ? ''
      : `, replicas: ${w.replicas ?? (live.spec as { replicas?: number } | undefined)?.replicas ?? 1}`;
  out(
    `--- ${w.kind} ${item.tenant.namespace}/${w.name} (namespace: ${item.tenant.namespace}${replicas}) ---`,
  );
  for (const s of w.secrets) {
    out(`  ${s.source} -> ${s.vaultPath}`);
    for (const [field, env] of Object.entries(s.fields)) out(`    ${field} -> ${env}`);
  }
}

function restartNote(live: LiveWorkload): string | undefined {
  if (isPaused(live)) {
    return '  (Deployment is paused: annotations are written, pods roll only after `kubectl rollout resume`)';
  }
  return updateStrategy(live) === 'rolling'
    ? '  (RollingUpdate: changing the pod template rolls the pods by itself; a restart also stamps cloudtaser.io/restartedAt)'
    : '  (OnDelete: pods keep the old template until deleted; a restart deletes them one by one)';
}

const QUESTIONS = {
  inject: 'Inject CloudTaser protection?',
  restart: 'Trigger rolling restart?',
  remove: 'Remove CloudTaser protection?',
} as const;

class Runner {
  private readonly workloads: Workloads;
  private readonly onDelete: OnDeleteRestart;
  private readonly revisionPods: RevisionPods;
  private prompter: Prompter | undefined;
  private readonly listed = new Map<string, LiveWorkload>();

  constructor(
    private readonly o: RunOptions,
    private readonly ctx: Context,
  ) {
    const kube = loadKubeFor(o.kube, ctx);
    this.workloads = new Workloads(kube);
    this.onDelete = new OnDeleteRestart(kube, this.workloads);
    this.revisionPods = new RevisionPods(kube);
  }

  /** --yes approves at once; interactively the note (if any) is printed before the question. */
  private async decide(question: keyof typeof QUESTIONS, note?: string): Promise<boolean> {
    if (this.o.mode === 'yes') return true;
    this.prompter ??= new Prompter(this.ctx);
    if (note) say(this.ctx.stdout, note);
    return this.prompter.confirm(QUESTIONS[question]);
  }

  /**
   * The live workload. In --yes runs it usually comes from the listing made
   * up front (one paginated list per kind instead of one GET per workload);
   * a stale copy is harmless because the patch carries its resourceVersion
   * and a conflict re-reads. Interactive runs read fresh, right before the
   * human is asked.
   */
  private async read(item: Item): Promise<LiveWorkload | undefined> {
    const key = workloadKey(ref(item));
    const listed = this.listed.get(key);
    if (listed) {
      this.listed.delete(key);
      return listed;
    }
    return this.workloads.get(ref(item));
  }

  /**
   * Lists the selected workloads' kinds once, keeping only the selected
   * objects. An optimisation only: when listing fails (RBAC that allows get
   * but not list, say), every workload is read on its own as before.
   */
  async prefetch(items: Item[]): Promise<void> {
    if (this.o.mode !== 'yes' || items.length < 2) return;
    const wanted = new Set(items.map((i) => workloadKey(ref(i))));
    const kinds = [...new Set(items.map((i) => i.workload.kind))];
    const namespaces = [...new Set(items.map((i) => i.tenant.namespace))];
    // A handful of namespaces: list each; many: one cluster-wide list per kind.
    const scopes: (string | undefined)[] = namespaces.length <= 8 ? namespaces : [undefined];
    try {
      await mapLimit(
        kinds.flatMap((kind) => scopes.map((namespace) => ({ kind, namespace }))),
        4,
        async ({ kind, namespace }) => {
          const keep = (w: LiveWorkload): boolean =>
            wanted.has(
              workloadKey({
                namespace: w.metadata?.namespace ?? '',
                kind,
                name: w.metadata?.name ?? '',
              }),
            );
          for (const w of await this.workloads.list(kind, namespace, keep)) {
            this.listed.set(
              workloadKey({
                namespace: w.metadata?.namespace ?? '',
                kind,
                name: w.metadata?.name ?? '',
              }),
              w,
            );
          }
        },
      );
    } catch (e) {
      if (!(e instanceof ServerError || e instanceof UserError)) throw e;
      this.listed.clear();
    }
  }

  /**
   * Patches with optimistic concurrency. On a conflict the workload is read
   * again and `recheck` decides whether the patch still applies (another
   * writer may have protected it, or changed what it references).
   */
  async patch(
    item: Item,
    live: LiveWorkload,
    build: (live: LiveWorkload) => Promise<JsonPatchOp[]> | JsonPatchOp[],
    recheck: (live: LiveWorkload | undefined) => Promise<Outcome | undefined>,
  ): Promise<{ patched: LiveWorkload } | { outcome: Outcome }> {
    let current = live;
    for (let attempt = 0; ; attempt++) {
      try {
        const patched = await this.workloads.patchJson(ref(item), await build(current), {
          resourceVersion: current.metadata?.resourceVersion,
          dryRun: this.o.dryRun,
        });
        return { patched };
      } catch (e) {
        // 409: the resourceVersion no longer matches. 422 may be a failed
        // `test` op (an entry to remove is not where it was read), which the
        // server checks before the version; that is a conflict too when the
        // object did change, and a real error when it did not.
        if (!(e instanceof KubeApiError) || (e.status !== 409 && e.status !== 422) || attempt >= 4)
          throw e;
        const again = await this.workloads.get(ref(item));
        if (
          e.status === 422 &&
          again?.metadata?.resourceVersion === current.metadata?.resourceVersion
        )
          throw e;
        const outcome = await recheck(again);
        if (outcome) return { outcome };
        if (!again) throw e;
        current = again;
      }
    }
  }

  private readonly secretKeyCache = new Map<string, Promise<string[] | null | undefined>>();

  /** Key names of a Secret, read once per run (the values are never kept). */
  private secretKeys(namespace: string, name: string): Promise<string[] | null | undefined> {
    const key = `${namespace}/${name}`;
    let p = this.secretKeyCache.get(key);
    if (!p) {
      p = this.workloads.secretKeys(namespace, name);
      this.secretKeyCache.set(key, p);
    }
    return p;
  }

  /** The template's references to this workload's migrated Secrets: which go, which stay. */
  async nativeRefs(item: Item, live: LiveWorkload): Promise<NativeRefsFinding> {
    const migrated = migratedSecrets(item.workload);
    const spec = live.spec?.template.spec;
    // A volume goes only when the webhook would fill it from vault in full,
    // and the file-map serves every key its Secret has today.
    const entries = fileMapEntries(item.workload);
    const served = servedVolumes(spec, entries);
    const names = [
      ...new Set([...envFromSecrets(spec, migrated), ...wholeVolumeSecrets(spec, served)]),
    ];
    const keys = new Map(
      await Promise.all(
        names.map(async (n) => [n, await this.secretKeys(item.tenant.namespace, n)] as const),
      ),
    );
    const lookup = (n: string): readonly string[] | null | undefined => keys.get(n);
    const files = servedInFull(spec, served, entries, lookup);
    return findNativeRefs(spec, migrated, lookup, { files });
  }

  /** Deleting OnDelete pods is never implied by --yes alone: it needs --restart-ondelete. */
  private async decideRestart(live: LiveWorkload): Promise<boolean> {
    if (this.o.mode === 'yes' && updateStrategy(live) === 'on-delete') {
      return this.o.restartOnDelete === true;
    }
    return this.decide('restart', restartNote(live));
  }

  /**
   * OnDelete workloads pick up a new template only when their pods are
   * deleted: one at a time (see restart.ts). Returns why it stopped early.
   */
  async restartOnDelete(
    item: Item,
    live: LiveWorkload,
    steps: string[],
  ): Promise<{ message: string; stuck: boolean } | undefined> {
    const r = await this.onDelete.run(live, {
      timeoutMs: this.o.timeoutMs,
      log: (line) => {
        say(this.ctx.stdout, `  ${label(item)}: ${line}`);
      },
      signal: this.ctx.signal,
    });
    steps.push(
      r.stopped
        ? `restart stopped (${r.restarted} of ${r.total} pod(s) restarted)`
        : `restarted (${r.restarted} of ${r.total} pod(s), one at a time)`,
    );
    return r.stopped
      ? { message: `${label(item)}: ${r.stopped}`, stuck: r.stuck === true }
      : undefined;
  }

  /**
   * Follows the rollout until the controller reports it complete (see
   * rolloutProgress), and stops early when it cannot complete: the
   * controller gave up (ProgressDeadlineExceeded), or a pod of the new
   * revision is stuck (crash loop, image, configuration; see pod-problems.ts).
   * A stuck pod ends the wait at once: the kubelet has already retried, and
   * waiting out --timeout would only delay the report.
   */
  async waitFor(item: Item, steps: string[]): Promise<void> {
    const deadline = Date.now() + this.o.timeoutMs;
    let last = '';
    for (;;) {
      // Ctrl-C ends the wait at once: the patch is done, only the watching stops.
      if (this.ctx.signal?.aborted) throw new RolloutTimeout(`${label(item)}: wait interrupted`);
      const live = await this.workloads.get(ref(item));
      if (!live) throw new UserError(`${label(item)} disappeared while waiting for its rollout`);
      const p = rolloutProgress(live);
      if (p.message !== last) {
        say(this.ctx.stdout, `  ${label(item)} rollout: ${p.message}`);
        last = p.message;
      }
      if (p.done) {
        steps.push('rolled out');
        return;
      }
      const pods = p.observed ? await this.revisionPods.of(live) : undefined;
      const stuck = pods && stuckPods(pods);
      if (stuck || p.failed) {
        steps.push('rollout stuck');
        throw new RolloutStuck(
          `${label(item)}: rollout stuck: ${[stuck, p.failed].filter(Boolean).join('; ')}`,
        );
      }
      if (Date.now() > deadline) {
        throw new RolloutTimeout(
          `${label(item)}: rollout not finished after ${this.o.timeoutMs / 1000} s (${p.message})`,
        );
      }
      await pause(1000, this.ctx.signal);
    }
  }

  async protectOne(item: Item, o: ProtectOptions): Promise<Outcome> {
    const notes: string[] = [];
    const outcome = await this.protectInner(item, o, notes);
    return notes.length > 0 ? { ...outcome, notes: [...(outcome.notes ?? []), ...notes] } : outcome;
  }

  private async protectInner(item: Item, o: ProtectOptions, notes: string[]): Promise<Outcome> {
    const steps: string[] = [];
    const wanted = protectAnnotations(
      item.tenant,
      item.workload,
      o.vaultAddress,
      o.allowInsecureVault ?? false,
      o.authPath,
    );
    const keep = o.keepNativeRefs === true;
    const check = async (w: LiveWorkload | undefined): Promise<Outcome | undefined> => {
      if (!w) return { status: 'pending', steps, reason: 'not found in the cluster' };
      if (alreadyApplied(w.spec?.template.metadata?.annotations, wanted)) {
        // Patched by an earlier, interrupted run: record it, never roll
        // again. The same patch removed the native references, so only a
        // template protected without removing them (--keep-native-refs, an
        // older version) goes on to have them removed now.
        if (keep || (await this.nativeRefs(item, w)).remove.length === 0)
          return { status: 'migrated', steps: ['already protected'] };
      }
      const why = mismatch(item, w);
      return why ? { status: 'pending', steps, reason: why } : undefined;
    };
    const live = await this.read(item);
    const early = await check(live);
    if (early || !live) return early ?? { status: 'pending', steps };

    if (this.o.mode === 'interactive') printBlock(item, live, this.ctx);
    const decision: Decision = { inject: await this.decide('inject'), restart: false };
    if (!decision.inject) return { status: 'skipped', steps: [] };
    const paused = isPaused(live);
    if (!paused) decision.restart = await this.decideRestart(live);

    const annotations: Record<string, string> = decision.restart
      ? { ...wanted, [ANNOTATION.restartedAt]: rfc3339(this.ctx.now()) }
      : wanted;
    // Built from the object the patch applies to (re-read after a conflict),
    // so the removals' indices and tests match it.
    let refs: NativeRefsFinding = { remove: [], kept: [] };
    const build = async (cur: LiveWorkload): Promise<JsonPatchOp[]> => {
      refs = keep ? refs : await this.nativeRefs(item, cur);
      const tmpl = cur.spec?.template;
      const record: Record<string, string> =
        refs.remove.length > 0
          ? {
              [ANNOTATION.nativeRefs]: JSON.stringify(
                appendRecord(readRecord(tmpl?.metadata?.annotations), refs.remove),
              ),
            }
          : {};
      return [
        ...removalOps(tmpl?.spec, refs.remove),
        ...annotationOps(tmpl?.metadata, { ...annotations, ...record }),
      ];
    };
    const result = await this.patch(item, live, build, check);
    if ('outcome' in result) return result.outcome;
    const patched = result.patched;
    const removed = refs.remove.map(describeRef).join(', ');
    // After the outcome, so the steps read as before (and as the guide's transcript).
    notes.push(
      ...(removed && !this.o.dryRun ? [`removed native Secret references: ${removed}`] : []),
      ...(refs.kept.length > 0 ? [`kept native Secret references: ${refs.kept.join('; ')}`] : []),
    );
    if (this.o.dryRun) {
      say(
        this.ctx.stdout,
        `  would patch ${label(item)} pod template annotations: ${JSON.stringify(annotations)}`,
      );
      if (removed) say(this.ctx.stdout, `  would remove from ${label(item)}: ${removed}`);
      return { status: item.workload.status, steps: ['dry run'], dryRun: true };
    }
    steps.push('injected');
    if (paused)
      steps.push('not restarted: Deployment is paused (run `kubectl rollout resume` to roll)');
    else if (decision.restart) {
      if (updateStrategy(patched) === 'on-delete') {
        const stopped = await this.restartOnDelete(item, patched, steps);
        if (stopped)
          return {
            status: 'migrated',
            steps,
            incomplete: stopped.message,
            ...(stopped.stuck ? { stuck: true } : {}),
          };
      } else steps.push('restarted');
    } else if (updateStrategy(patched) === 'on-delete') steps.push(NOT_RESTARTED_ONDELETE);
    if (this.o.wait && !paused && (updateStrategy(patched) === 'rolling' || decision.restart)) {
      try {
        await this.waitFor(item, steps);
      } catch (e) {
        // Protected all the same; only the wait ran out (or was interrupted:
        // a request cut short by Ctrl-C lands here too).
        if (e instanceof RolloutTimeout || this.ctx.signal?.aborted) {
          return {
            status: 'migrated',
            steps,
            incomplete: e instanceof Error ? e.message : String(e),
            ...(e instanceof RolloutStuck ? { stuck: true } : {}),
          };
        }
        throw e;
      }
    }
    return { status: 'migrated', steps };
  }

  async unprotectOne(item: Item): Promise<Outcome> {
    const owned = (w: LiveWorkload): string[] => {
      const now = w.spec?.template.metadata?.annotations ?? {};
      return OWNED_ANNOTATIONS.filter((k) => k in now);
    };
    const check = (w: LiveWorkload | undefined): Promise<Outcome | undefined> =>
      Promise.resolve(unprotectCheck(w));
    const unprotectCheck = (w: LiveWorkload | undefined): Outcome | undefined => {
      if (!w) return { status: 'pending', steps: ['not found in the cluster'] };
      if (owned(w).length === 0) return { status: 'pending', steps: ['no cloudtaser annotations'] };
      const a = w.spec?.template.metadata?.annotations;
      if (a?.[ANNOTATION.nativeRefs] !== undefined && !readRecord(a)) {
        // Removing it would lose the only record of what to put back.
        return {
          status: item.workload.status,
          steps: [],
          reason: `${ANNOTATION.nativeRefs} is not a record this version can read; left as it is`,
        };
      }
      return undefined;
    };
    const live = await this.read(item);
    const early = unprotectCheck(live);
    if (early || !live) return early ?? { status: 'pending', steps: [] };
    const present = owned(live);
    if (this.o.mode === 'interactive') printBlock(item, live, this.ctx);
    if (!(await this.decide('remove')))
      return { status: item.workload.status, steps: ['declined'] };
    const restart =
      updateStrategy(live) === 'on-delete' && !isPaused(live)
        ? await this.decideRestart(live)
        : false;
    let restore: Restore = { ops: [], restored: [], skipped: [] };
    const build = (cur: LiveWorkload): JsonPatchOp[] => {
      const tmpl = cur.spec?.template;
      const record = readRecord(tmpl?.metadata?.annotations);
      restore = record ? restoreOps(tmpl?.spec, record) : { ops: [], restored: [], skipped: [] };
      return [
        ...restore.ops,
        ...annotationOps(tmpl?.metadata, Object.fromEntries(owned(cur).map((k) => [k, null]))),
      ];
    };
    const result = await this.patch(item, live, build, check);
    if ('outcome' in result) return result.outcome;
    const patched = result.patched;
    if (this.o.dryRun) {
      say(
        this.ctx.stdout,
        `  would remove from ${label(item)} pod template: ${present.join(', ')}`,
      );
      if (restore.restored.length > 0) {
        say(
          this.ctx.stdout,
          `  would put back in ${label(item)}: ${restore.restored.map(describeRef).join(', ')}`,
        );
      }
      return { status: item.workload.status, steps: ['dry run'], dryRun: true };
    }
    // The record is bookkeeping, reported as what was put back, not counted as an annotation.
    const steps = [
      `removed ${present.filter((k) => k !== ANNOTATION.nativeRefs).length} annotation(s)`,
    ];
    const notes =
      restore.restored.length > 0
        ? [`put back native Secret references: ${restore.restored.map(describeRef).join(', ')}`]
        : [];
    for (const s of restore.skipped) steps.push(`not put back: ${s}`);
    if (restart) {
      const stopped = await this.restartOnDelete(item, patched, steps);
      if (stopped)
        return {
          status: 'pending',
          steps,
          incomplete: stopped.message,
          ...(stopped.stuck ? { stuck: true } : {}),
          notes,
        };
    } else if (updateStrategy(patched) === 'on-delete') steps.push(NOT_RESTARTED_ONDELETE);
    return { status: 'pending', steps, notes };
  }

  close(): void {
    this.prompter?.close();
  }
}

class RolloutTimeout extends Error {}
/** The rollout cannot finish by itself (a stuck pod, or the controller gave up). */
class RolloutStuck extends RolloutTimeout {}

function describe(outcome: Outcome): string {
  const steps = outcome.steps.join(', ');
  if (outcome.reason) {
    return `${steps ? `${steps}; ` : ''}left ${outcome.status}: ${outcome.reason}`;
  }
  return `${steps ? `${steps} ` : ''}-> ${outcome.status}`;
}

interface Counts {
  migrated: number;
  skipped: number;
  pending: number;
  /** Left as they were, with a reason (a check failed). */
  held: number;
  failed: number;
  unfinished: number;
  /** Of the unfinished: rollouts that cannot finish by themselves. */
  stuck: number;
}

async function runAll(
  loaded: LoadedPlan,
  o: RunOptions,
  ctx: Context,
  command: string,
  select: (loaded: LoadedPlan) => Item[],
  one: (runner: Runner, item: Item) => Promise<Outcome>,
  summary: (c: Counts) => string,
): Promise<void> {
  // One run per plan at a time (a dry run writes nothing and needs no lock).
  const lock = o.dryRun
    ? undefined
    : await PlanLock.acquire(loaded.file, o.display, { command, started: ctx.now() });
  try {
    // Under the lock, the plan is read again (a run that finished meanwhile
    // changed statuses) and a killed run's journal is folded in before the
    // workloads are chosen: the journal, not the plan, may hold the latest
    // status, and it is cleared even when nothing is left to do.
    const store = lock
      ? await PlanStore.open(await readPlan(loaded.file, o.display), o.display)
      : undefined;
    try {
      const current = store ? store.loaded() : loaded;
      await o.checkPlan?.(current);
      await runLocked(store, o, ctx, select(current), one, summary);
    } finally {
      await store?.close();
    }
  } finally {
    await lock?.release();
  }
}

async function runLocked(
  store: PlanStore | undefined,
  o: RunOptions,
  ctx: Context,
  items: Item[],
  one: (runner: Runner, item: Item) => Promise<Outcome>,
  summary: (c: Counts) => string,
): Promise<void> {
  if (items.length === 0) {
    say(ctx.stdout, 'Nothing to do: no workload in the plan matches (status and --namespace).');
    return;
  }
  const runner = new Runner(o, ctx);
  await runner.prefetch(items);
  const counts: Counts = {
    migrated: 0,
    skipped: 0,
    pending: 0,
    held: 0,
    failed: 0,
    unfinished: 0,
    stuck: 0,
  };
  try {
    await mapLimit(items, o.mode === 'interactive' ? 1 : o.concurrency, async (item) => {
      if (ctx.signal?.aborted) return;
      let outcome: Outcome;
      try {
        outcome = await one(runner, item);
      } catch (e) {
        if (!(e instanceof ServerError || e instanceof UserError || e instanceof RolloutTimeout))
          throw e;
        outcome = { status: item.workload.status, steps: [], reason: e.message, failed: true };
      }
      if (o.mode === 'interactive') {
        for (const s of outcome.steps) say(ctx.stdout, `  -> ${s}`);
        say(
          ctx.stdout,
          outcome.reason
            ? `  -> left ${outcome.status}: ${outcome.reason}`
            : `  -> ${outcome.status}`,
        );
        for (const n of outcome.notes ?? []) say(ctx.stdout, `  ${n}`);
        say(ctx.stdout);
      } else {
        say(ctx.stdout, `${label(item)}: ${describe(outcome)}`);
        for (const n of outcome.notes ?? []) say(ctx.stdout, `${label(item)}: ${n}`);
      }
      if (outcome.dryRun) return;
      if (outcome.failed) counts.failed++;
      else if (outcome.reason) counts.held++;
      else counts[outcome.status]++;
      if (outcome.incomplete) {
        counts.unfinished++;
        if (outcome.stuck) counts.stuck++;
        say(ctx.stderr, `Warning: ${outcome.incomplete}`);
      }
      await store?.record(ref(item), outcome.status);
    });
  } finally {
    runner.close();
  }
  if (o.dryRun) {
    say(ctx.stdout, 'Dry run: nothing was changed. Re-run without --dry-run to apply.');
    return;
  }
  say(ctx.stdout, summary(counts));
  if (ctx.signal?.aborted) {
    throw new UserError(
      'interrupted; the plan records what was done — re-run the same command to resume',
    );
  }
  if (counts.failed > 0) {
    throw new ServerError(
      `${counts.failed} workload(s) failed (see above); re-run the same command to retry them`,
    );
  }
  if (counts.held > 0) {
    throw new CheckFailed(`${counts.held} workload(s) left as they were (see above)`);
  }
  if (counts.stuck > 0) {
    const late = counts.unfinished - counts.stuck;
    throw new CheckFailed(
      `${counts.stuck} rollout(s) stuck${late > 0 ? `, ${late} did not finish within --timeout` : ''} (see above)`,
    );
  }
  if (counts.unfinished > 0) {
    throw new CheckFailed(`${counts.unfinished} rollout(s) did not finish within --timeout`);
  }
}

export async function runProtect(
  loaded: LoadedPlan,
  o: ProtectOptions,
  ctx: Context,
): Promise<void> {
  await runAll(
    loaded,
    o,
    ctx,
    'cloudtaser target protect',
    (current) => selectItems(current, o.namespace, ['pending']),
    (runner, item) => runner.protectOne(item, o),
    (c) =>
      `Done: ${c.migrated} migrated, ${c.skipped} skipped, ${c.held} left pending, ${c.failed} failed.`,
  );
}

export async function runUnprotect(loaded: LoadedPlan, o: RunOptions, ctx: Context): Promise<void> {
  await runAll(
    loaded,
    o,
    ctx,
    'cloudtaser target unprotect',
    (current) => selectItems(current, o.namespace, ['pending', 'migrated', 'skipped']),
    (runner, item) => runner.unprotectOne(item),
    (c) =>
      `Done: ${c.pending} set back to pending, ${c.migrated + c.skipped} left as they were, ${c.failed} failed.`,
  );
}

/** --interactive / --yes / neither: never wait for input that cannot come. */
export function resolveMode(
  flags: { interactive?: boolean | undefined; yes?: boolean | undefined },
  ctx: Context,
): 'interactive' | 'yes' {
  if (flags.interactive && flags.yes)
    throw new UserError('pass either --interactive or --yes, not both');
  if (flags.yes) return 'yes';
  if (flags.interactive) return 'interactive';
  if (ctx.stdin.isTTY) return 'interactive';
  throw new UserError(
    'no terminal to ask on: pass --yes to approve every workload, or --interactive with answers on stdin',
  );
}
