// Adds one plain closing line, "vitest: N passed, N failed, N skipped", after
// the default reporter's output, so any CI log reader can count the run.
//
// The line must never read "0 failed" on a red run. Vitest marks the tests of
// a file whose beforeAll (or module-level code) failed as skipped, or collects
// none at all, and a failing global setup ends the run with no modules; all of
// those count as failed here, and a parenthesis says why.
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

export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    modules: readonly TestModule[],
    unhandledErrors: readonly SerializedError[],
    reason: TestRunEndReason,
  ): void {
    process.stdout.write(`\n${closingLine(countRun(modules, unhandledErrors, reason))}\n`);
  }
}
