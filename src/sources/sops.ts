// SOPS-encrypted Secret manifests in a directory (a GitOps repository) as a
// source: what discover can learn without keys, and what import decrypts.
//
// SOPS encrypts values only: keys (and so the Secret's key names) are always
// readable, and with `encrypted_regex: ^(data|stringData)$` so are kind and
// metadata. Everything here that reads a file without the `sops` binary sees
// ciphertext only; the decrypted text exists only in memory, between the
// `sops` process's stdout pipe and the parse that takes the values out.
import { CORE_SCHEMA, loadAll } from 'js-yaml';

/** A plan source: `sops/<file relative to the scanned directory>#<document index>`. */
export const SOPS_PREFIX = 'sops/';

/** What a file segment of a plan source may hold (the plan schema's rule). */
const SEGMENT = /^(?!\.{1,2}$)[A-Za-z0-9_.+@-]+$/;

/** The form SOPS writes an encrypted value in. */
const ENC = /^ENC\[[A-Z0-9_]+,data:/;

export function sopsSource(file: string, index: number): string {
  return `${SOPS_PREFIX}${file}#${index}`;
}

/** `sops/a/b.yaml#2` → `{file: 'a/b.yaml', index: 2}`; undefined for any other form. */
export function parseSopsSource(source: string): { file: string; index: number } | undefined {
  if (!source.startsWith(SOPS_PREFIX)) return undefined;
  const m = /^(.+)#(0|[1-9][0-9]{0,5})$/.exec(source.slice(SOPS_PREFIX.length));
  if (!m?.[1] || !m[2]) return undefined;
  if (!m[1].split('/').every((s) => SEGMENT.test(s))) return undefined;
  return { file: m[1], index: Number(m[2]) };
}

/** Whether a relative file name can be written into a plan source. */
export function sourceableFile(file: string): boolean {
  return file.split('/').every((s) => SEGMENT.test(s));
}

/** One document of a manifest file, as far as it can be read without keys. */
export interface SopsDoc {
  file: string;
  index: number;
  /** The document carries SOPS metadata (a `sops` key). */
  encrypted: boolean;
  /** Cleartext kind, name and namespace; undefined when absent or encrypted. */
  kind?: string | undefined;
  name?: string | undefined;
  namespace?: string | undefined;
  /** kind, metadata.name or metadata.namespace is encrypted: matching needs the keys. */
  metadataEncrypted: boolean;
  /** Key names of `data` and `stringData`, sorted (SOPS never encrypts keys). */
  keys: string[];
  /** In an encrypted document, keys whose values are stored in clear anyway. */
  clearKeys: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A document holds SOPS metadata when it has a `sops` map with a MAC or version, as sops writes it. */
export function hasSopsMetadata(doc: unknown): boolean {
  if (!isObj(doc) || !isObj(doc.sops)) return false;
  return typeof doc.sops.mac === 'string' || typeof doc.sops.version === 'string';
}

const clear = (v: unknown): { value?: string; encrypted: boolean } =>
  typeof v !== 'string'
    ? { encrypted: false }
    : ENC.test(v)
      ? { encrypted: true }
      : { value: v, encrypted: false };

/**
 * What one parsed document says without decrypting. Undefined for a
 * document that is plainly not a Secret (a Deployment beside it in the same
 * file): only Secrets, and documents whose kind cannot be read, matter.
 */
export function classifyDocument(doc: unknown, file: string, index: number): SopsDoc | undefined {
  if (!isObj(doc)) return undefined;
  const encrypted = hasSopsMetadata(doc);
  const kind = clear(doc.kind);
  if (!kind.encrypted && kind.value !== 'Secret') return undefined;
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const name = clear(meta.name);
  const namespace = clear(meta.namespace);
  const keys = new Set<string>();
  const clearKeys = new Set<string>();
  for (const part of ['data', 'stringData'] as const) {
    const m = doc[part];
    if (!isObj(m)) continue;
    for (const [k, v] of Object.entries(m)) {
      keys.add(k);
      if (encrypted && !clear(v).encrypted) clearKeys.add(k);
    }
  }
  return {
    file,
    index,
    encrypted,
    kind: kind.value,
    name: name.value,
    namespace: namespace.value,
    metadataEncrypted: kind.encrypted || name.encrypted || namespace.encrypted,
    keys: [...keys].sort(),
    clearKeys: [...clearKeys].sort(),
  };
}

/**
 * Parses a manifest file into its documents: a JSON file is one document
 * (sops's JSON store), YAML may hold several. A parse error is reported by
 * line only: the parser's own message quotes the text around the error,
 * which may be a value.
 */
export function parseManifests(
  text: string,
  file: string,
): { docs: unknown[] } | { error: string } {
  if (/\.json$/i.test(file)) {
    try {
      return { docs: [JSON.parse(text) as unknown] };
    } catch {
      return { error: 'not valid JSON' };
    }
  }
  try {
    const docs: unknown[] = [];
    // CORE_SCHEMA: no timestamps or binaries, so every scalar stays as written.
    loadAll(text, (d) => docs.push(d), { schema: CORE_SCHEMA, filename: file });
    return { docs };
  } catch (e) {
    const line = (e as { mark?: { line?: number } }).mark?.line;
    return { error: `not valid YAML${typeof line === 'number' ? ` (line ${line + 1})` : ''}` };
  }
}

/** The Secret's values from one decrypted document: `data` base64-decoded, `stringData` as is. */
export function secretValues(doc: unknown): { data: Map<string, Buffer> } | { reason: string } {
  if (!isObj(doc) || doc.kind !== 'Secret')
    return { reason: 'the decrypted document is not a Secret' };
  const out = new Map<string, Buffer>();
  if (doc.data !== undefined && doc.data !== null) {
    if (!isObj(doc.data)) return { reason: 'data is not a map' };
    for (const [k, v] of Object.entries(doc.data)) {
      // Strict base64, as the API server decodes it: a value it would refuse is refused here.
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(v)) {
        return { reason: `data key ${k} is not base64 text` };
      }
      out.set(k, Buffer.from(v, 'base64'));
    }
  }
  if (doc.stringData !== undefined && doc.stringData !== null) {
    if (!isObj(doc.stringData)) return { reason: 'stringData is not a map' };
    for (const [k, v] of Object.entries(doc.stringData)) {
      // The API server refuses a stringData value that is not a string; so does this.
      if (typeof v !== 'string') return { reason: `stringData key ${k} is not a string` };
      // stringData wins over data for the same key, as on the API server.
      out.set(k, Buffer.from(v, 'utf8'));
    }
  }
  return { data: out };
}
