// Bitnami Sealed Secrets as a source of values, the pure part: the shape of
// a SealedSecret, the label its values were sealed with, the offline unseal
// (what `kubeseal --recovery-unseal` does with the controller's private key),
// reading that key from a file, and finding SealedSecret manifests in a git
// checkout. No I/O here but the file reads of the manifest scan.
//
// The sealed format, as Sealed Secrets documents it: each value of
// `spec.encryptedData` is base64 of
//   uint16 big-endian length n | RSA-OAEP(SHA-256, label) of a 32-byte
//   session key (n bytes) | AES-256-GCM of the value (zero nonce: the key is
//   used once), with the tag at the end
// and the OAEP label binds it to where it may be unsealed: "namespace/name"
// (strict, the default), "namespace" (annotation
// sealedsecrets.bitnami.com/namespace-wide) or "" (…/cluster-wide).
//
// Unsealed values are returned as Buffers to the caller only; nothing here
// prints, logs or puts a value in an error.
import {
  constants,
  createDecipheriv,
  createPrivateKey,
  privateDecrypt,
  type KeyObject,
} from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { UserError } from '../core/errors.js';
import { manifestFiles } from './manifest-files.js';

export const SEALED_GROUP_VERSION = 'bitnami.com/v1alpha1';
export const SEALED_KIND = 'SealedSecret';
export const SEALED_PLURAL = 'sealedsecrets';
const ANNO = 'sealedsecrets.bitnami.com/';

/** A SealedSecret as the API server (or a manifest) has it: only what is read here. */
export interface SealedSecretObject {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    annotations?: Record<string, string> | null;
  };
  spec?: {
    encryptedData?: Record<string, string> | null;
    /** The pre-v0.7 form: the whole Secret sealed as one blob. */
    data?: string | null;
    template?: { metadata?: { name?: string; namespace?: string } | null } | null;
  } | null;
}

/** Field names a SealedSecret delivers: the keys of `encryptedData`, which are cleartext. */
export function sealedKeys(s: SealedSecretObject): string[] {
  return Object.keys(s.spec?.encryptedData ?? {}).sort();
}

/** The OAEP label a SealedSecret's values were sealed with (its scope). */
export function sealingLabel(s: SealedSecretObject): Buffer {
  const a = s.metadata?.annotations ?? {};
  if (a[`${ANNO}cluster-wide`] === 'true') return Buffer.alloc(0);
  const ns = s.metadata?.namespace ?? '';
  if (a[`${ANNO}namespace-wide`] === 'true') return Buffer.from(ns);
  return Buffer.from(`${ns}/${s.metadata?.name ?? ''}`);
}

const SESSION_KEY_BYTES = 32;
const GCM_NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;

/** One sealed value with one key; undefined when this key (or label) does not open it. */
function openWith(key: KeyObject, sealed: Buffer, label: Buffer): Buffer | undefined {
  if (sealed.length < 2) return undefined;
  const n = sealed.readUInt16BE(0);
  if (sealed.length < 2 + n + GCM_TAG_BYTES) return undefined;
  let sessionKey: Buffer;
  try {
    sessionKey = privateDecrypt(
      { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
      sealed.subarray(2, 2 + n),
    );
  } catch {
    return undefined;
  }
  if (sessionKey.length !== SESSION_KEY_BYTES) return undefined;
  const body = sealed.subarray(2 + n);
  try {
    const d = createDecipheriv('aes-256-gcm', sessionKey, Buffer.alloc(GCM_NONCE_BYTES));
    d.setAuthTag(body.subarray(body.length - GCM_TAG_BYTES));
    return Buffer.concat([d.update(body.subarray(0, body.length - GCM_TAG_BYTES)), d.final()]);
  } catch {
    return undefined;
  } finally {
    sessionKey.fill(0);
  }
}

export type Unsealed =
  { kind: 'found'; data: Map<string, Buffer> } | { kind: 'missing'; reason: string };

/**
 * Unseals every value of a SealedSecret with any of `keys` (the controller
 * keeps old keys after a rotation, so a backup holds several). The reason of
 * a failure names the SealedSecret and key, never a value.
 */
export function unseal(s: SealedSecretObject, keys: readonly KeyObject[]): Unsealed {
  const id = `SealedSecret ${s.metadata?.namespace ?? ''}/${s.metadata?.name ?? ''}`;
  const enc = s.spec?.encryptedData;
  if (!enc || Object.keys(enc).length === 0) {
    const legacy = typeof s.spec?.data === 'string' && s.spec.data !== '';
    return {
      kind: 'missing',
      reason: legacy
        ? `${id} uses the pre-v0.7 spec.data form (one sealed blob); re-seal it with a current kubeseal, or import it online from its unsealed Secret`
        : `${id} has no spec.encryptedData`,
    };
  }
  const label = sealingLabel(s);
  const data = new Map<string, Buffer>();
  for (const k of Object.keys(enc).sort()) {
    const text = enc[k] ?? '';
    const sealed = Buffer.from(text, 'base64');
    let plain: Buffer | undefined;
    for (const key of keys) {
      plain = openWith(key, sealed, label);
      if (plain) break;
    }
    if (!plain) {
      for (const b of data.values()) b.fill(0);
      return {
        kind: 'missing',
        reason: `${id} key ${k} could not be unsealed with the --sealing-key key(s): sealed with another controller key, or for another name/namespace (scope)`,
      };
    }
    data.set(k, plain);
  }
  return { kind: 'found', data };
}

interface KeySecretDoc {
  kind?: string;
  data?: Record<string, string> | null;
  items?: KeySecretDoc[] | null;
}

/**
 * The controller's private key(s) from `--sealing-key FILE`: PEM (PKCS#1 or
 * PKCS#8, one or more keys), or the key Secret(s) as the Sealed Secrets docs
 * back them up (`kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key
 * -o yaml`: a Secret or a List of them, `data["tls.key"]`).
 */
export function parseSealingKeys(text: string, display: string): KeyObject[] {
  const pems: string[] = [];
  const block = /-----BEGIN ((?:RSA )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/g;
  for (const m of text.matchAll(block)) pems.push(m[0]);
  if (pems.length === 0) {
    let docs: unknown[] = [];
    try {
      docs = parseAllDocuments(text).map((d) => d.toJS() as unknown);
    } catch {
      docs = [];
    }
    const visit = (d: KeySecretDoc | null | undefined): void => {
      if (!d || typeof d !== 'object') return;
      if (Array.isArray(d.items)) for (const i of d.items) visit(i);
      const k = d.data?.['tls.key'];
      if (typeof k === 'string') {
        const pem = Buffer.from(k, 'base64').toString('utf8');
        for (const m of pem.matchAll(block)) pems.push(m[0]);
      }
    };
    for (const d of docs) visit(d as KeySecretDoc);
  }
  if (pems.length === 0) {
    throw new UserError(
      `${display} holds no private key: expected PEM ("BEGIN RSA PRIVATE KEY") or the controller's key Secret(s) as YAML/JSON with data["tls.key"]`,
      'back it up with: kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml',
    );
  }
  return pems.map((pem, i) => {
    try {
      const key = createPrivateKey(pem);
      if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
      return key;
    } catch {
      // The parser's own message could quote key material: not passed on.
      throw new UserError(`${display}: private key #${i + 1} is not a readable RSA private key`);
    }
  });
}

/** A SealedSecret looked up by name, or why there is none to unseal. */
export type SealedFound = { sealed: SealedSecretObject } | { missing: string };

/** One SealedSecret document in git: the file (relative to the repo) and its content. */
export interface Manifest {
  file: string;
  sealed: SealedSecretObject;
}

/** Where a SealedSecret is kept in git: the documents under `--repo` that define it. */
export interface ManifestIndex {
  /** `namespace/name` → documents defining it with that namespace. */
  exact: Map<string, Manifest[]>;
  /** `name` → documents defining it without a namespace (set by kustomize or `kubectl -n`). */
  unnamespaced: Map<string, Manifest[]>;
}

/** Files larger than this are not manifests a person keeps in git by hand. */
const MAX_MANIFEST_BYTES = 4 << 20;

/**
 * Indexes the SealedSecret documents (multi-document files and Lists too) of
 * the manifests under `dir` (see manifest-files.ts). Files that do not parse
 * are skipped: a repo holds Helm templates and other YAML that is not plain
 * Kubernetes.
 */
export async function scanManifests(dir: string, display = dir): Promise<ManifestIndex> {
  const index: ManifestIndex = { exact: new Map(), unnamespaced: new Map() };
  const add = (m: Map<string, Manifest[]>, key: string, doc: Manifest): void => {
    const list = m.get(key) ?? [];
    list.push(doc);
    m.set(key, list);
  };
  // A directory that cannot be read holds nothing this can name; a manifest
  // looked for and not found says where it looked (--repo).
  const { files } = await manifestFiles(dir, '--repo', display);
  for (const file of files) {
    let text: string;
    try {
      const buf = await readFile(join(dir, file));
      if (buf.length > MAX_MANIFEST_BYTES) continue;
      text = buf.toString('utf8');
    } catch {
      continue;
    }
    if (!text.includes(SEALED_KIND)) continue;
    for (const s of sealedDocuments(text)) {
      const name = s.metadata?.name;
      if (!name) continue;
      const doc = { file, sealed: s };
      if (s.metadata?.namespace) add(index.exact, `${s.metadata.namespace}/${name}`, doc);
      else add(index.unnamespaced, name, doc);
    }
  }
  return index;
}

/** The SealedSecret documents of one YAML/JSON text (a List's items too). */
export function sealedDocuments(text: string): SealedSecretObject[] {
  const out: SealedSecretObject[] = [];
  let docs: unknown[];
  try {
    docs = parseAllDocuments(text).map(
      (d) => (d.errors.length > 0 ? undefined : d.toJS()) as unknown,
    );
  } catch {
    return out;
  }
  const visit = (d: unknown): void => {
    if (!d || typeof d !== 'object') return;
    const o = d as { kind?: unknown; apiVersion?: unknown; items?: unknown };
    if (
      o.kind === SEALED_KIND &&
      typeof o.apiVersion === 'string' &&
      o.apiVersion.startsWith('bitnami.com/')
    ) {
      out.push(d);
    }
    if (Array.isArray(o.items)) for (const i of o.items) visit(i);
  };
  for (const d of docs) visit(d);
  return out;
}

/** The documents defining SealedSecret `namespace/name`: those naming the namespace, else those naming none. */
export function manifestDocs(index: ManifestIndex, namespace: string, name: string): Manifest[] {
  return index.exact.get(`${namespace}/${name}`) ?? index.unnamespaced.get(name) ?? [];
}

/** The files defining SealedSecret `namespace/name`, each once. */
export function manifestsFor(index: ManifestIndex, namespace: string, name: string): string[] {
  return [...new Set(manifestDocs(index, namespace, name).map((d) => d.file))];
}

/**
 * The SealedSecret `namespace/name` as git holds it, for an offline unseal
 * without the cluster. A document that names no namespace gets the one asked
 * for (kustomize or `kubectl -n` would set it): the strict and namespace-wide
 * scopes seal to it. Copies with the same sealed data (an overlay repeating
 * the base) count once; different ones are not guessed between.
 */
export function sealedFromManifests(
  index: ManifestIndex,
  namespace: string,
  name: string,
  repo: string,
): SealedFound {
  const docs = manifestDocs(index, namespace, name);
  // The same sealed values under the same scope: key order, templates and
  // labels may differ between copies without changing what they unseal to.
  const sameness = (d: Manifest): string => {
    const a = d.sealed.metadata?.annotations ?? {};
    const data = Object.entries(d.sealed.spec?.encryptedData ?? {}).sort(([x], [y]) =>
      x < y ? -1 : x > y ? 1 : 0,
    );
    return JSON.stringify([data, a[`${ANNO}cluster-wide`], a[`${ANNO}namespace-wide`]]);
  };
  const distinct = new Map<string, Manifest>();
  for (const d of docs) distinct.set(sameness(d), d);
  const [only, ...more] = [...distinct.values()];
  if (only === undefined) {
    return { missing: `SealedSecret ${namespace}/${name} not found under ${repo}` };
  }
  if (more.length > 0) {
    return {
      missing: `SealedSecret ${namespace}/${name} is defined differently in ${[only, ...more].map((d) => d.file).join(', ')} under ${repo}; pass --repo the directory of one environment`,
    };
  }
  return { sealed: { ...only.sealed, metadata: { ...only.sealed.metadata, namespace, name } } };
}
