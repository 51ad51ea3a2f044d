#!/usr/bin/env node
// The only place that ends the process.
import { setMaxListeners } from 'node:events';
import { runCli } from '../cli/program.js';
import { processContext } from '../core/context.js';

const ctx = processContext();
// First Ctrl-C: let long runs finish the workload in hand and save progress.
// Second: stop at once (progress is journaled, so a re-run still resumes).
const interrupt = new AbortController();
// Every request in flight listens on it (core/deadline.ts adds one listener
// and removes it when the request ends): at --concurrency 16 that is more
// than Node's leak-warning threshold of 10, which would print a warning
// into the user's output although nothing leaks.
setMaxListeners(0, interrupt.signal);
ctx.signal = interrupt.signal;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupt.signal.aborted) process.exit(130);
    if (sig === 'SIGINT') {
      process.stderr.write(
        '\ninterrupted: finishing the current step; press Ctrl-C again to stop now\n',
      );
    }
    interrupt.abort();
  });
}
runCli(process.argv.slice(2), ctx).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // runCli reports every error itself; reaching here is a bug in it.
    process.stderr.write(`internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 70;
  },
);
