import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { deadline } from './deadline.js';
import { requestSignal } from './context.js';

// A full collection on demand, without starting the test runner with --expose-gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const until = (signal: AbortSignal, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (signal.aborted) {
      resolve(true);
      return;
    }
    const t = setTimeout(() => {
      resolve(signal.aborted);
    }, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

describe('deadline', () => {
  it('fires after a garbage collection, with a parent signal that never aborts', async () => {
    const parent = new AbortController();
    const d = deadline(100, parent.signal);
    gc();
    await new Promise((r) => setTimeout(r, 20));
    gc();
    expect(await until(d.signal, 2000)).toBe(true);
    expect(d.timedOut()).toBe(true);
    expect((d.signal.reason as DOMException).name).toBe('TimeoutError');
  });

  it('the request signal of a command with an interrupt signal fires after a collection', async () => {
    const interrupt = new AbortController();
    const r = requestSignal({ signal: interrupt.signal, requestTimeoutMs: 100 });
    gc();
    await new Promise((res) => setTimeout(res, 20));
    gc();
    expect(r.signal && (await until(r.signal, 2000))).toBe(true);
  });

  it('passes the parent abort and its reason on at once, and is not a timeout', () => {
    const parent = new AbortController();
    const d = deadline(60_000, parent.signal);
    parent.abort(new Error('interrupted'));
    expect(d.signal.aborted).toBe(true);
    expect((d.signal.reason as Error).message).toBe('interrupted');
    expect(d.timedOut()).toBe(false);
  });

  it('after dispose, neither the limit nor the parent aborts it', async () => {
    const parent = new AbortController();
    const d = deadline(30, parent.signal);
    d.dispose();
    await new Promise((r) => setTimeout(r, 80));
    parent.abort();
    expect(d.signal.aborted).toBe(false);
  });

  it('is aborted from the start when the parent already is', () => {
    const parent = new AbortController();
    parent.abort();
    expect(deadline(60_000, parent.signal).signal.aborted).toBe(true);
  });
});
