// Writing plans: new plans rendered with reviewer comments, and status
// updates spliced into the human's text so every comment, blank line, quote
// style and key order they chose survives. All writes are atomic.
import { isDeepStrictEqual } from 'node:util';
import { Document, isMap, isScalar, isSeq, Scalar, type Node } from 'yaml';
import { loadFastRaw, parsePlan, parsePlanDocument, type LoadedPlan } from './read.js';
import { MigrationPlanSchema, type MigrationPlan } from './schema.js';
import { PLAN_SCHEMA_URL, type WorkloadKind, type WorkloadStatus } from './model.js';

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

interface Span {
  start: number;
  end: number;
  quote: '' | '"' | "'";
}

interface StatusSlot {
  /** Path of the workload map in the document. */
  path: (string | number)[];
  /** Source span of the status value, when the key exists. */
  span?: Span;
  /** The status set since the text was indexed, if any. */
  value?: WorkloadStatus;
}

/** A `status:` key with one of the three values, block or flow style. */
const STATUS_VALUE =
  /(?<=^|[\s{,])status:[ \t]+("(?:pending|migrated|skipped)"|'(?:pending|migrated|skipped)'|(?:pending|migrated|skipped))(?=[ \t]*(?:#|,|\}|$))/gm;

type Holder = { status?: unknown } | null;
type RawPlan = { tenants?: ({ workloads?: Holder[] } | null)[] } | null | undefined;

/** Each workload's status holder in document order, if the raw value has the plan's shape. */
function statusHolders(raw: unknown): { status?: unknown }[] | undefined {
  const tenants = (raw as RawPlan)?.tenants;
  if (!Array.isArray(tenants)) return undefined;
  const out: { status?: unknown }[] = [];
  for (const t of tenants) {
    if (!Array.isArray(t?.workloads)) return undefined;
    for (const w of t.workloads) {
      if (w === null || typeof w !== 'object') return undefined;
      out.push(w);
    }
  }
  return out;
}

/**
 * Status spans found by a text scan, proven rather than assumed: with a
 * distinct marker spliced into every span, the YAML must read back with
 * marker i as workload i's status and nothing else changed. Any doubt (a
 * comment that looks like a status, a missing key, YAML features the fast
 * parser leaves to the authoritative one) returns undefined. About ten times
 * cheaper in time and memory than building the document for its positions.
 */
export function provenSpans(text: string, plan: MigrationPlan): Span[] | undefined {
  const workloads = plan.tenants.reduce((n, t) => n + t.workloads.length, 0);
  const spans: Span[] = [];
  for (const m of text.matchAll(STATUS_VALUE)) {
    const value = m[1] ?? '';
    const start = m.index + m[0].length - value.length;
    const q = value[0];
    spans.push({ start, end: start + value.length, quote: q === '"' || q === "'" ? q : '' });
  }
  if (spans.length !== workloads) return undefined;
  const parts: string[] = [];
  let at = 0;
  spans.forEach((s, i) => {
    parts.push(text.slice(at, s.start), `"ct-status-${i}"`);
    at = s.end;
  });
  parts.push(text.slice(at));
  const marked = loadFastRaw(parts.join(''));
  const holders = statusHolders(marked);
  if (!holders || holders.length !== workloads) return undefined;
  const statuses = plan.tenants.flatMap((t) => t.workloads.map((w) => w.status));
  for (const [i, holder] of holders.entries()) {
    if (holder.status !== `ct-status-${i}`) return undefined;
    holder.status = statuses[i];
  }
  // With the statuses put back it must be the very same plan (the schema
  // rejects unknown keys, so nothing the markers touched can hide).
  const again = MigrationPlanSchema.safeParse(marked);
  return again.success && isDeepStrictEqual(again.data, plan) ? spans : undefined;
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
    const proven = provenSpans(text, plan);
    // Otherwise positions come from a document parsed here and dropped at the
    // end, so no syntax tree of the plan stays in memory for a whole run.
    const doc = proven ? undefined : parsePlanDocument(text);
    let i = 0;
    plan.tenants.forEach((tenant, ti) => {
      tenant.workloads.forEach((w, wi) => {
        const path = ['tenants', ti, 'workloads', wi];
        const slot: StatusSlot = { path };
        const node = doc?.getIn([...path, 'status'], true);
        if (proven) slot.span = proven[i];
        else if (isScalar(node) && node.range && typeof node.value === 'string') {
          const quote =
            node.type === Scalar.QUOTE_DOUBLE ? '"' : node.type === Scalar.QUOTE_SINGLE ? "'" : '';
          slot.span = { start: node.range[0], end: node.range[1], quote };
        }
        if (slot.span) this.ordered.push(slot);
        this.slots.set(
          workloadKey({ namespace: tenant.namespace, kind: w.kind, name: w.name }),
          slot,
        );
        i++;
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
