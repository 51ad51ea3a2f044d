// The Kubernetes manifests kept in a git checkout: SOPS-encrypted Secrets
// (`discover --from sops --path`) and SealedSecrets (`cleanup --repo`,
// `import --sealing-key --repo`). One walk with one set of rules for both.
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { UserError } from '../core/errors.js';

/** The file names Kubernetes manifests have; also what sops reads as structured data (anything else it treats as binary). */
export const MANIFEST_EXT = /\.(ya?ml|json)$/i;

/** Vendored trees: other projects' files, never this repo's manifests. */
const SKIPPED_DIRS = new Set(['node_modules', 'vendor']);

/**
 * Manifest files under `root`, relative with `/`, sorted. Hidden entries
 * (.git, .github, .sops.yaml) and vendored trees are skipped; a directory
 * below the root that cannot be read is listed in `unreadable` for the
 * caller to report, while a root that cannot be read is the user's mistake
 * and says so, naming `flag`.
 */
export async function manifestFiles(
  root: string,
  flag: string,
  display: string,
): Promise<{ files: string[]; unreadable: string[] }> {
  const out: string[] = [];
  const unreadable: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (dir !== root) {
        unreadable.push(`${relative(root, dir).split(sep).join('/')}/`);
        return;
      }
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError(
        `${flag} ${display}: ${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : 'cannot be read'}`,
      );
    }
    for (const e of entries) {
      if (e.name.startsWith('.') || (e.isDirectory() && SKIPPED_DIRS.has(e.name))) continue;
      const full = join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile() && MANIFEST_EXT.test(e.name)) {
        out.push(relative(root, full).split(sep).join('/'));
      }
    }
  };
  await walk(root);
  return { files: out.sort(), unreadable: unreadable.sort() };
}
