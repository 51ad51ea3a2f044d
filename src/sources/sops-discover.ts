// `target discover --from sops --path DIR`: which workloads' Secrets come
// from SOPS-encrypted manifests in DIR. Matching is by namespace/name, read
// from cleartext metadata; a document whose metadata is encrypted too is
// decrypted only when the user asks (--decrypt-metadata), and then only its
// kind, name, namespace and key names are kept.
import { resolve } from 'node:path';
import type { Context } from '../core/context.js';
import type { SecretKeys } from '../contract/workload.js';
import type { MigrationPlan } from '../plan/schema.js';
import { scanSopsDir, SopsFailed, sopsDecrypt, type SopsRunner } from './sops-io.js';
import {
  classifyDocument,
  parseManifests,
  sopsSource,
  sourceableFile,
  type SopsDoc,
} from './sops.js';

export interface SopsDiscoverOptions {
  path: string;
  namespace?: string | undefined;
  decryptMetadata: boolean;
  sopsBinary: string;
}

export interface SopsMatches {
  /** `namespace/name` → the one encrypted document that holds that Secret. */
  bySecret: Map<string, SopsDoc>;
  /** Lines for the person running discover: names and files only. */
  lines: string[];
}

const at = (d: SopsDoc): string => `${d.file}#${d.index}`;

/**
 * Pure: decides which documents can stand for which Secret. A Secret in
 * clear is reported and never used, two documents for one Secret leave it
 * to the reviewer, and a document whose namespace is not written in it
 * belongs to `-n NAMESPACE` when given (as `kubectl apply -n` would put it).
 */
export function matchSopsDocs(docs: readonly SopsDoc[], namespace?: string): SopsMatches {
  const lines: string[] = [];
  const found = new Map<string, SopsDoc[]>();
  for (const d of docs) {
    const ns = d.namespace ?? namespace;
    const shown = `Secret ${ns ?? '?'}/${d.name ?? '?'}`;
    if (!d.encrypted) {
      lines.push(
        `warning: ${at(d)}: ${shown} is not SOPS-encrypted (its values are in the repository in clear); not used as a source`,
      );
      continue;
    }
    if (d.metadataEncrypted) {
      lines.push(
        `${at(d)}: kind, name or namespace is encrypted; pass --decrypt-metadata to decrypt it with your sops keys and match it`,
      );
      continue;
    }
    if (d.name === undefined) {
      lines.push(`${at(d)}: the Secret has no metadata.name; skipped`);
      continue;
    }
    if (ns === undefined) {
      lines.push(
        `${at(d)}: Secret ${d.name} has no metadata.namespace; pass -n NAMESPACE to match it there`,
      );
      continue;
    }
    if (namespace !== undefined && ns !== namespace) continue;
    if (!sourceableFile(d.file)) {
      lines.push(
        `${at(d)}: ${shown}: a plan source cannot name this file (letters, digits, "_", ".", "+", "@", "-" only); rename it`,
      );
      continue;
    }
    if (d.clearKeys.length > 0) {
      lines.push(
        `warning: ${at(d)}: ${shown}: key(s) ${d.clearKeys.join(', ')} are not encrypted (check the file's encrypted_regex)`,
      );
    }
    const key = `${ns}/${d.name}`;
    found.set(key, [...(found.get(key) ?? []), { ...d, namespace: ns }]);
  }
  const bySecret = new Map<string, SopsDoc>();
  for (const [key, list] of found) {
    const [first] = list;
    if (list.length === 1 && first) bySecret.set(key, first);
    else
      lines.push(
        `Secret ${key} is in ${list.map(at).join(' and ')}; neither is used (keep one, or edit the plan's source by hand)`,
      );
  }
  return { bySecret, lines };
}

/**
 * Replaces each matched Secret's key names in the discover input with the
 * document's (the plan must map what import can fill), adding Secrets the
 * cluster does not hold yet.
 */
export function withSopsKeys(secrets: readonly SecretKeys[], m: SopsMatches): SecretKeys[] {
  const out = new Map(secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  for (const [key, d] of m.bySecret) {
    const prev = out.get(key);
    out.set(key, {
      namespace: d.namespace ?? '',
      name: d.name ?? '',
      type: prev?.type ?? 'Opaque',
      keys: d.keys,
    });
  }
  return [...out.values()];
}

/** Points each plan source read from a matched Secret at its SOPS document; says what matched. */
export function applySopsSources(plan: MigrationPlan, m: SopsMatches): string[] {
  const used = new Set<string>();
  let refs = 0;
  for (const t of plan.tenants) {
    for (const w of t.workloads) {
      for (const s of w.secrets) {
        if (!s.source.startsWith('k8s-secret/')) continue;
        const key = `${t.namespace}/${s.source.slice('k8s-secret/'.length)}`;
        const d = m.bySecret.get(key);
        if (!d) continue;
        s.source = sopsSource(d.file, d.index);
        used.add(key);
        refs++;
      }
    }
  }
  const lines = [
    `SOPS: ${m.bySecret.size} encrypted Secret(s) found, ${used.size} read by workloads (${refs} plan source(s) now sops/<file>#<doc>).`,
  ];
  for (const [key, d] of [...m.bySecret].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (!used.has(key)) lines.push(`  ${at(d)}: Secret ${key}: no scanned workload reads it`);
  }
  return lines;
}

/**
 * Reads the directory; with --decrypt-metadata, decrypts the files whose
 * documents hide their kind or metadata, keeping only names.
 */
export async function readSopsDir(o: SopsDiscoverOptions, ctx: Context): Promise<SopsMatches> {
  const root = resolve(ctx.cwd, o.path);
  const scan = await scanSopsDir(root, o.path);
  const lines = [...scan.problems];
  let docs = scan.docs;
  if (o.decryptMetadata) {
    const runner: SopsRunner = { binary: o.sopsBinary, ctx };
    const hidden = [
      ...new Set(docs.filter((d) => d.encrypted && d.metadataEncrypted).map((d) => d.file)),
    ];
    const opened = new Map<string, SopsDoc[]>();
    for (const file of hidden) {
      try {
        const plain = await sopsDecrypt(
          runner,
          resolve(root, file),
          /\.json$/i.test(file) ? 'json' : 'yaml',
        );
        const parsed = parseManifests(plain.toString('utf8'), file);
        plain.fill(0);
        if ('error' in parsed) throw new SopsFailed(`sops printed ${parsed.error}`);
        // Only names survive: classifyDocument keeps kind, metadata and key names.
        const list: SopsDoc[] = [];
        parsed.docs.forEach((d, i) => {
          const c = classifyDocument(d, file, i);
          if (c) list.push(c);
        });
        opened.set(file, list);
      } catch (e) {
        if (!(e instanceof SopsFailed)) throw e;
        lines.push(`${file}: cannot decrypt its metadata: ${e.reason}`);
      }
    }
    docs = docs.flatMap((d) => {
      if (!d.encrypted || !d.metadataEncrypted || !opened.has(d.file)) return [d];
      const plain = opened.get(d.file)?.find((p) => p.index === d.index);
      // Decrypted and not a Secret: nothing to match.
      if (!plain) return [];
      // Encryption facts come from the file as stored; names from the decryption.
      return [{ ...plain, encrypted: true, metadataEncrypted: false, clearKeys: d.clearKeys }];
    });
  }
  const m = matchSopsDocs(docs, o.namespace);
  return { bySecret: m.bySecret, lines: [...lines, ...m.lines] };
}
