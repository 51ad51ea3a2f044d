import type { Writable } from 'node:stream';
import { deadline } from './deadline.js';

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
  /**
   * Limit for one request to a server (`--request-timeout`); 0 means none.
   * Undefined leaves the default, DEFAULT_REQUEST_TIMEOUT_MS.
   */
  requestTimeoutMs?: number | undefined;
}

/** kubectl has no default limit; a migration tool that hangs forever is worse than one that says so. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * The signal for one request: aborted by an interrupt or when the request
 * has run longer than the context's limit, whichever comes first. `dispose`
 * ends it when the request is over (see deadline.ts for why not
 * AbortSignal.timeout).
 */
export function requestSignal(ctx: Pick<Context, 'signal' | 'requestTimeoutMs'>): {
  signal: AbortSignal | undefined;
  timeoutMs: number;
  dispose: () => void;
} {
  const timeoutMs = ctx.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (timeoutMs <= 0) return { signal: ctx.signal, timeoutMs, dispose: () => undefined };
  const d = deadline(timeoutMs, ctx.signal);
  return { signal: d.signal, timeoutMs, dispose: d.dispose };
}

/**
 * Waits `ms`, or less when the signal aborts first (never rejects): wait
 * loops poll with this so Ctrl-C stops them at once.
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
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
