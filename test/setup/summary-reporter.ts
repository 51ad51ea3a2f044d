// Adds one plain closing line, "vitest: N passed, N failed, N skipped", after
// the default reporter's output, so any CI log reader can count the run.
//
// `npm test` makes two vitest runs (test/setup/run-vitest.sh). There each run
// prints "vitest run I/N: ..." for itself and appends its counts to the file
// CLOUDTASER_VITEST_TOTALS names; the last run also prints the one
// "vitest: ..." line, the total of all runs. A run that reported nothing (it
// crashed before its end) counts as one failure in the total.
//
// The line must never read "0 failed" on a red run. Vitest marks the tests of
// a file whose beforeAll (or module-level code) failed as skipped, or collects
// none at all, and a failing global setup ends the run with no modules; all of
// those count as failed here, and a parenthesis says why.
import { appendFileSync, readFileSync } from 'node:fs';
import type { Reporter, SerializedError, TestModule, TestRunEndReason } from 'vitest/node';

export interface RunCounts {
  passed: number;
  failed: number;
  skipped: number;
  /** Why failures appear that no test reported itself: for the parenthesis. */
  notes: string[];
}

export function countRun(
  modules: readonly TestModule[],
  unhandledErrors: readonly SerializedError[],
  reason: TestRunEndReason,
): RunCounts {
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  let notRun = 0;
  let unloaded = 0;
  for (const m of modules) {
    const moduleFailed = !m.ok();
    let failedHere = 0;
    for (const t of m.children.allTests()) {
      const state = t.result().state;
      if (state === 'passed') passed++;
      else if (state === 'failed') {
        failed++;
        failedHere++;
      } else if (moduleFailed && t.options.mode !== 'skip' && t.options.mode !== 'todo') {
        // Meant to run, but a hook or the file itself failed first.
        failed++;
        failedHere++;
        notRun++;
      } else skipped++;
    }
    if (moduleFailed && failedHere === 0) {
      // A file that failed to load, or whose afterAll failed: one failure.
      failed++;
      unloaded++;
    }
  }
  const notes: string[] = [];
  if (notRun > 0) notes.push(`${notRun} not run because a hook or their file failed`);
  if (unloaded > 0) notes.push(`${unloaded} file(s) failed outside any test`);
  if (unhandledErrors.length > 0) {
    notes.push(`${unhandledErrors.length} unhandled error(s)`);
    if (failed === 0) failed = unhandledErrors.length;
  }
  if (reason !== 'passed' && failed === 0) {
    // Nothing ran, or the run was stopped: typically the global setup failed.
    failed = 1;
    notes.push(
      reason === 'interrupted'
        ? 'the run was interrupted'
        : modules.length === 0
          ? 'the run failed before any test ran, e.g. in global setup'
          : 'the run failed',
    );
  }
  return { passed, failed, skipped, notes };
}

export function closingLine(c: RunCounts): string {
  const why = c.notes.length > 0 ? ` (${c.notes.join('; ')})` : '';
  return `vitest: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped${why}`;
}

/** This run's place among several (CLOUDTASER_VITEST_RUN=I/N), with the file they share. */
export interface RunPart {
  file: string;
  index: number;
  count: number;
}

export function runPart(env: NodeJS.ProcessEnv): RunPart | undefined {
  const file = env.CLOUDTASER_VITEST_TOTALS;
  const m = /^(\d+)\/(\d+)$/.exec(env.CLOUDTASER_VITEST_RUN ?? '');
  if (!file || !m) return undefined;
  const index = Number(m[1]);
  const count = Number(m[2]);
  return index >= 1 && index <= count ? { file, index, count } : undefined;
}

/** The total over every run's entry in the shared file, counting a missing run as failed. */
export function totalOf(entries: readonly (RunCounts & { index: number })[], count: number) {
  const total: RunCounts = { passed: 0, failed: 0, skipped: 0, notes: [] };
  for (let i = 1; i <= count; i++) {
    const e = entries.find((x) => x.index === i);
    if (!e) {
      total.failed++;
      total.notes.push(`run ${i}/${count} reported nothing`);
      continue;
    }
    total.passed += e.passed;
    total.failed += e.failed;
    total.skipped += e.skipped;
    total.notes.push(...e.notes.map((n) => `run ${i}/${count}: ${n}`));
  }
  return total;
}

/** The lines one run prints: its own, and for the last of several the total. */
export function closingLines(c: RunCounts, part: RunPart | undefined): string[] {
  if (!part) return [closingLine(c)];
  appendFileSync(part.file, `${JSON.stringify({ ...c, index: part.index })}\n`);
  const own = closingLine(c).replace(/^vitest:/, `vitest run ${part.index}/${part.count}:`);
  if (part.index < part.count) return [own];
  const entries = readFileSync(part.file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RunCounts & { index: number });
  return [own, closingLine(totalOf(entries, part.count))];
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    modules: readonly TestModule[],
    unhandledErrors: readonly SerializedError[],
    reason: TestRunEndReason,
  ): void {
    const lines = closingLines(countRun(modules, unhandledErrors, reason), runPart(process.env));
    process.stdout.write(`\n${lines.join('\n')}\n`);
  }
}
