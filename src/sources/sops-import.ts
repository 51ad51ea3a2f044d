// `target import --from sops`: the plan's `sops/<file>#<doc>` sources,
// decrypted by the user's `sops` binary into memory and handed to import's
// pure planning (src/import/plan.ts) as Secrets. A document that is not
// SOPS-encrypted is refused before anything runs: values kept in clear are
// never imported as if they had been protected.
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { MigrationPlan } from '../plan/schema.js';
import {
  collectWantedPaths,
  secretKey,
  type FieldOrigin,
  type PlanSecretOrigin,
  type SourceSecret,
  type WantedPath,
} from '../import/plan.js';
import { SopsFailed, sopsDecrypt, type SopsRunner } from './sops-io.js';
import {
  hasSopsMetadata,
  parseManifests,
  parseSopsSource,
  secretValues,
  SOPS_PREFIX,
} from './sops.js';

/**
 * A SOPS document as an import origin. `namespace: 'sops'` and the
 * `<file>#<doc>` as the Secret name make import's Secret key the plan
 * source itself, so every message names the file and document.
 */
const ORIGIN_NS = 'sops';

/**
 * Every vault path the plan maps, with its fields' origins in SOPS
 * documents. Vault Agent sources are skipped as for --from kubernetes; a
 * Kubernetes Secret source is not filled by this import and says so.
 */
export function sopsWantedPaths(plan: MigrationPlan): WantedPath[] {
  return collectWantedPaths(
    plan,
    (s): PlanSecretOrigin => {
      if (s.source.startsWith('vault-agent/')) return { kind: 'vault' };
      if (!s.source.startsWith(SOPS_PREFIX)) {
        return {
          kind: 'conflict',
          message: `source ${s.source} is not a SOPS file; import it with its own --from`,
        };
      }
      return { kind: 'secret', namespace: ORIGIN_NS, secret: s.source.slice(SOPS_PREFIX.length) };
    },
    (o) => `${SOPS_PREFIX}${o.secret}`,
  );
}

export interface SopsImportOptions {
  /** The directory the plan's source file names are relative to. */
  root: string;
  display: string;
  runner: SopsRunner;
}

/**
 * Reads the documents the origins name, one `sops decrypt` per file. Every
 * failure is the reason of the paths that need that document (the file
 * named, sops's own reason, never a value); only a missing `sops` binary
 * stops the run.
 */
export async function readSopsSecrets(
  origins: readonly FieldOrigin[],
  o: SopsImportOptions,
): Promise<Map<string, SourceSecret>> {
  const out = new Map<string, SourceSecret>();
  const byFile = new Map<string, { key: string; index: number }[]>();
  for (const origin of origins) {
    const key = secretKey(origin);
    const src = parseSopsSource(`${SOPS_PREFIX}${origin.secret}`);
    if (!src) {
      out.set(key, {
        kind: 'missing',
        reason: `${SOPS_PREFIX}${origin.secret} is not a sops/<file>#<doc> source`,
      });
      continue;
    }
    byFile.set(src.file, [...(byFile.get(src.file) ?? []), { key, index: src.index }]);
  }
  for (const [file, docs] of byFile) {
    const fail = (reason: string): void => {
      for (const d of docs) out.set(d.key, { kind: 'missing', reason });
    };
    const shown = `${o.display.replace(/\/+$/, '')}/${file}`;
    const abs = resolve(o.root, file);
    const rel = relative(o.root, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      fail(`${shown} is outside the --path directory`);
      continue;
    }
    let text: string;
    try {
      text = await readFile(abs, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      fail(
        `${shown}: ${code === 'ENOENT' ? 'no such file (is --path the directory discover scanned?)' : 'cannot be read'}`,
      );
      continue;
    }
    const stored = parseManifests(text, file);
    if ('error' in stored) {
      fail(`${shown}: ${stored.error}`);
      continue;
    }
    // Refused before sops runs: sops would print a document without
    // metadata as it is, and values kept in clear would pass for protected.
    const encrypted = docs.filter((d) => {
      const doc = stored.docs[d.index];
      if (doc === undefined) {
        out.set(d.key, { kind: 'missing', reason: `${shown} has no document #${d.index}` });
        return false;
      }
      if (!hasSopsMetadata(doc)) {
        out.set(d.key, {
          kind: 'missing',
          reason: `${shown} document #${d.index} is not SOPS-encrypted; refusing to import values kept in clear (encrypt it with sops first)`,
        });
        return false;
      }
      return true;
    });
    if (encrypted.length === 0) continue;
    let plain: Buffer;
    try {
      plain = await sopsDecrypt(o.runner, abs, /\.json$/i.test(file) ? 'json' : 'yaml');
    } catch (e) {
      if (!(e instanceof SopsFailed)) throw e;
      for (const d of encrypted)
        out.set(d.key, { kind: 'missing', reason: `${shown}: cannot decrypt: ${e.reason}` });
      continue;
    }
    const parsed = parseManifests(plain.toString('utf8'), file);
    plain.fill(0);
    if ('error' in parsed || parsed.docs.length !== stored.docs.length) {
      for (const d of encrypted) {
        out.set(d.key, {
          kind: 'missing',
          reason: `${shown}: sops's output does not have the file's ${stored.docs.length} document(s)`,
        });
      }
      continue;
    }
    for (const d of encrypted) {
      const values = secretValues(parsed.docs[d.index]);
      out.set(
        d.key,
        'reason' in values
          ? { kind: 'missing', reason: `${shown} document #${d.index}: ${values.reason}` }
          : { kind: 'found', data: values.data },
      );
    }
  }
  return out;
}
