import { PassThrough } from 'node:stream';
import type { Context } from '../core/context.js';

export interface CapturedContext extends Context {
  out: () => string;
  err: () => string;
}

/** A Context whose streams are captured, for in-process command tests. */
export function captureContext(overrides: Partial<Context> = {}): CapturedContext {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => (out += b.toString()));
  stderr.on('data', (b: Buffer) => (err += b.toString()));
  const stdin = new PassThrough();
  return {
    stdout,
    stderr,
    stdin,
    env: {},
    cwd: process.cwd(),
    now: () => new Date('2026-04-01T10:00:00Z'),
    debug: false,
    ...overrides,
    out: () => out,
    err: () => err,
  };
}
