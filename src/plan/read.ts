// Reading a plan: YAML → document (positions kept) → schema validation, with
// every problem reported as FILE:LINE:COL, not just the first one.
//
// Two parsers, one authority. `yaml` (the one that keeps comments and
// positions) decides what a plan means and reports every problem; but it
// parses about 1 MB/s, so a 2,000-workload plan cost each command a second
// and ~80 MB. Plain plans are therefore read first with js-yaml (about ten
// times faster) and validated; only a plan that fails, or that uses a YAML
// feature on which the two could disagree, goes through `yaml`.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { CORE_SCHEMA, load as loadFast } from 'js-yaml';
import type { Document, LineCounter as LineCounterType, Pair } from 'yaml';
import type * as Yaml from 'yaml';
import type { z } from 'zod';
import { UserError } from '../core/errors.js';
import { clip, quoteToken, safeLine } from './display.js';
import { crossCheck, MigrationPlanSchema, type MigrationPlan } from './schema.js';

// `yaml` is loaded on first use: read-only commands on plain plans never
// need it, and it is a tenth of their start-up. (Its Node entry point is
// CommonJS, so a synchronous require returns the one module instance that
// `import` elsewhere gets too.)
let yamlModule: typeof Yaml | undefined;
function yaml(): typeof Yaml {
  yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml;
  return yamlModule;
}

export interface PlanIssue {
  line: number;
  col: number;
  message: string;
}

/** How many problems a message lists; the rest are counted (a binary or huge file must not flood the terminal). */
export const MAX_LISTED_ISSUES = 20;

/**
 * A plan file that failed to parse or validate. `issues` holds every problem
 * (messages escaped and clipped); the message lists the first
 * MAX_LISTED_ISSUES and counts the rest.
 */
export class PlanError extends UserError {
  readonly issues: readonly PlanIssue[];
  constructor(
    readonly file: string,
    issues: readonly PlanIssue[],
  ) {
    const safe = issues.map((i) => ({ ...i, message: safeLine(i.message) }));
    const name = safeLine(file);
    const lines = safe
      .slice(0, MAX_LISTED_ISSUES)
      .map((i) => `${name}:${i.line}:${i.col}: ${i.message}`);
    const more = safe.length - MAX_LISTED_ISSUES;
    if (more > 0) lines.push(`${name}: … and ${more} more problems (${safe.length} in all)`);
    super(
      lines.join('\n'),
      `fix the plan file, then check it with: cloudtaser plan validate ${name}`,
    );
    this.issues = safe;
  }
}

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

function issuesFromZod(
  error: z.ZodError,
  doc: Document.Parsed,
  lines: LineCounterType,
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
    const missing = issue.code === 'invalid_type' && issue.input === undefined && path.length > 0;
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
 * only js-yaml reads as numbers) all take the authoritative path.
 */
const NEEDS_AUTHORITY = /^%|[!&*]|\b0b[01]|__proto__/m;

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
    const schemaIssues = parsed.success ? [] : issuesFromZod(parsed.error, doc, lines);
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

/** Line and column (1-based) of byte `offset` of UTF-8-ish bytes. */
function bytePosition(bytes: Buffer, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < offset; i = bytes.indexOf(0x0a, i + 1)) {
    line++;
    lineStart = i + 1;
  }
  const before = bytes.subarray(lineStart, offset).toString('utf8');
  // Columns count UTF-16 units, as the YAML parser's positions do.
  return { line, col: before.length + 1 };
}

/** Offset of the first byte that is not part of well-formed UTF-8; -1 when all are. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] ?? 0;
    if (b < 0x80) {
      i++;
      continue;
    }
    // Lead byte → sequence length and the allowed range of the second byte
    // (which rules out overlong forms, surrogates and code points > U+10FFFF).
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k < len; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < min || c > max) return i;
    }
    i += len;
  }
  return -1;
}

/**
 * The text of a plan file, or a PlanError saying plainly that it is not
 * text: a binary file read as UTF-8 would otherwise turn into thousands of
 * YAML errors full of replacement characters.
 */
export function decodePlanBytes(bytes: Buffer, display: string): string {
  const fail = (pos: { line: number; col: number }, message: string): never => {
    throw new PlanError(display, [{ ...pos, message }]);
  };
  const start = { line: 1, col: 1 };
  if (
    (bytes[0] === 0xff && bytes[1] === 0xfe) ||
    (bytes[0] === 0xfe && bytes[1] === 0xff) ||
    (bytes[0] === 0x00 && bytes[1] === 0x00 && bytes[2] === 0xfe && bytes[3] === 0xff)
  ) {
    const utf32 = bytes[2] === 0x00 && bytes[3] === 0x00 ? 'UTF-32' : 'UTF-16';
    const which = bytes[0] === 0x00 ? 'UTF-32' : utf32;
    fail(start, `not UTF-8 text: ${which} (byte order mark); save the plan as UTF-8`);
  }
  const bad = firstInvalidUtf8(bytes);
  const nul = bytes.indexOf(0);
  if (nul !== -1 && (bad === -1 || nul < bad)) {
    fail(bytePosition(bytes, nul), 'not a text file (NUL byte)');
  }
  if (bad !== -1) {
    const hex = (bytes[bad] ?? 0).toString(16).padStart(2, '0');
    fail(bytePosition(bytes, bad), `not UTF-8 text (byte 0x${hex}); is this a plan file?`);
  }
  return bytes.toString('utf8');
}

/**
 * Reads and validates a plan file; a missing or unreadable file is a
 * UserError. `display` is the name messages use (the path as the user typed it).
 */
export async function readPlan(file: string, display: string = file): Promise<LoadedPlan> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (code ?? 'unreadable');
    throw new UserError(`cannot read plan ${safeLine(display)}: ${why}`);
  }
  return { ...parsePlan(decodePlanBytes(bytes, display), display), file };
}
