// The allowed_signers file as ssh-keygen(1) reads it (ALLOWED SIGNERS):
// one line per key, `principals [options] keytype base64-key [comment]`,
// the principals a pattern-list (quoted when it holds spaces), the options
// `cert-authority`, `namespaces="pattern-list"`, `valid-after="time"`,
// `valid-before="time"` (keywords case-insensitive). `#` lines and blank
// lines are comments. The same file teams use for git's SSH signing works.

/** One usable line of the file. */
export interface AllowedSigner {
  line: number;
  principals: string;
  certAuthority: boolean;
  namespaces: string | undefined;
  validAfter: Date | undefined;
  validBefore: Date | undefined;
  keyType: string;
  blob: Buffer;
}

/** A line ssh-keygen would not accept either; `line` is 1-based. */
export class AllowedSignersError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const KEY_TYPE =
  /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-\S+|\S+-cert-v01@openssh\.com)$/;

/** Splits off the next whitespace-delimited token, honouring double quotes. */
function token(s: string): [string, string] {
  let i = 0;
  let quoted = false;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) break;
    i++;
  }
  if (quoted) throw new Error('unterminated quote');
  return [s.slice(0, i), s.slice(i).replace(/^[ \t]+/, '')];
}

/** `a,b="x,y",c` → [[a], [b, x,y], [c]]: option specifications split on unquoted commas. */
function options(spec: string): { name: string; value: string | undefined }[] {
  const out: { name: string; value: string | undefined }[] = [];
  let cur = '';
  let quoted = false;
  const push = (): void => {
    const eq = cur.indexOf('=');
    if (eq < 0) out.push({ name: cur.toLowerCase(), value: undefined });
    else {
      const raw = cur.slice(eq + 1);
      if (!/^"[^"]*"$/.test(raw))
        throw new Error(`option ${cur.slice(0, eq)} needs a "quoted" value`);
      out.push({ name: cur.slice(0, eq).toLowerCase(), value: raw.slice(1, -1) });
    }
    cur = '';
  };
  for (const c of spec) {
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) push();
    else cur += c;
  }
  push();
  return out;
}

/**
 * `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`: the system's time zone unless it
 * ends in Z (UTC), as ssh-keygen reads them.
 */
export function parseSignerTime(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/i.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, z] = m;
  const parts = [
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h ?? 0),
    Number(mi ?? 0),
    Number(s ?? 0),
  ] as const;
  const date = z ? new Date(Date.UTC(...parts)) : new Date(...parts);
  // Reject 20261340 and the like instead of letting Date roll them over.
  const back = z
    ? [
        date.getUTCFullYear(),
        date.getUTCMonth(),
        date.getUTCDate(),
        date.getUTCHours(),
        date.getUTCMinutes(),
      ]
    : [date.getFullYear(), date.getMonth(), date.getDate(), date.getHours(), date.getMinutes()];
  if (back.some((v, i) => v !== parts[i])) return undefined;
  return date;
}

export function parseAllowedSigners(text: string): AllowedSigner[] {
  const out: AllowedSigner[] = [];
  text.split('\n').forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.replace(/\r$/, '').replace(/^[ \t]+/, '');
    if (line === '' || line.startsWith('#')) return;
    try {
      const [principalsTok, afterPrincipals] = token(line);
      const principals = principalsTok.replace(/^"(.*)"$/, '$1');
      if (principals === '') throw new Error('no principals');
      let [next, rest] = token(afterPrincipals);
      let opts: { name: string; value: string | undefined }[] = [];
      if (!KEY_TYPE.test(next)) {
        // Not a key type, so this token is the options field.
        if (next === '') throw new Error('no key');
        opts = options(next);
        [next, rest] = token(rest);
      }
      if (!KEY_TYPE.test(next))
        throw new Error(`${JSON.stringify(next.slice(0, 40))} is not a key type`);
      const [b64] = token(rest);
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error('the key is not base64');
      const blob = Buffer.from(b64, 'base64');
      // The blob names its own type; a line whose two disagree is corrupt.
      const inner =
        blob.length >= 4 ? blob.subarray(4, 4 + blob.readUInt32BE(0)).toString('latin1') : '';
      if (inner !== next)
        throw new Error(`the key blob is ${JSON.stringify(inner.slice(0, 40))}, not ${next}`);
      const signer: AllowedSigner = {
        line: lineNo,
        principals,
        certAuthority: false,
        namespaces: undefined,
        validAfter: undefined,
        validBefore: undefined,
        keyType: next,
        blob,
      };
      for (const o of opts) {
        if (o.name === 'cert-authority' && o.value === undefined) signer.certAuthority = true;
        else if (o.name === 'namespaces' && o.value !== undefined) signer.namespaces = o.value;
        else if ((o.name === 'valid-after' || o.name === 'valid-before') && o.value !== undefined) {
          const t = parseSignerTime(o.value);
          if (!t)
            throw new Error(
              `${o.name} ${JSON.stringify(o.value)} is not YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]`,
            );
          if (o.name === 'valid-after') signer.validAfter = t;
          else signer.validBefore = t;
        } else throw new Error(`unsupported option ${JSON.stringify(o.name.slice(0, 40))}`);
      }
      out.push(signer);
    } catch (e) {
      throw new AllowedSignersError(lineNo, e instanceof Error ? e.message : String(e));
    }
  });
  return out;
}

/** ssh_config(5) PATTERNS: `*` and `?` wildcards, whole-string match. */
function matchPattern(value: string, pattern: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(value);
}

/** A pattern-list: comma-separated, a `!` pattern that matches excludes, otherwise any match includes. */
export function matchPatternList(value: string, list: string): boolean {
  let matched = false;
  for (const raw of list.split(',')) {
    const negated = raw.startsWith('!');
    const pattern = negated ? raw.slice(1) : raw;
    if (pattern === '' || !matchPattern(value, pattern)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

export type SignerMatch =
  | { ok: true; principals: string[] }
  /** The key is listed, but no line allows it here and now; `why` says what stops each line. */
  | { ok: false; listed: boolean; why: string[] };

/**
 * The lines that accept `blob` for `namespace` at `now`: the same key,
 * not a certificate authority (certificates are not supported), the
 * namespace inside `namespaces=` when given, `now` inside the validity.
 */
export function findSigner(
  signers: readonly AllowedSigner[],
  blob: Buffer,
  namespace: string,
  now: Date,
): SignerMatch {
  const principals: string[] = [];
  const why: string[] = [];
  let listed = false;
  for (const s of signers) {
    if (!s.blob.equals(blob)) continue;
    listed = true;
    if (s.certAuthority) {
      why.push(`line ${s.line}: cert-authority (certificates are not supported)`);
    } else if (s.namespaces !== undefined && !matchPatternList(namespace, s.namespaces)) {
      why.push(`line ${s.line}: namespaces="${s.namespaces}" does not include ${namespace}`);
    } else if (s.validAfter && now < s.validAfter) {
      why.push(`line ${s.line}: not valid before ${s.validAfter.toISOString()}`);
    } else if (s.validBefore && now > s.validBefore) {
      why.push(`line ${s.line}: expired ${s.validBefore.toISOString()}`);
    } else principals.push(s.principals);
  }
  return principals.length > 0 ? { ok: true, principals } : { ok: false, listed, why };
}
