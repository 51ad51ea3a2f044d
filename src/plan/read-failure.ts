// Why a file could not be read, in words: shared by the plan reader and the
// signature commands, so a missing plan, key or signature reads the same.

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
