// `target cleanup`: delete the native Secrets the plan migrated, once nothing
// names them and vault holds every one of their values.
//
// Read (per namespace: every object that may name a Secret; per Secret: the
// Secret itself, the state of its vault paths, and its values compared in
// memory with vault's) → decide (pure, ./decide.ts) → delete, each with a
// precondition on the uid and resourceVersion that were checked, so a Secret
// changed since the check is not deleted.
//
// Re-running is always safe: the cluster is the record of what was done. A
// Secret already deleted (by an earlier, interrupted run or by hand) reads as
// "already gone", and one that reappeared is checked again from scratch.
//
// Values are compared and dropped per Secret: never printed, logged, put in
// an error or written anywhere.
import { say, type Context } from '../core/context.js';
import { mapLimit } from '../core/concurrency.js';
import { CheckFailed, ServerError, UserError } from '../core/errors.js';
import { Prompter } from '../core/prompt.js';
import { loadKubeFor, type KubeOptions, type KubeTarget } from '../kube/config.js';
import { KubeApiError, kubeError, statusOf } from '../kube/errors.js';
import { listAll, restPages } from '../kube/list.js';
import { KubeRest, resourcePath } from '../kube/rest.js';
import type { LoadedPlan } from '../plan/read.js';
import { vaultClient } from '../vault/apply.js';
import { VaultError, type VaultClient, type VaultFlags } from '../vault/client.js';
import { mountOf } from '../vault/provision.js';
import { inspectPath, judge, type PathState } from '../vault/verify.js';
import {
  comparisonKey,
  decide,
  fieldOfKey,
  pathsToCheck,
  plannedSecrets,
  type Comparison,
  type PlannedSecret,
  type SecretFacts,
  type Verdict,
} from './decide.js';
import { resolve } from 'node:path';
import { manifestsFor, scanManifests } from '../sources/sealed-secrets.js';
import { retireWriter, writerId, writersOf } from './writers.js';
import { secretReferrers, type NamespaceObjects, type Referrer } from './references.js';

export type CleanupMode = 'dry-run' | 'interactive' | 'yes';

export interface CleanupOptions {
  mode: CleanupMode;
  namespace?: string | undefined;
  kube: KubeOptions;
  vault: VaultFlags;
  concurrency: number;
  /** A git checkout to search for the manifests of SealedSecrets deleted here. */
  repo?: string | undefined;
}

/** --yes / --interactive / --dry-run: a dry run unless told otherwise. */
export function resolveCleanupMode(flags: {
  yes?: boolean | undefined;
  interactive?: boolean | undefined;
  dryRun?: boolean | undefined;
}): CleanupMode {
  const given = [
    flags.yes && '--yes',
    flags.interactive && '--interactive',
    flags.dryRun && '--dry-run',
  ];
  const set = given.filter((g): g is string => typeof g === 'string');
  if (set.length > 1) throw new UserError(`pass only one of ${set.join(', ')}`);
  if (flags.yes) return 'yes';
  if (flags.interactive) return 'interactive';
  return 'dry-run';
}

/** The JSON of a Secret as the API returns it. */
interface SecretJson {
  type?: string;
  metadata?: {
    uid?: string;
    resourceVersion?: string;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
  data?: Record<string, string> | null;
}

/** What the namespace scan lists: API group/version, plural, and where it goes. */
const SCANNED: { gv: string; plural: string; resource: string; key: keyof NamespaceObjects }[] = [
  { gv: 'v1', plural: 'pods', resource: 'pods', key: 'pods' },
  { gv: 'apps/v1', plural: 'deployments', resource: 'deployments.apps', key: 'deployments' },
  { gv: 'apps/v1', plural: 'statefulsets', resource: 'statefulsets.apps', key: 'statefulSets' },
  { gv: 'apps/v1', plural: 'daemonsets', resource: 'daemonsets.apps', key: 'daemonSets' },
  { gv: 'apps/v1', plural: 'replicasets', resource: 'replicasets.apps', key: 'replicaSets' },
  { gv: 'batch/v1', plural: 'jobs', resource: 'jobs.batch', key: 'jobs' },
  { gv: 'batch/v1', plural: 'cronjobs', resource: 'cronjobs.batch', key: 'cronJobs' },
  {
    gv: 'networking.k8s.io/v1',
    plural: 'ingresses',
    resource: 'ingresses.networking.k8s.io',
    key: 'ingresses',
  },
  { gv: 'v1', plural: 'serviceaccounts', resource: 'serviceaccounts', key: 'serviceAccounts' },
];

class ClusterReader {
  readonly rest: KubeRest;

  constructor(readonly target: KubeTarget) {
    this.rest = new KubeRest(target);
  }

  /** Every object in the namespace that may name a Secret, read in pages. */
  async namespaceObjects(namespace: string): Promise<NamespaceObjects> {
    const out: Record<string, unknown[]> = {};
    await mapLimit(SCANNED, 4, async (s) => {
      const path = resourcePath(s.gv, s.plural, namespace);
      try {
        out[s.key] = await listAll(
          restPages<unknown>(this.rest, path),
          (o) => {
            const item = o as { metadata?: { managedFields?: unknown }; status?: unknown };
            if (item.metadata) delete item.metadata.managedFields;
            delete item.status;
            return item;
          },
          { verb: 'list', resource: s.resource, namespace },
          this.target.server,
        );
      } catch (e) {
        // A kind this server does not serve names nothing; any other failure
        // (a missing permission above all) means the scan is incomplete, and
        // a Secret must never be deleted on an incomplete scan.
        if (e instanceof KubeApiError && e.status === 404) out[s.key] = [];
        else throw e;
      }
    });
    return out as unknown as NamespaceObjects;
  }

  /** The Secret with its values decoded, or undefined when it does not exist. */
  async secret(
    namespace: string,
    name: string,
  ): Promise<{ facts: SecretFacts; data: Map<string, Buffer> } | undefined> {
    let s: SecretJson;
    try {
      s = await this.rest.call<SecretJson>({
        method: 'GET',
        path: resourcePath('v1', 'secrets', namespace, name),
      });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw kubeError(e, { verb: 'get', resource: 'secrets', namespace, name }, this.target.server);
    }
    const data = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(s.data ?? {})) data.set(k, Buffer.from(v, 'base64'));
    return {
      facts: {
        uid: s.metadata?.uid ?? '',
        resourceVersion: s.metadata?.resourceVersion ?? '',
        type: s.type ?? 'Opaque',
        keys: [...data.keys()].sort(),
        owners: (s.metadata?.ownerReferences ?? []).map((o) => ({
          kind: o.kind ?? '',
          name: o.name ?? '',
          controller: o.controller,
        })),
      },
      data,
    };
  }

  /**
   * Deletes the Secret only if it is still the object that was checked
   * (uid and resourceVersion preconditions; the server answers 409
   * otherwise). 404 means an earlier run, or someone else, deleted it.
   */
  async deleteSecret(
    namespace: string,
    name: string,
    facts: SecretFacts,
  ): Promise<'deleted' | 'gone' | 'changed'> {
    try {
      await this.rest.call({
        method: 'DELETE',
        path: resourcePath('v1', 'secrets', namespace, name),
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          preconditions: { uid: facts.uid, resourceVersion: facts.resourceVersion },
        },
      });
      return 'deleted';
    } catch (e) {
      const status = statusOf(e);
      if (status === 404) return 'gone';
      if (status === 409) return 'changed';
      throw kubeError(
        e,
        { verb: 'delete', resource: 'secrets', namespace, name },
        this.target.server,
      );
    }
  }
}

interface DataBody {
  data?: { data?: Record<string, unknown> | null } | null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Compares the Secret's keys with one vault path's latest values, in memory.
 * A field missing from the read (the path changed since it was inspected)
 * counts as different.
 */
async function compareWithVault(
  client: VaultClient,
  vaultPath: string,
  keys: readonly string[],
  data: ReadonlyMap<string, Buffer>,
  out: Map<string, Comparison>,
  fieldOf: (key: string) => string,
): Promise<void> {
  const mount = mountOf(vaultPath);
  const rel = vaultPath.slice(mount.length + '/data/'.length);
  const res = await client.request<DataBody>('GET', `${mount}/data/${rel}`);
  const fields = res.status === 404 ? {} : (res.body?.data?.data ?? {});
  for (const key of keys) {
    const bytes = data.get(key);
    let text: string | undefined;
    try {
      text = bytes === undefined ? undefined : utf8.decode(bytes);
    } catch {
      out.set(comparisonKey(vaultPath, key), 'not-text');
      continue;
    }
    const v = fields[fieldOf(key)];
    out.set(
      comparisonKey(vaultPath, key),
      typeof v === 'string' && v === text ? 'equal' : 'differs',
    );
  }
}

interface Checked {
  planned: PlannedSecret;
  facts: SecretFacts | undefined;
  verdict: Verdict;
}

/** One Secret: read it, inspect and compare its vault paths, decide. Values stay in this call. */
async function checkSecret(
  reader: ClusterReader,
  client: VaultClient,
  planned: PlannedSecret,
  referrers: readonly Referrer[],
  states: Map<string, Promise<PathState>>,
): Promise<Checked> {
  const live = await reader.secret(planned.namespace, planned.name);
  if (!live) return { planned, facts: undefined, verdict: { action: 'gone' } };
  const vault = new Map<string, PathState>();
  const compared = new Map<string, Comparison>();
  try {
    for (const [path, keys] of pathsToCheck(planned, live.facts.keys)) {
      // Each path's state is fetched once per run, whichever Secrets share it.
      let state = states.get(path);
      if (!state) {
        state = inspectPath(client, path);
        states.set(path, state);
      }
      const s = await state;
      vault.set(path, s);
      if (
        !judge(
          keys.map((k) => fieldOfKey(planned, k)),
          s,
        ).ready
      )
        continue;
      try {
        await compareWithVault(client, path, keys, live.data, compared, (k) =>
          fieldOfKey(planned, k),
        );
      } catch (e) {
        if (!(e instanceof VaultError) || e.status === undefined) throw e;
        vault.set(path, { kind: 'error', message: e.message, status: e.status });
      }
    }
  } finally {
    for (const b of live.data.values()) b.fill(0);
    live.data.clear();
  }
  return {
    planned,
    facts: live.facts,
    verdict: decide(planned, live.facts, referrers, vault, compared),
  };
}

const label = (p: PlannedSecret): string => `Secret ${p.namespace}/${p.name}`;

/**
 * The SOPS manifests that deploy a planned Secret: the pipeline applies them
 * again unless they leave git. Files are relative to the directory
 * `discover --from sops --path` scanned; cloudtaser does not edit the repo.
 */
function sopsLines(p: PlannedSecret, ctx: Context): void {
  for (const d of p.sops ?? []) {
    say(
      ctx.stdout,
      `  remove SOPS manifest ${d.file} document #${d.index} (Secret ${p.namespace}/${p.name}) from git, or it is applied again`,
    );
  }
}

interface Counts {
  deleted: number;
  wouldDelete: number;
  refused: number;
  gone: number;
  declined: number;
  failed: number;
}

export async function runCleanup(
  loaded: LoadedPlan,
  o: CleanupOptions,
  ctx: Context,
): Promise<void> {
  const planned = plannedSecrets(loaded.plan, o.namespace);
  if (planned.length === 0) {
    say(
      ctx.stdout,
      `Nothing to do: the plan maps no native Secret${o.namespace ? ` in namespace ${o.namespace}` : ''}.`,
    );
    return;
  }
  const manifests =
    o.repo !== undefined && planned.some((p) => p.sealed)
      ? await scanManifests(resolve(ctx.cwd, o.repo), o.repo)
      : undefined;
  const reader = new ClusterReader(loadKubeFor(o.kube, ctx));
  const client = vaultClient(o.vault, ctx, '--openbao-addr');
  let prompter: Prompter | undefined;
  try {
    say(
      ctx.stdout,
      `Cleaning up the native Secrets of plan "${loaded.plan.metadata.name}" (context ${reader.target.context}, vault ${client.address})`,
    );
    say(
      ctx.stdout,
      'No backup to vault is needed: a Secret is deleted only when vault already holds every one of its keys with the same value.',
    );
    if (o.mode === 'dry-run') {
      say(ctx.stdout, '(dry run: nothing is deleted; --yes deletes, --interactive asks for each)');
    }

    // Read: every namespace's referrers, then each Secret against them and vault.
    const namespaces = [...new Set(planned.map((p) => p.namespace))];
    const referrers = new Map<string, Map<string, Referrer[]>>();
    await mapLimit(namespaces, Math.min(o.concurrency, 4), async (ns) => {
      referrers.set(ns, secretReferrers(ns, await reader.namespaceObjects(ns)));
    });
    const states = new Map<string, Promise<PathState>>();
    const checked = await mapLimit(planned, o.concurrency, (p) =>
      checkSecret(reader, client, p, referrers.get(p.namespace)?.get(p.name) ?? [], states),
    );

    // Decide and delete, one Secret at a time in plan order, so the
    // transcript reads the same however the checks were scheduled.
    const counts: Counts = {
      deleted: 0,
      wouldDelete: 0,
      refused: 0,
      gone: 0,
      declined: 0,
      failed: 0,
    };
    let errors = 0;
    for (const c of checked) {
      const v = c.verdict;
      if (v.action === 'gone') {
        counts.gone++;
        say(ctx.stdout, `${label(c.planned)}: already gone`);
        sopsLines(c.planned, ctx);
        continue;
      }
      if (v.action === 'refuse') {
        counts.refused++;
        if (v.error) errors++;
        say(ctx.stdout, `${label(c.planned)}: refused -- ${v.reasons.join('; ')}`);
        continue;
      }
      const sealedId = `SealedSecret ${c.planned.namespace}/${c.planned.name}`;
      const sealedLine = (): void => {
        if (!c.planned.sealed) return;
        const files = manifests ? manifestsFor(manifests, c.planned.namespace, c.planned.name) : [];
        const where =
          files.length > 0
            ? files.join(', ')
            : manifests
              ? `not found under ${o.repo ?? ''}`
              : 'pass --repo DIR to find its file';
        say(ctx.stdout, `  remove ${sealedId} from git, or it is applied again: ${where}`);
      };
      const gitLine = (): void => {
        sealedLine();
        sopsLines(c.planned, ctx);
      };
      const writers = writersOf(c.planned);
      const first = writers.map(writerId);
      // The order matters: deleted first, the Secret would be written again.
      const order = first.length > 0 ? `${first.join(', ')} first, then the Secret; ` : '';
      if (o.mode === 'dry-run') {
        counts.wouldDelete++;
        say(ctx.stdout, `${label(c.planned)}: would delete -- ${order}${v.summary}`);
        gitLine();
        continue;
      }
      if (ctx.signal?.aborted) break;
      if (o.mode === 'interactive') {
        say(ctx.stdout, `${label(c.planned)}: can be deleted -- ${order}${v.summary}`);
        prompter ??= new Prompter(ctx);
        const what = [...first, label(c.planned)].join(', then ');
        if (!(await prompter.confirm(`Delete ${what}?`))) {
          counts.declined++;
          say(ctx.stdout, `  -> kept`);
          continue;
        }
        // A person may answer minutes after the scan: whatever started
        // naming the Secret meanwhile (a new pod, a CronJob) is looked for
        // again before it goes. The Secret itself is guarded by the
        // delete's preconditions.
        const now = secretReferrers(
          c.planned.namespace,
          await reader.namespaceObjects(c.planned.namespace),
        ).get(c.planned.name);
        if (now && now.length > 0) {
          counts.refused++;
          say(
            ctx.stdout,
            `  -> not deleted -- ${now.map((r) => `${r.kind} ${r.namespace}/${r.name}`).join(', ')} started referencing it since the scan`,
          );
          continue;
        }
      }
      let facts = c.facts as SecretFacts;
      let result: 'deleted' | 'gone' | 'changed';
      try {
        let blocked: string | undefined;
        for (const w of writers) {
          const r = await retireWriter(
            reader.rest,
            reader.target.server,
            w,
            c.planned.name,
            ctx.signal,
          );
          if (r.outcome === 'blocked') {
            blocked = r.reason;
            break;
          }
          if (r.outcome === 'interrupted') break;
          say(
            ctx.stdout,
            `${writerId(w)}: ${r.outcome === 'deleted' ? `deleted first, orphaning ${label(c.planned)}` : 'already gone'}`,
          );
        }
        if (ctx.signal?.aborted) {
          say(ctx.stdout, `${label(c.planned)}: not deleted -- interrupted`);
          break;
        }
        if (blocked !== undefined) {
          counts.refused++;
          say(ctx.stdout, `${label(c.planned)}: not deleted -- ${blocked}`);
          continue;
        }
        if (writers.length > 0) {
          // Orphaning changed the Secret (the garbage collector dropped its
          // ownerReference) and its writer may have synced it just before it
          // went: it is checked again, and deleted with that check's
          // resourceVersion like any other.
          const again = await checkSecret(
            reader,
            client,
            c.planned,
            referrers.get(c.planned.namespace)?.get(c.planned.name) ?? [],
            new Map(),
          );
          if (again.verdict.action !== 'delete') {
            if (again.verdict.action === 'gone') counts.gone++;
            else {
              counts.refused++;
              // A vault or API error on the second check: exit 3, re-run to retry.
              if (again.verdict.error) errors++;
            }
            say(
              ctx.stdout,
              again.verdict.action === 'gone'
                ? `${label(c.planned)}: already gone`
                : `${label(c.planned)}: refused on the second check -- ${again.verdict.reasons.join('; ')}`,
            );
            gitLine();
            continue;
          }
          facts = again.facts as SecretFacts;
        }
        result = await reader.deleteSecret(c.planned.namespace, c.planned.name, facts);
      } catch (e) {
        if (!(e instanceof ServerError)) throw e;
        // A request cancelled by Ctrl-C fails like a server error; it is not one.
        if (ctx.signal?.aborted) {
          say(ctx.stdout, `${label(c.planned)}: not deleted -- interrupted`);
          break;
        }
        counts.failed++;
        say(ctx.stdout, `${label(c.planned)}: FAILED -- ${e.message}`);
        continue;
      }
      const prefix = o.mode === 'interactive' ? '  ->' : `${label(c.planned)}:`;
      if (result === 'deleted') {
        counts.deleted++;
        say(ctx.stdout, `${prefix} deleted -- ${v.summary}`);
        gitLine();
      } else if (result === 'gone') {
        counts.gone++;
        say(ctx.stdout, `${prefix} already gone`);
        gitLine();
      } else {
        counts.refused++;
        say(
          ctx.stdout,
          `${prefix} not deleted -- changed since it was checked (its resourceVersion moved on); re-run to check it again`,
        );
      }
    }

    if (o.mode === 'dry-run') {
      say(
        ctx.stdout,
        `Dry run: ${counts.wouldDelete} would be deleted, ${counts.refused} refused, ${counts.gone} already gone. Re-run with --yes to delete.`,
      );
    } else {
      say(
        ctx.stdout,
        `Done: ${counts.deleted} deleted, ${counts.refused} refused, ${counts.gone} already gone${o.mode === 'interactive' ? `, ${counts.declined} kept` : ''}, ${counts.failed} failed.`,
      );
    }
    if (ctx.signal?.aborted) {
      throw new UserError(
        'interrupted; re-run the same command: deleted Secrets read as already gone',
      );
    }
    if (counts.failed > 0 || errors > 0) {
      throw new ServerError(
        `${counts.failed + errors} Secret(s) could not be checked or deleted (see above); re-run the same command to retry`,
      );
    }
    if (counts.refused > 0) {
      throw new CheckFailed(
        `${counts.refused} Secret(s) refused (see above); they were not deleted`,
      );
    }
  } finally {
    prompter?.close();
    client.close();
  }
}
