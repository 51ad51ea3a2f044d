// What a plan signature covers: a canonical serialisation of everything a
// reviewer approves, and nothing protect or unprotect change.
//
// It is built from the validated plan, not from the file's text, so
// comments, quoting, key order, layout and defaults spelled out or left
// implicit do not matter, while every value does. Generic on purpose: every
// field of the plan is covered, including fields added to the schema later,
// except the workloads' `status` (the one thing protect writes). Lists of
// tenants, workloads and secrets are sorted by their identity (their order
// means nothing; the schema already refuses duplicates), object keys by
// code unit; keys whose value is absent, an empty list or an empty map are
// left out (the schema reads all three alike).
import { quoteToken } from '../display.js';
import type { MigrationPlan } from '../schema.js';

/** Names the canonical form; a later change to it gets a new name, never new bytes under this one. */
export const CONTENT_FORMAT = 'cloudtaser.io/signed-plan-content/v1';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Identity of a list item, by where the list is (tenants, workloads, secrets),
 * for sorting and for naming items in a diff. Other lists keep their order.
 */
function identity(listKey: string, item: Json): string | undefined {
  if (!isObj(item)) return undefined;
  const s = (k: string): string => (typeof item[k] === 'string' ? item[k] : '');
  if (listKey === 'tenants') return `tenant ${s('name')}`;
  if (listKey === 'workloads') return `${s('kind')} ${s('name')}`;
  if (listKey === 'secrets') return `secret ${s('source')}`;
  return undefined;
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * `key` is the map key `value` sits under (it names a list's items);
 * `itemOf` the key of the list `value` is an item of: the items of a
 * tenant's `workloads` list leave out their `status`.
 */
function normalise(value: unknown, key: string, itemOf?: string): Json | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return value;
  if (Array.isArray(value)) {
    const items = value
      .map((v: unknown) => normalise(v, '', key))
      .filter((v): v is Json => v !== undefined);
    if (items.length === 0) return undefined;
    const ids = items.map((v) => identity(key, v));
    if (!ids.every((id): id is string => id !== undefined)) return items;
    return items
      .map((v, i) => ({ v, id: ids[i] ?? '' }))
      .sort((a, b) => byCodeUnit(a.id, b.id))
      .map((o) => o.v);
  }
  if (typeof value !== 'object') throw new Error(`unexpected ${typeof value} in a plan`);
  const out: Obj = {};
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record).sort(byCodeUnit)) {
    if (itemOf === 'workloads' && k === 'status') continue;
    const v = normalise(record[k], k);
    if (v !== undefined) out[k] = v;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

/** The canonical content of a plan as a value (see the file comment). */
export function contentValue(plan: MigrationPlan): Obj {
  return { format: CONTENT_FORMAT, plan: normalise(plan, '') ?? {} };
}

/**
 * JSON with two-space indentation and keys in code-unit order, written out
 * here rather than by JSON.stringify, which puts integer-like keys (a vault
 * field named "1") first whatever the order asked for.
 */
function render(v: Json, indent: string): string {
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    const inner = `${indent}  `;
    return `[\n${v.map((x) => inner + render(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (isObj(v)) {
    const keys = Object.keys(v).sort(byCodeUnit);
    if (keys.length === 0) return '{}';
    const inner = `${indent}  `;
    const body = keys.map((k) => `${inner}${JSON.stringify(k)}: ${render(v[k] ?? null, inner)}`);
    return `{\n${body.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}

/** The exact bytes a plan signature signs: `cloudtaser plan signed-content` prints them. */
export function signedContent(plan: MigrationPlan): Buffer {
  return Buffer.from(`${render(contentValue(plan), '')}\n`, 'utf8');
}

/** Parses signed content read back (the copy kept beside a signature). */
export function parseContent(text: string): Obj | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return isObj(v) && v.format === CONTENT_FORMAT && isObj(v.plan) ? v : undefined;
  } catch {
    return undefined;
  }
}

function keyLabel(k: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : `[${quoteToken(k)}]`;
}

function show(v: Json | undefined): string {
  if (v === undefined) return '(none)';
  if (typeof v === 'string') return quoteToken(v, 80);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return Array.isArray(v) ? `(list of ${v.length})` : '(map)';
}

/**
 * What differs between signed content and the plan's current content, one
 * line per change, items named by identity: `tenant payments, Deployment
 * payment-api, secret k8s-secret/db: vaultPath "secret/data/a" -> "secret/data/b"`.
 */
export function diffContent(signed: Obj, current: Obj): string[] {
  const out: string[] = [];
  const at = (items: string[], path: string): string =>
    [items.join(', '), path].filter((s) => s !== '').join(': ');
  const walk = (
    a: Json | undefined,
    b: Json | undefined,
    items: string[],
    path: string,
    key: string,
  ): void => {
    if (JSON.stringify(a) === JSON.stringify(b)) return;
    const listA = Array.isArray(a) ? a : a === undefined ? [] : undefined;
    const listB = Array.isArray(b) ? b : b === undefined ? [] : undefined;
    if (listA && listB) {
      const ida = listA.map((x) => identity(key, x));
      const idb = listB.map((x) => identity(key, x));
      if ([...ida, ...idb].every((x) => x !== undefined)) {
        // Items with identities name themselves ("tenant payments"); the list's key adds nothing.
        const where = items;
        const ma = new Map(listA.map((x, i) => [ida[i] ?? '', x]));
        const mb = new Map(listB.map((x, i) => [idb[i] ?? '', x]));
        for (const [id, x] of ma) {
          if (!mb.has(id)) out.push(`${at(where, '')}${where.length ? ': ' : ''}${id} removed`);
          else walk(x, mb.get(id), [...where, id], '', '');
        }
        for (const id of mb.keys()) {
          if (!ma.has(id)) out.push(`${at(where, '')}${where.length ? ': ' : ''}${id} added`);
        }
        return;
      }
    }
    const objA = isObj(a) ? a : a === undefined ? {} : undefined;
    const objB = isObj(b) ? b : b === undefined ? {} : undefined;
    if (objA && objB) {
      const keys = [...new Set([...Object.keys(objA), ...Object.keys(objB)])].sort(byCodeUnit);
      for (const k of keys) {
        const label = keyLabel(k);
        const sub = path === '' ? label : label.startsWith('[') ? path + label : `${path}.${label}`;
        walk(objA[k], objB[k], items, sub, k);
      }
      return;
    }
    if (a === undefined) out.push(`${at(items, path)} added (${show(b)})`);
    else if (b === undefined) out.push(`${at(items, path)} removed (was ${show(a)})`);
    else out.push(`${at(items, path)} ${show(a)} -> ${show(b)}`);
  };
  walk(signed.plan, current.plan, [], '', '');
  return out;
}
