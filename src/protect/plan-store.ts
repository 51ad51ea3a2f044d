// Status persistence for long runs. Each status change is appended to a
// journal beside the plan and fsynced (durable at once, cost independent of
// plan size); the plan itself is rewritten atomically at most about once a
// second and at the end, keeping the human's text. A crash at any point
// leaves a plan that parses plus a journal that the next run replays.
import { open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { parsePlan, type LoadedPlan } from '../plan/read.js';
import type { WorkloadStatus } from '../plan/schema.js';
import { PlanEditor, workloadKey, writeFileAtomic, type WorkloadRef } from '../plan/write.js';

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

/** Reads journal entries; a torn last line (crash mid-append) is ignored. */
async function readJournal(file: string): Promise<JournalEntry[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return [];
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
    const leftover = await readJournal(journalPath(loaded.file));
    if (leftover.length > 0) {
      for (const e of leftover) store.apply(e);
      await store.writePlan();
    }
    await rm(journalPath(loaded.file), { force: true });
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
        for (const w of batch) this.apply(w.entry);
        this.journal ??= await open(journalPath(this.file), 'a', 0o644);
        await this.journal.appendFile(batch.map((w) => `${JSON.stringify(w.entry)}\n`).join(''));
        await this.journal.datasync();
        this.unwritten += batch.length;
      } catch (e) {
        for (const w of batch) w.reject(e);
        continue;
      }
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
      const st = await stat(this.file, { bigint: true });
      return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
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
    await writeFileAtomic(this.file, text);
    this.onDisk = text;
    this.onDiskIdentity = await this.identity();
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
