import type { Writable } from 'node:stream';

/**
 * Everything a command may touch outside its own arguments. Commands never
 * reach for `process` themselves, so tests run them in-process with their own
 * streams, environment and clock.
 */
export interface Context {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: () => Date;
  /** Set by `--debug`: internal errors print their stack. */
  debug: boolean;
  /** Aborted on SIGINT/SIGTERM: long runs stop starting work and save progress. */
  signal?: AbortSignal | undefined;
}

export function processContext(): Context {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    now: () => new Date(),
    debug: false,
  };
}

/** Writes one line to a stream. */
export function say(stream: Writable, line = ''): void {
  stream.write(`${line}\n`);
}

/** RFC 3339 to the second (`2026-04-01T10:00:00Z`), as the guide writes times. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
