// Status persistence for long runs. Each status change is appended to a
// journal beside the plan and fsynced (durable at once, cost independent of
// plan size); the plan itself is rewritten atomically at most about once a
// second and at the end, keeping the human's text. A crash at any point
// leaves a plan that parses plus a journal that the next run replays.
//
// One run at a time: a run holds `<plan>.lock` (see PlanLock) from before it
// reads the journal until after it removes it, so a second run can neither
// replay and delete a journal the first is still appending to, nor write the
// plan under it.
import { hostname } from 'node:os';
import { open, readFile, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { UserError } from '../core/errors.js';
import { parsePlan, type LoadedPlan } from '../plan/read.js';
import type { WorkloadStatus } from '../plan/model.js';
import { fileIdentity, writeFileAtomic } from '../core/files.js';
import { PlanEditor, workloadKey, type WorkloadRef } from '../plan/write.js';

interface JournalEntry extends WorkloadRef {
  status: WorkloadStatus;
}

function isEntry(v: unknown): v is JournalEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    typeof e.namespace === 'string' &&
    typeof e.kind === 'string' &&
    typeof e.name === 'string' &&
    (e.status === 'pending' || e.status === 'migrated' || e.status === 'skipped')
  );
}

export function journalPath(planFile: string): string {
  return `${planFile}.journal`;
}

function errno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code ?? (e instanceof Error ? e.message : String(e));
}

/**
 * Reads journal entries, or undefined when there is no journal; a torn last
 * line (crash mid-append) is ignored. Any other read failure stops the run:
 * treating an unreadable journal as empty would delete the only record of
 * what the last run did.
 */
async function readJournal(file: string, display: string): Promise<JournalEntry[] | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(
      `cannot read ${display}.journal (${errno(e)}); it holds statuses a previous run recorded`,
      `fix or move ${display}.journal aside, then re-run`,
    );
  }
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as unknown;
      if (isEntry(v)) out.push(v);
    } catch {
      // torn write
    }
  }
  return out;
}

export class PlanStore {
  private editor: PlanEditor;
  /** The text last written to (or read from) disk: detects edits made during a run. */
  private onDisk: string;
  private onDiskIdentity: string | undefined;
  private journal: FileHandle | undefined;
  /** Records in the journal but not yet in the plan file. */
  private unwritten = 0;
  private statuses = new Map<string, JournalEntry>();
  private lastCompaction = Date.now();
  private compactionCost = 0;
  private waiting: {
    entry: JournalEntry;
    resolve: () => void;
    reject: (e: unknown) => void;
  }[] = [];
  private draining: Promise<void> | undefined;
  /** The journal gets the plan's permissions: a private plan keeps a private journal. */
  private journalMode = 0o644;

  private constructor(
    private readonly file: string,
    private readonly display: string,
    loaded: LoadedPlan,
    private readonly compactEveryMs: number,
  ) {
    this.editor = new PlanEditor(loaded);
    this.onDisk = loaded.text;
  }

  /**
   * Opens a plan for status updates, first folding in any journal a previous
   * (interrupted) run left behind.
   */
  static async open(
    loaded: LoadedPlan,
    display: string,
    opts: { compactEveryMs?: number } = {},
  ): Promise<PlanStore> {
    const store = new PlanStore(loaded.file, display, loaded, opts.compactEveryMs ?? 1000);
    store.journalMode = await fileMode(loaded.file);
    const leftover = await readJournal(journalPath(loaded.file), display);
    // Only a journal that was read is removed, and only once its records are in the plan.
    if (leftover !== undefined) {
      if (leftover.length > 0) {
        for (const e of leftover) store.apply(e);
        await store.writePlan();
      }
      await rm(journalPath(loaded.file), { force: true });
    }
    return store;
  }

  private apply(e: JournalEntry): void {
    this.editor.setStatus(e, e.status);
    this.statuses.set(workloadKey(e), e);
  }

  /** The plan as it stands now, statuses included. */
  loaded(): LoadedPlan {
    return parsePlan(this.editor.toString(), this.display);
  }

  /**
   * Records one workload's status durably. Records that arrive while the
   * journal is being synced are written and synced together with the next
   * batch (group commit): one fsync per batch, not one per workload, while
   * every caller still returns only once its record is on disk.
   */
  record(ref: WorkloadRef, status: WorkloadStatus): Promise<void> {
    const entry: JournalEntry = {
      namespace: ref.namespace,
      kind: ref.kind,
      name: ref.name,
      status,
    };
    return new Promise((resolve, reject) => {
      this.waiting.push({ entry, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      // A record that arrived after the last batch but before this ran.
      if (this.waiting.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0);
      try {
        this.journal ??= await open(journalPath(this.file), 'a', this.journalMode);
        await this.journal.appendFile(batch.map((w) => `${JSON.stringify(w.entry)}\n`).join(''));
        await this.journal.datasync();
      } catch (e) {
        // Not on disk, so not in the plan either: a later compaction must
        // not write a status whose record failed.
        const err = new UserError(
          `cannot write ${this.display}.journal (${errno(e)}); the statuses of the workloads in hand are not saved`,
          're-run the same command once the file can be written: workloads already patched are recognised',
        );
        for (const w of batch) w.reject(err);
        continue;
      }
      // Applied only now that the records are durable.
      for (const w of batch) this.apply(w.entry);
      this.unwritten += batch.length;
      // Durable now: the workers go on while the plan is rewritten.
      for (const w of batch) w.resolve();
      // Compact at most about once a second, and never spend more than a
      // tenth of the time compacting, however large the plan. A failure here
      // loses nothing (the journal holds every record); close() retries it.
      const since = Date.now() - this.lastCompaction;
      if (since >= Math.max(this.compactEveryMs, 10 * this.compactionCost)) {
        await this.compact().catch(() => {
          this.lastCompaction = Date.now();
        });
      }
    }
  }

  /** Rewrites the plan with every status so far, then empties the journal. */
  private async compact(): Promise<void> {
    if (this.unwritten === 0) return;
    const started = Date.now();
    await this.writePlan();
    await this.journal?.truncate(0);
    await this.journal?.datasync();
    this.unwritten = 0;
    this.lastCompaction = Date.now();
    this.compactionCost = this.lastCompaction - started;
  }

  /**
   * Identity of the file as last written by us. Unchanged identity means
   * nobody touched the file since, and the plan need not be read back: at
   * 2,000 workloads that read was a megabyte of garbage every second.
   */
  private async identity(): Promise<string | undefined> {
    try {
      return fileIdentity(await stat(this.file, { bigint: true }));
    } catch {
      return undefined;
    }
  }

  private async writePlan(): Promise<void> {
    // Someone edited the plan while we ran: keep their text, re-apply ours.
    if (this.onDiskIdentity === undefined || (await this.identity()) !== this.onDiskIdentity) {
      let current: string | undefined;
      try {
        current = await readFile(this.file, 'utf8');
      } catch {
        current = undefined;
      }
      if (current !== undefined && current !== this.onDisk) {
        const theirs = parsePlan(current, this.display);
        this.editor = new PlanEditor(theirs);
        for (const e of this.statuses.values()) this.editor.setStatus(e, e.status);
      }
    }
    const text = this.editor.toString();
    // The identity of what we wrote, not a stat taken after the rename: an
    // edit made in between would otherwise pass for ours and be overwritten.
    this.onDiskIdentity = await writeFileAtomic(this.file, text);
    this.onDisk = text;
  }

  /** Writes the final plan and removes the journal. */
  async close(): Promise<void> {
    while (this.draining) await this.draining;
    await this.compact();
    await this.journal?.close();
    this.journal = undefined;
    await rm(journalPath(this.file), { force: true });
  }
}

async function fileMode(file: string): Promise<number> {
  try {
    return (await stat(file)).mode & 0o777;
  } catch {
    return 0o644;
  }
}

export function lockPath(planFile: string): string {
  return `${planFile}.lock`;
}

/** Who holds a plan's lock, as written into the lock file. */
export interface LockHolder {
  pid: number;
  host: string;
  started: string;
  command: string;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (
      typeof v.pid === 'number' &&
      typeof v.host === 'string' &&
      typeof v.started === 'string' &&
      typeof v.command === 'string'
    ) {
      return { pid: v.pid, host: v.host, started: v.started, command: v.command };
    }
  } catch {
    // torn or foreign content: handled by the caller
  }
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, it is just not ours.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A lock file that is empty or unparsable this long after it was written was left by a crash. */
const TORN_LOCK_MS = 10_000;

async function ageMs(file: string): Promise<number | undefined> {
  try {
    return Date.now() - (await stat(file)).mtimeMs;
  } catch {
    return undefined;
  }
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * An exclusive lock on a plan for one run: `<plan>.lock`, created with
 * O_EXCL, holding the pid, host, start time and command. A lock whose pid is
 * dead on this host is stale and taken over; a live one (or one held on
 * another host, whose pid cannot be checked) stops the run with a message
 * naming the holder.
 */
export class PlanLock {
  private constructor(
    private readonly file: string,
    private readonly text: string,
  ) {}

  static async acquire(
    planFile: string,
    display: string,
    holder: { command: string; started: Date },
  ): Promise<PlanLock> {
    const file = lockPath(planFile);
    const me: LockHolder = {
      pid: process.pid,
      host: hostname(),
      started: holder.started.toISOString(),
      command: holder.command,
    };
    const text = `${JSON.stringify(me)}\n`;
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(file, 'wx', 0o644);
        try {
          await fh.writeFile(text);
          await fh.sync();
        } finally {
          await fh.close();
        }
        return new PlanLock(file, text);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') {
          throw new UserError(`cannot create ${display}.lock (${errno(e)})`);
        }
      }
      const seen = await readText(file);
      if (seen === undefined) continue; // released meanwhile
      const other = parseHolder(seen);
      const stale = other
        ? other.host === me.host && !pidAlive(other.pid)
        : ((await ageMs(file)) ?? 0) > TORN_LOCK_MS;
      if (stale && attempt < 50) {
        await breakStale(file, seen);
        continue;
      }
      if (!other && attempt < 50) {
        // Being written by a run that just created it: look again shortly.
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const who = other
        ? `pid ${other.pid} on ${other.host}, started ${other.started} (${other.command})`
        : 'an unreadable lock';
      throw new UserError(
        `${display} is in use by another run: ${who}`,
        `wait for that run to finish; if it is no longer running, delete ${display}.lock`,
      );
    }
  }

  /** Removes the lock if it is still ours. */
  async release(): Promise<void> {
    if ((await readText(this.file)) === this.text) await unlink(this.file).catch(() => undefined);
  }
}

/**
 * Removes a stale lock, unless another run replaced it meanwhile. Two runs
 * may find the same stale lock at once; the `.break` file (O_EXCL again)
 * lets only one of them look and delete, so neither deletes the fresh lock
 * the other has just taken.
 */
async function breakStale(file: string, staleText: string): Promise<void> {
  const breaker = `${file}.break`;
  try {
    await (await open(breaker, 'wx', 0o644)).close();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another run is breaking it; a breaker left by a crash is cleared after a while.
    if (((await ageMs(breaker)) ?? 0) > TORN_LOCK_MS) await rm(breaker, { force: true });
    await new Promise((r) => setTimeout(r, 20));
    return;
  }
  try {
    if ((await readText(file)) === staleText) await rm(file, { force: true });
  } finally {
    await rm(breaker, { force: true });
  }
}
