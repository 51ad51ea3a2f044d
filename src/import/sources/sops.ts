// `--from sops`: the plan's `sops/<file>#<doc>` sources, decrypted by the
// user's `sops` into memory (src/sources/sops-import.ts), one run per file
// for all the documents it holds.
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { readSopsSecrets, sopsWantedPaths } from '../../sources/sops-import.js';
import { secretKey } from '../plan.js';
import type { ImportSource } from './source.js';

export function sopsSource(o: { path: string; binary: string }, ctx: Context): ImportSource {
  const opts = { root: resolve(ctx.cwd, o.path), display: o.path };
  return {
    description: `SOPS files under ${o.path}`,
    nameOf: secretKey,
    wanted: sopsWantedPaths,
    read: async (name, origin) =>
      (await readSopsSecrets([origin], { ...opts, runner: { binary: o.binary, ctx } })).get(
        name,
      ) ?? { kind: 'missing', reason: `${name} was not read` },
    readAll: (origins) =>
      readSopsSecrets(
        origins.map(([, origin]) => origin),
        { ...opts, runner: { binary: o.binary, ctx } },
      ),
    close: () => undefined,
  };
}
