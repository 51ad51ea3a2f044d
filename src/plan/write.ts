// Writing plans: new plans rendered with reviewer comments, and status
// updates spliced into the human's text so every comment, blank line, quote
// style and key order they chose survives. All writes are atomic.
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Document, isMap, isScalar, isSeq, Scalar, type Node } from 'yaml';
import { UserError } from '../core/errors.js';
import { parsePlan, type LoadedPlan } from './read.js';
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
}

/**
 * Edits workload statuses in a plan's text without re-serialising it: each
 * change replaces only the characters of one status value. Cost per change
 * is independent of how many workloads the plan has, apart from shifting
 * later offsets.
 */
export class PlanEditor {
  private text: string;
  private slots = new Map<string, StatusSlot>();
  private ordered: StatusSlot[] = [];

  constructor(loaded: LoadedPlan) {
    this.text = loaded.text;
    this.index(loaded);
  }

  private index(loaded: LoadedPlan): void {
    this.slots.clear();
    this.ordered = [];
    loaded.plan.tenants.forEach((tenant, ti) => {
      tenant.workloads.forEach((w, wi) => {
        const path = ['tenants', ti, 'workloads', wi];
        const node = loaded.doc.getIn([...path, 'status'], true);
        const slot: StatusSlot = { path };
        if (isScalar(node) && node.range && typeof node.value === 'string') {
          const quote =
            node.type === Scalar.QUOTE_DOUBLE ? '"' : node.type === Scalar.QUOTE_SINGLE ? "'" : '';
          slot.span = { start: node.range[0], end: node.range[1], quote };
        }
        this.slots.set(
          workloadKey({ namespace: tenant.namespace, kind: w.kind, name: w.name }),
          slot,
        );
        this.ordered.push(slot);
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
      const loaded = parsePlan(this.text, '<plan>');
      loaded.doc.setIn([...slot.path, 'status'], status);
      this.text = loaded.doc.toString({ lineWidth: 0 });
      this.index(parsePlan(this.text, '<plan>'));
      return true;
    }
    const { start, end, quote } = slot.span;
    const replacement = `${quote}${status}${quote}`;
    this.text = this.text.slice(0, start) + replacement + this.text.slice(end);
    const delta = replacement.length - (end - start);
    slot.span.end = start + replacement.length;
    if (delta !== 0) {
      for (const other of this.ordered) {
        if (other !== slot && other.span && other.span.start > start) {
          other.span.start += delta;
          other.span.end += delta;
        }
      }
    }
    return true;
  }

  toString(): string {
    return this.text;
  }
}
