// A cache of validated plans, so a command run again on an unchanged plan
// skips parsing and schema validation. At 2,000 workloads those cost about a
// quarter of a second, a quarter of `apply-plan`'s whole re-run (profiled).
//
// Safe to keep because:
// - it holds what the plan file holds and nothing else (a plan never carries
//   secret values: names, paths, field and variable names);
// - it lives outside the work tree (the user's cache directory), in a
//   directory only the user can write, in files only the user can read, and
//   is not used at all when the directory or an entry is owned by someone
//   else or writable by others;
// - an entry is found by the hash of the exact file content together with a
//   fingerprint of the code that decides what a plan means (the reader, the
//   schema, the versions of the parsers and the validator): any edit to the
//   plan, and any change to that code, misses and validates afresh;
// - anything unexpected (missing, unreadable, truncated, not JSON, another
//   key or format inside) is a miss, never an error: the plan is then read
//   and validated as if there were no cache, and the entry is rewritten.
import { createHash, randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { MigrationPlan } from './schema.js';

/** Bump when the entry layout changes. */
const FORMAT = 1;
/** Entries kept; the oldest beyond this are removed after each store. */
export const MAX_ENTRIES = 16;

export interface PlanCache {
  /** Directory holding the entries (created on first store). */
  dir: string;
  /** Identifies the code that validated an entry; part of its key. */
  fingerprint: string;
  /** Hit/miss lines for --debug (never plan content). */
  debug?: ((line: string) => void) | undefined;
}

interface Entry {
  format: number;
  key: string;
  plan: MigrationPlan;
}

/**
 * Where validated plans are cached: `$CLOUDTASER_CACHE_DIR/plans`, else
 * `$XDG_CACHE_HOME/cloudtaser/plans`, else `~/.cache/cloudtaser/plans`.
 * Undefined (no caching) when `CLOUDTASER_PLAN_CACHE` is `off`, `0` or `false`.
 */
export function planCacheDir(env: NodeJS.ProcessEnv, home: string = homedir()): string | undefined {
  if (/^(off|0|false|no)$/i.test(env.CLOUDTASER_PLAN_CACHE?.trim() ?? '')) return undefined;
  const root =
    env.CLOUDTASER_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(home, '.cache'), 'cloudtaser');
  return join(root, 'plans');
}

let codeFingerprint: string | undefined;

/**
 * A hash of everything that decides whether a text is a valid plan and what
 * it means: this reader's and the schema's own code (as compiled, so a
 * rebuild after any edit counts) and the versions of js-yaml, yaml and zod.
 */
export function readerFingerprint(): string {
  if (codeFingerprint) return codeFingerprint;
  const h = createHash('sha256').update(`format ${FORMAT}\n`);
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? '.ts' : '.js';
  for (const name of ['read', 'schema', 'cache']) {
    h.update(readFileSync(new URL(`./${name}${ext}`, here)));
  }
  const require = createRequire(here);
  for (const pkg of ['js-yaml', 'yaml', 'zod']) {
    let version = 'unknown';
    try {
      version = String((require(`${pkg}/package.json`) as { version?: unknown }).version);
    } catch {
      // A package that hides its package.json: its code is still pinned by the lockfile.
    }
    h.update(`${pkg}@${version}\n`);
  }
  codeFingerprint = h.digest('hex');
  return codeFingerprint;
}

/** The cache for a command's environment, or undefined when caching is off. */
export function planCache(
  env: NodeJS.ProcessEnv,
  debug?: (line: string) => void,
): PlanCache | undefined {
  const dir = planCacheDir(env);
  if (!dir) return undefined;
  try {
    return { dir, fingerprint: readerFingerprint(), debug };
  } catch {
    // The reader's own files cannot be read (an unusual install): no cache.
    return undefined;
  }
}

function isEntry(v: unknown): v is Entry {
  if (typeof v !== 'object' || v === null) return false;
  const plan = (v as { plan?: unknown }).plan;
  return typeof plan === 'object' && plan !== null && !Array.isArray(plan);
}

function keyOf(cache: PlanCache, text: string): string {
  return createHash('sha256').update(cache.fingerprint).update('\n').update(text).digest('hex');
}

const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;

/** Owned by this user and not writable by group or others (POSIX only). */
function private_(s: { uid: number; mode: number }): boolean {
  return uid === undefined || (s.uid === uid && (s.mode & 0o022) === 0);
}

/** The validated plan stored for exactly this text, or undefined. */
export async function cachedPlan(
  cache: PlanCache,
  text: string,
): Promise<MigrationPlan | undefined> {
  const key = keyOf(cache, text);
  let raw: string;
  try {
    const d = await lstat(cache.dir);
    if (!d.isDirectory() || !private_(d)) {
      cache.debug?.(`plan cache: not used (${cache.dir} is not a private directory)`);
      return undefined;
    }
    const fh = await open(
      join(cache.dir, `${key}.json`),
      constants.O_RDONLY | constants.O_NOFOLLOW,
    );
    try {
      const s = await fh.stat();
      if (!s.isFile() || !private_(s)) return undefined;
      raw = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    cache.debug?.('plan cache: miss');
    return undefined;
  }
  try {
    const entry = JSON.parse(raw) as unknown;
    if (isEntry(entry) && entry.format === FORMAT && entry.key === key) {
      cache.debug?.('plan cache: hit');
      return entry.plan;
    }
  } catch {
    // Truncated or not JSON: a miss; the store below replaces it.
  }
  cache.debug?.('plan cache: unusable entry, ignored');
  return undefined;
}

/**
 * Stores a plan that has just been validated from `text`. Never throws: a
 * cache that cannot be written only costs the next run the validation.
 */
export async function storePlan(
  cache: PlanCache,
  text: string,
  plan: MigrationPlan,
): Promise<void> {
  try {
    const json = JSON.stringify({ format: FORMAT, key: keyOf(cache, text), plan });
    // Only a plan JSON carries exactly (no undefined members, NaN or -0 that
    // a future schema might let through) is worth keeping.
    if (!isDeepStrictEqual((JSON.parse(json) as Entry).plan, plan)) return;
    await mkdir(cache.dir, { recursive: true, mode: 0o700 });
    const d = await lstat(cache.dir);
    if (!d.isDirectory() || !private_(d)) return;
    const key = keyOf(cache, text);
    const tmp = join(cache.dir, `${key}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(json);
    } finally {
      await fh.close();
    }
    await rename(tmp, join(cache.dir, `${key}.json`));
    await prune(cache.dir);
  } catch {
    cache.debug?.('plan cache: could not store the validated plan');
  }
}

/** Keeps the newest MAX_ENTRIES files (entries and leftovers of interrupted stores). */
async function prune(dir: string): Promise<void> {
  const names = await readdir(dir);
  if (names.length <= MAX_ENTRIES) return;
  const aged = await Promise.all(
    names.map(async (name) => {
      const s = await stat(join(dir, name)).catch(() => undefined);
      return { name, mtime: s?.mtimeMs ?? 0 };
    }),
  );
  aged.sort((a, b) => b.mtime - a.mtime);
  await Promise.all(
    aged.slice(MAX_ENTRIES).map(({ name }) => rm(join(dir, name), { force: true })),
  );
}
