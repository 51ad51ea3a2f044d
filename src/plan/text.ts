// A plan file's bytes as text, and the error every plan problem is reported
// with. Kept apart from the parser so that reading a plan the validated-plan
// cache already holds loads neither YAML parser nor the schema.
import { UserError } from '../core/errors.js';
import { safeLine } from './display.js';

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
