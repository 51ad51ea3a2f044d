// Reading a plan: YAML → document (positions kept) → schema validation, with
// every problem reported as FILE:LINE:COL, not just the first one.
//
// Two parsers, one authority. `yaml` (the one that keeps comments and
// positions) decides what a plan means and reports every problem; but it
// parses about 1 MB/s, so a 2,000-workload plan cost each command a second
// and ~80 MB. Plain plans are therefore read first with js-yaml (about ten
// times faster) and validated; only a plan that fails, or that uses a YAML
// feature on which the two could disagree, goes through `yaml`.
import { createRequire } from 'node:module';
import { CORE_SCHEMA, load as loadFast } from 'js-yaml';
import type { Document, LineCounter as LineCounterType, Pair } from 'yaml';
import type * as Yaml from 'yaml';
import type { z } from 'zod';
import { clip, quoteToken } from './display.js';
import { crossCheck, MigrationPlanSchema, type MigrationPlan } from './schema.js';
import { PlanError, type PlanIssue } from './text.js';

// `yaml` is loaded on first use: read-only commands on plain plans never
// need it, and it is a tenth of their start-up. (Its Node entry point is
// CommonJS, so a synchronous require returns the one module instance that
// `import` elsewhere gets too.)
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

export { MAX_LISTED_ISSUES, PlanError, type PlanIssue } from './text.js';

export interface LoadedPlan {
  file: string;
  text: string;
  plan: MigrationPlan;
}

type PathKey = string | number;

function pathLabel(path: readonly PathKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${quoteToken(p)}]`;
  }
  return out;
}

function pairFor(node: unknown, key: PathKey): Pair | undefined {
  if (!yaml().isMap(node)) return undefined;
  return node.items.find((p) => yaml().isScalar(p.key) && String(p.key.value) === String(key));
}

/**
 * Source offset of the node at `path` (of `key` itself when given, for key
 * problems). A path that leaves the document points at the deepest node it
 * reached, so a missing key is reported on its parent.
 */
function offsetOf(doc: Document.Parsed, path: readonly PathKey[], key?: PathKey): number {
  let node: unknown = doc.contents;
  let offset = yaml().isNode(node) ? (node.range?.[0] ?? 0) : 0;
  for (const step of path) {
    if (yaml().isSeq(node) && typeof step === 'number') node = node.items[step];
    else node = pairFor(node, step)?.value;
    if (!yaml().isNode(node)) break;
    offset = node.range?.[0] ?? offset;
  }
  const keyNode = key === undefined ? undefined : pairFor(node, key)?.key;
  if (yaml().isNode(keyNode)) offset = keyNode.range?.[0] ?? offset;
  return offset;
}

/** True when the raw value has no key at `path` (zod's issues do not carry the input). */
function absent(raw: unknown, path: readonly PathKey[]): boolean {
  let node: unknown = raw;
  for (const step of path) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, step)) return true;
    node = (node as Record<PathKey, unknown>)[step];
  }
  return node === undefined;
}

function issuesFromZod(
  error: z.ZodError,
  doc: Document.Parsed,
  lines: LineCounterType,
  raw: unknown,
): PlanIssue[] {
  const out: PlanIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is PathKey => typeof p !== 'symbol');
    const label = pathLabel(path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const pos = lines.linePos(offsetOf(doc, path, key));
        const where = label ? ` in ${label}` : '';
        out.push({ ...pos, message: `unknown key ${quoteToken(key)}${where}` });
      }
      continue;
    }
    const pos = lines.linePos(offsetOf(doc, path));
    // A missing required key reads better as "missing" than as a type error.
    const missing = issue.code === 'invalid_type' && path.length > 0 && absent(raw, path);
    const message = missing
      ? `${label}: required key is missing`
      : `${label ? `${label}: ` : ''}${issue.message}`;
    out.push({ ...pos, message });
  }
  return out;
}

/**
 * Parses and validates plan text. Throws PlanError (exit 2) listing every
 * problem with its position; never throws anything else for bad input.
 */
export function parsePlan(text: string, file: string): LoadedPlan {
  const fast = parseFast(text);
  if (fast) return { file, text, plan: fast };
  return parseAuthoritative(text, file);
}

/**
 * Directives (a `%YAML 1.1` header changes how scalars resolve), tags,
 * anchors and aliases (shared nodes, alias bombs), and binary integers (which
 * only js-yaml reads as numbers) all take the authoritative path; so does a
 * "#" right after a closing quote or bracket, which js-yaml reads as a
 * comment and `yaml` rejects.
 */
const NEEDS_AUTHORITY = /^%|[!&*]|\b0b[01]|__proto__|["'\]}]#/m;

/**
 * Keys named "__proto__" anywhere in the raw value. The schema library drops
 * them without a word (assigning one would replace an object's prototype), so
 * a field named so would vanish from a plan that still reads as valid; they
 * are reported instead.
 */
function protoKeys(raw: unknown, path: PathKey[] = [], out: PathKey[][] = []): PathKey[][] {
  if (Array.isArray(raw)) raw.forEach((v, i) => protoKeys(v, [...path, i], out));
  else if (typeof raw === 'object' && raw !== null) {
    for (const [k, v] of Object.entries(raw)) {
      if (k === '__proto__') out.push(path);
      protoKeys(v, [...path, k], out);
    }
  }
  return out;
}

/**
 * The raw YAML value by the fast parser; undefined when it fails or when the
 * text uses something only the authoritative parser may decide.
 */
export function loadFastRaw(text: string): unknown {
  if (NEEDS_AUTHORITY.test(text)) return undefined;
  try {
    return loadFast(text, { schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
}

/** The plan when the fast parser reads it and it is valid; undefined otherwise. */
function parseFast(text: string): MigrationPlan | undefined {
  const raw = loadFastRaw(text);
  if (raw === undefined) return undefined;
  const parsed = MigrationPlanSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

/** Parses with `yaml`: the meaning of record, and every problem with its position. */
export function parseAuthoritative(text: string, file: string): LoadedPlan {
  const lines = new (yaml().LineCounter)();
  const doc = parsePlanDocument(text, lines);
  const yamlIssues: PlanIssue[] = doc.errors.map((e) => ({
    ...lines.linePos(e.pos[0]),
    // The parser's messages may quote the source; a few dozen characters do.
    message: `invalid YAML: ${clip(e.message.split('\n')[0] ?? e.code, 120)}`,
  }));
  // A duplicate key leaves a well-formed document (the schema can still be
  // checked, so the user sees everything at once); any other syntax error
  // leaves a document whose meaning is a guess, so only those are reported.
  if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) throw new PlanError(file, yamlIssues);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new PlanError(file, [
      { line: 1, col: 1, message: `invalid YAML: ${e instanceof Error ? e.message : String(e)}` },
    ]);
  }
  if (raw === null || raw === undefined) {
    throw new PlanError(file, [
      { line: 1, col: 1, message: 'the file is empty; expected a MigrationPlan' },
    ]);
  }
  if (typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) {
    // A scalar, list or binary at the top: one line says it all (field by
    // field, a byte string would be a hundred unknown keys).
    const found = Array.isArray(raw)
      ? 'a list'
      : raw instanceof Uint8Array
        ? 'binary data'
        : `a ${typeof raw}`;
    throw new PlanError(file, [
      ...yamlIssues,
      {
        ...lines.linePos(offsetOf(doc, [])),
        message: `expected a MigrationPlan (a mapping with apiVersion, kind, metadata, tenants), found ${found}`,
      },
    ]);
  }
  const parsed = MigrationPlanSchema.safeParse(raw);
  const protoIssues = protoKeys(raw).map((path) => ({
    ...lines.linePos(offsetOf(doc, path, '__proto__')),
    message: `key "__proto__"${path.length > 0 ? ` in ${pathLabel(path)}` : ''} cannot be used: it has a special meaning to the programs that read plans`,
  }));
  if (!parsed.success || yamlIssues.length > 0 || protoIssues.length > 0) {
    const schemaIssues = parsed.success ? [] : issuesFromZod(parsed.error, doc, lines, raw);
    // zod skips the cross-entry rules when the structure is wrong; they are
    // run on the raw value here so one run reports every problem.
    const crossIssues = crossCheck(raw).map((c) => ({
      ...lines.linePos(offsetOf(doc, c.path)),
      message: `${pathLabel(c.path)}: ${c.message}`,
    }));
    const seen = new Set<string>();
    const issues = [...yamlIssues, ...schemaIssues, ...protoIssues, ...crossIssues]
      .filter((i) => {
        const key = `${i.line}:${i.col}:${i.message}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      })
      .sort((a, b) => a.line - b.line || a.col - b.col);
    throw new PlanError(file, issues);
  }
  return { file, text, plan: parsed.data };
}

/** The YAML document of a plan's text, with source ranges on every node. */
export function parsePlanDocument(text: string, lineCounter?: LineCounterType): Document.Parsed {
  return yaml().parseDocument(text, {
    ...(lineCounter ? { lineCounter } : {}),
    prettyErrors: false,
    uniqueKeys: true,
    keepSourceTokens: false,
    // Warnings would go to process.emitWarning; problems are reported as issues.
    logLevel: 'error',
  });
}

// Reading a plan file (with the validated-plan cache) lives in load.ts, which
// imports this module only when it has to parse.
export { readPlan } from './load.js';
