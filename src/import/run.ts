// `target import`: read (plan, vault's current state without values, the
// source Secrets the writes need) → plan each path (pure, ./plan.ts) → write
// with KV v2 check-and-set → print the verify-plan summary.
//
// Values live only in memory between the read and the write: they are never
// printed, logged (the vault client's debug lines carry method, path and
// status only), put in an error, written to a file or into the plan.
import { say, type Context } from '../core/context.js';
import { mapLimit } from '../core/concurrency.js';
import { CheckFailed, ServerError, UserError } from '../core/errors.js';
import type { LoadedPlan } from '../plan/read.js';
import { vaultClient } from '../vault/apply.js';
import { VaultError, type VaultClient, type VaultFlags } from '../vault/client.js';
import { mountOf } from '../vault/provision.js';
import { printVerifyReport, verifyPlan } from '../vault/verify.js';
import {
  needsSource,
  neededSecrets,
  planPath,
  wantedPaths,
  type ImportFlags,
  type PathPlan,
  type SourceSecret,
  type VaultPathState,
  type WantedPath,
} from './plan.js';
import { checkSource, openSource, type SourceOptions } from './sources/index.js';

export { checkSource };

export interface ImportOptions extends ImportFlags {
  from: string;
  dryRun: boolean;
  concurrency: number;
  source: SourceOptions;
  vault: VaultFlags;
}

interface KvMetadata {
  version?: number;
  deletion_time?: string;
  destroyed?: boolean;
}

interface SubkeysBody {
  data?: { subkeys?: Record<string, unknown> | null; metadata?: KvMetadata | null } | null;
  errors?: string[];
}

interface DataBody {
  data?: { data?: Record<string, unknown> | null } | null;
}

function kvPaths(vaultPath: string): { mount: string; rel: string } {
  const mount = mountOf(vaultPath);
  return { mount, rel: vaultPath.slice(mount.length + '/data/'.length) };
}

/**
 * Field names and version of one KV v2 path from the `subkeys` endpoint:
 * deciding create/keep/merge never needs a value.
 */
async function vaultState(client: VaultClient, vaultPath: string): Promise<VaultPathState> {
  const { mount, rel } = kvPaths(vaultPath);
  const res = await client.request<SubkeysBody>('GET', `${mount}/subkeys/${rel}?depth=1`);
  if (res.status === 404 && (res.body?.errors ?? []).some((e) => /unsupported path/i.test(e))) {
    throw new UserError(
      `${mount} is not a KV v2 mount on this server (or the server has no KV v2 subkeys endpoint)`,
      'run cloudtaser source apply-plan first; it mounts the plan’s KV v2 engine',
    );
  }
  const meta = res.body?.data?.metadata ?? undefined;
  const version = meta?.version ?? 0;
  if (meta?.destroyed) return { kind: 'gone', version, how: 'destroyed' };
  if (meta?.deletion_time) return { kind: 'gone', version, how: 'deleted' };
  if (res.status === 404) return { kind: 'missing' };
  return { kind: 'found', version, keys: Object.keys(res.body?.data?.subkeys ?? {}) };
}

/** The failure of one path's write, or the run's when the server cannot be reached. */
function writeFailure(e: unknown): string {
  if (e instanceof UserError) return e.message;
  if (e instanceof VaultError && e.status !== undefined) {
    if (e.status === 400 && /check-and-set/i.test(e.message)) {
      return 'changed in vault while importing (check-and-set refused the write); run the import again';
    }
    if (e.status === 404) {
      return `${e.message}; is the KV v2 mount there? run cloudtaser source apply-plan first`;
    }
    return e.message;
  }
  throw e;
}

/** Writes one planned path with check-and-set. */
async function applyPath(client: VaultClient, p: PathPlan): Promise<void> {
  const { mount, rel } = kvPaths(p.vaultPath);
  const data: Record<string, string> = {};
  if (p.keepExisting) {
    // Merging writes the union, so the current values are read, at exactly
    // the version the check-and-set names, and kept in memory only.
    const cur = await client.request<DataBody>('GET', `${mount}/data/${rel}?version=${p.cas}`);
    for (const [k, v] of Object.entries(cur.body?.data?.data ?? {})) {
      if (typeof v === 'string') data[k] = v;
      else throw new UserError(`${p.vaultPath} field ${k} is not a string; merge it by hand`);
    }
  }
  for (const [k, v] of p.data ?? []) data[k] = v;
  try {
    await client.write(`${mount}/data/${rel}`, { options: { cas: p.cas }, data });
  } catch (e) {
    if (
      e instanceof VaultError &&
      e.status === 400 &&
      /check-and-set/i.test(e.message) &&
      (await ownWrite(client, mount, rel, p.cas, data))
    ) {
      return;
    }
    throw e;
  }
}

/**
 * A check-and-set refusal after a write whose answer was lost (the active
 * node died after committing it, and the retry met the new version): the
 * version right after `cas` holding exactly the values this run wrote is
 * that write, not someone else's. Compared in memory, never printed.
 */
async function ownWrite(
  client: VaultClient,
  mount: string,
  rel: string,
  cas: number,
  data: Record<string, string>,
): Promise<boolean> {
  const res = await client.request<DataBody & { data?: { metadata?: KvMetadata | null } | null }>(
    'GET',
    `${mount}/data/${rel}?version=${cas + 1}`,
  );
  const meta = res.body?.data?.metadata;
  if (res.status !== 200 || meta?.version !== cas + 1 || meta.deletion_time || meta.destroyed) {
    return false;
  }
  const stored = res.body?.data?.data ?? {};
  const keys = Object.keys(stored);
  return (
    keys.length === Object.keys(data).length &&
    keys.every((k) => Object.prototype.hasOwnProperty.call(data, k) && stored[k] === data[k])
  );
}

const VERB: Record<PathPlan['action'], [done: string, dry: string]> = {
  create: ['created', 'would create'],
  overwrite: ['overwrote', 'would overwrite'],
  merge: ['merged', 'would merge'],
  keep: ['kept', 'would keep'],
  'skip-vault-agent': ['skipped', 'would skip'],
  fail: ['FAILED', 'cannot fill'],
};

function line(p: PathPlan, dryRun: boolean): string {
  const verb = VERB[p.action][dryRun ? 1 : 0];
  const fields = p.fields.length > 0 ? ` [${p.fields.join(', ')}]` : '';
  return `  ${verb} ${p.vaultPath}${fields} -- ${p.reason}`;
}

/** A one-line counter on stderr, only when a person is watching. */
function progress(
  ctx: Context,
  total: number,
  verb: string,
): { tick: () => void; done: () => void } {
  const tty = (ctx.stderr as { isTTY?: boolean }).isTTY === true;
  let n = 0;
  let last = 0;
  return {
    tick: () => {
      n++;
      if (!tty || (Date.now() - last < 100 && n < total)) return;
      last = Date.now();
      ctx.stderr.write(`\r${verb} ${n}/${total}`);
    },
    done: () => {
      if (tty) ctx.stderr.write('\r\x1b[K');
    },
  };
}

export async function runImport(
  loaded: LoadedPlan,
  display: string,
  o: ImportOptions,
  ctx: Context,
): Promise<void> {
  const from = checkSource(o.from, o.source);
  const client = vaultClient(o.vault, ctx, '--openbao-addr');
  const source = await openSource(from, o.source, ctx).catch((e: unknown) => {
    client.close();
    throw e;
  });
  try {
    const wanted = source.wanted ? source.wanted(loaded.plan) : wantedPaths(loaded.plan);
    const flags: ImportFlags = { overwrite: o.overwrite, merge: o.merge };

    // Read: vault's state first, so paths already complete need no Secret.
    const states = await mapLimit(wanted, o.concurrency, (w) => vaultState(client, w.vaultPath));
    const needing: WantedPath[] = wanted.filter((w, i) =>
      needsSource(w, states[i] as VaultPathState, flags),
    );
    const origins = [...neededSecrets(needing, source.nameOf)];
    const secrets = new Map<string, SourceSecret>();
    const reading = progress(ctx, origins.length, 'reading');
    try {
      if (source.readAll) {
        for (const [name, secret] of await source.readAll(origins)) secrets.set(name, secret);
      } else {
        await mapLimit(origins, o.concurrency, async ([name, origin]) => {
          // Interrupted: stop reading; the paths left unread are reported as such.
          if (ctx.signal?.aborted) return;
          secrets.set(name, await source.read(name, origin));
          reading.tick();
        });
      }
    } finally {
      reading.done();
    }

    // Plan (pure).
    const plans = wanted.map((w, i) =>
      planPath(w, secrets, states[i] as VaultPathState, flags, source.nameOf),
    );
    secrets.clear();

    say(
      ctx.stdout,
      `Importing plan "${loaded.plan.metadata.name}" from ${source.description} into ${client.address}`,
    );
    if (o.dryRun) say(ctx.stdout, '(dry-run mode -- no changes will be made)');

    // Apply.
    const writes = plans.filter((p) => p.data !== undefined);
    if (!o.dryRun) {
      const bar = progress(ctx, writes.length, 'importing');
      try {
        await mapLimit(writes, o.concurrency, async (p) => {
          try {
            // Interrupted: stop starting writes; each unstarted path is reported.
            if (ctx.signal?.aborted) {
              p.reason = 'not written: interrupted';
              p.action = 'fail';
              return;
            }
            await applyPath(client, p);
          } catch (e) {
            p.reason = writeFailure(e);
            p.action = 'fail';
          } finally {
            p.data = undefined;
            bar.tick();
          }
        });
      } finally {
        bar.done();
      }
    }
    for (const p of plans) p.data = undefined;

    for (const p of plans) say(ctx.stdout, line(p, o.dryRun));
    const count = (a: PathPlan['action']): number => plans.filter((p) => p.action === a).length;
    const failed = count('fail');
    const prefix = o.dryRun ? 'Would import' : 'Import';
    say(
      ctx.stdout,
      `${prefix}: ${count('create')} created, ${count('overwrite')} overwritten, ${count('merge')} merged, ${count('keep')} kept, ${count('skip-vault-agent')} skipped, ${failed} failed (${plans.length} path(s)).`,
    );
    if (o.dryRun) {
      if (failed > 0) {
        throw new CheckFailed(`${failed} of ${plans.length} path(s) could not be filled`);
      }
      say(ctx.stdout, 'Re-run without --dry-run to execute.');
      return;
    }

    say(ctx.stdout);
    const report = await verifyPlan(loaded, display, client, o.concurrency);
    printVerifyReport(report, ctx);
    if (failed > 0) {
      throw new CheckFailed(
        `${failed} of ${plans.length} path(s) could not be filled (see the FAILED lines above)`,
      );
    }
    if (report.errors > 0) {
      throw new ServerError(`${report.errors} of ${report.total} secret(s) could not be checked`);
    }
    if (report.needAttention > 0) {
      throw new CheckFailed(`${report.needAttention} of ${report.total} secret(s) not ready`);
    }
  } finally {
    source.close();
    client.close();
  }
}
