// Files written whole or not at all.
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UserError } from './errors.js';

/**
 * Writes `content` to `file` so that a crash at any moment leaves either the
 * old file or the new one, never a mix: temp file in the same directory,
 * fsync, rename over the target, fsync the directory. Returns the identity
 * (see fileIdentity) of what it wrote, taken before the rename, so a caller
 * can tell later whether someone changed the file since.
 */
export async function writeFileAtomic(
  file: string,
  content: string,
  o: { mode?: number; display?: string } = {},
): Promise<string> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  // A given mode is the temp file's from its creation, so a file holding a
  // token is never readable by others, not even for a moment; otherwise an
  // existing file keeps its mode.
  let mode = o.mode ?? 0o644;
  if (o.mode === undefined) {
    try {
      mode = (await stat(file)).mode & 0o777;
    } catch {
      // new file
    }
  }
  let written: string;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(content, 'utf8');
      await fh.sync();
      written = fileIdentity(await fh.stat({ bigint: true }));
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT'
        ? 'its directory does not exist'
        : err.code === 'EACCES' || err.code === 'EPERM'
          ? 'permission denied'
          : err.code === 'EROFS'
            ? 'read-only file system'
            : err.code === 'ENOSPC'
              ? 'no space left on device'
              : (err.code ?? err.message);
    throw new UserError(`cannot write ${o.display ?? file}: ${why}`);
  }
  // The rename is durable only once the directory entry is on disk.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename still happened.
  }
  return written;
}

/**
 * What identifies one version of a file without reading it: inode, size and
 * modification time (a rename keeps all three; an edit in place or an
 * editor's own rename changes at least one).
 */
export function fileIdentity(st: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}
