// Why a file could not be read, in words: shared by the plan reader, the
// signature commands, the fingerprint file and --sealing-key, so a missing
// plan, key, signature or fingerprint file reads the same.

/** The reason part of "cannot read <what> <file>: <reason>". */
export function readFailureReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? 'no such file'
    : code === 'EACCES'
      ? 'permission denied'
      : code === 'EISDIR'
        ? 'it is a directory'
        : (code ?? 'unreadable');
}
