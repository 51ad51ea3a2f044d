// Writing plans: new plans rendered with reviewer comments, and status
// updates spliced into the human's text so every comment, blank line, quote
// style and key order they chose survives. All writes are atomic.
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Document, isMap, isScalar, isSeq, Scalar, type Node } from 'yaml';
import { UserError } from '../core/errors.js';
import { parsePlan, parsePlanDocument, type LoadedPlan } from './read.js';
import {
  PLAN_SCHEMA_URL,
  type MigrationPlan,
  type WorkloadKind,
  type WorkloadStatus,
} from './schema.js';

/**
 * Writes `content` to `file` so that a crash at any moment leaves either the
 * old file or the new one, never a mix: temp file in the same directory,
 * fsync, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let mode = 0o644;
  try {
    mode = (await stat(file)).mode & 0o777;
  } catch {
    // new file
  }
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'its directory does not exist'
        : err.code === 'EACCES' || err.code === 'EPERM'
          ? 'permission denied'
          : err.code === 'EROFS'
            ? 'read-only file system'
            : err.code === 'ENOSPC'
              ? 'no space left on device'
              : (err.code ?? err.message);
    throw new UserError(`cannot write ${file}: ${why}`);
  }
  // The rename is durable only once the directory entry is on disk.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename still happened.
  }
}

/** A comment for reviewers, attached before the node at `path`. */
export interface PlanNote {
  path: readonly (string | number)[];
  text: string;
}

export const PLAN_HEADER = [
  ` yaml-language-server: $schema=${PLAN_SCHEMA_URL}`,
  ' MigrationPlan: review and edit before `cloudtaser source apply-plan`.',
  ' Comments you add here are kept when cloudtaser updates workload status.',
].join('\n');

/** Renders a new plan file (discover's output) with its notes as comments. */
export function renderPlan(plan: MigrationPlan, notes: readonly PlanNote[] = []): string {
  const doc = new Document(plan, { keepUndefined: false });
  doc.commentBefore = PLAN_HEADER;
  // Quoted, so YAML 1.1 readers do not turn it into a timestamp.
  const createdAt = doc.getIn(['metadata', 'createdAt'], true);
  if (isScalar(createdAt)) createdAt.type = Scalar.QUOTE_DOUBLE;
  for (const note of notes) {
    const node = doc.getIn(note.path, true);
    if (isMap(node) || isSeq(node) || isScalar(node)) {
      const prev = (node as Node).commentBefore;
      const lines = note.text
        .split('\n')
        .map((l) => ` ${l}`)
        .join('\n');
      (node as Node).commentBefore = prev ? `${prev}\n${lines}` : lines;
    }
  }
  return doc.toString({ lineWidth: 0, indentSeq: true });
}

/** Identifies one workload in a plan. */
export interface WorkloadRef {
  namespace: string;
  kind: WorkloadKind;
  name: string;
}

export function workloadKey(ref: WorkloadRef): string {
  return `${ref.namespace}/${ref.kind}/${ref.name}`;
}

interface StatusSlot {
  /** Path of the workload map in the document. */
  path: (string | number)[];
  /** Source span of the status value, when the key exists. */
  span?: { start: number; end: number; quote: '' | '"' | "'" };
  /** The status set since the text was indexed, if any. */
  value?: WorkloadStatus;
}

/**
 * Edits workload statuses in a plan's text without re-serialising it: only
 * the characters of each changed status value are replaced. A change costs
 * O(1) (it is recorded against the span found when the text was indexed);
 * the text is assembled once per toString(), so a run that records
 * thousands of statuses allocates no copy of the plan per status.
 */
export class PlanEditor {
  private base = '';
  private slots = new Map<string, StatusSlot>();
  /** Slots with a span, in source order. */
  private ordered: StatusSlot[] = [];
  private assembled: string | undefined;

  constructor(loaded: LoadedPlan) {
    this.index(loaded.text, loaded.plan);
  }

  private index(text: string, plan: MigrationPlan): void {
    this.base = text;
    this.assembled = text;
    this.slots.clear();
    this.ordered = [];
    // Positions come from a document parsed here and dropped at the end, so
    // no syntax tree of the plan stays in memory for the length of a run.
    const doc = parsePlanDocument(text);
    plan.tenants.forEach((tenant, ti) => {
      tenant.workloads.forEach((w, wi) => {
        const path = ['tenants', ti, 'workloads', wi];
        const node = doc.getIn([...path, 'status'], true);
        const slot: StatusSlot = { path };
        if (isScalar(node) && node.range && typeof node.value === 'string') {
          const quote =
            node.type === Scalar.QUOTE_DOUBLE ? '"' : node.type === Scalar.QUOTE_SINGLE ? "'" : '';
          slot.span = { start: node.range[0], end: node.range[1], quote };
          this.ordered.push(slot);
        }
        this.slots.set(
          workloadKey({ namespace: tenant.namespace, kind: w.kind, name: w.name }),
          slot,
        );
      });
    });
    this.ordered.sort((a, b) => (a.span?.start ?? 0) - (b.span?.start ?? 0));
  }

  has(ref: WorkloadRef): boolean {
    return this.slots.has(workloadKey(ref));
  }

  /** Sets one workload's status; returns false when the plan has no such workload. */
  setStatus(ref: WorkloadRef, status: WorkloadStatus): boolean {
    const slot = this.slots.get(workloadKey(ref));
    if (!slot) return false;
    if (!slot.span) {
      // No status key written by the human: fall back to the document model
      // once (it may reformat), then keep splicing.
      const doc = parsePlanDocument(this.toString());
      doc.setIn([...slot.path, 'status'], status);
      const text = doc.toString({ lineWidth: 0 });
      this.index(text, parsePlan(text, '<plan>').plan);
      return true;
    }
    if (slot.value !== status) {
      slot.value = status;
      this.assembled = undefined;
    }
    return true;
  }

  toString(): string {
    if (this.assembled === undefined) {
      const parts: string[] = [];
      let at = 0;
      for (const { span, value } of this.ordered) {
        if (!span || value === undefined) continue;
        parts.push(this.base.slice(at, span.start), `${span.quote}${value}${span.quote}`);
        at = span.end;
      }
      parts.push(this.base.slice(at));
      this.assembled = parts.join('');
    }
    return this.assembled;
  }
}
