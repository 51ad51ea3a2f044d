// Text from a plan file that goes into a message: a plan may be any bytes a
// user points the CLI at, so what reaches the terminal is escaped (no control
// sequence can act on it) and short (no token can flood it).

/** Characters a terminal would act on or that hide text: C0 (tab included), DEL, C1, line/paragraph separators, bidi controls. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Replaces control characters with JSON-style escapes ("\u001b", "\n"). */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** At most `max` characters (code points), with "…" when cut. */
export function clip(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** A token from the file, quoted for a message: escaped, then cut to a few dozen characters. */
export function quoteToken(value: string, max = 40): string {
  return `"${clip(escapeControl(value).replace(/"/g, '\\"'), max)}"`;
}

/** One message line, safe to print: escaped and at most `max` characters. */
export function safeLine(text: string, max = 240): string {
  return clip(escapeControl(text), max);
}
