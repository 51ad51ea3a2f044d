#!/usr/bin/env node
// The only place that ends the process.
import { runCli } from '../cli/program.js';
import { processContext } from '../core/context.js';

const ctx = processContext();
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
