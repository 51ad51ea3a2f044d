// The closing line must never say "0 failed" on a red run. Runs vitest as a
// child process on a tiny fixture project (a passing file, a file whose
// beforeAll fails, a file that fails while loading) and reads its last line.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../testenv/paths.js';

interface Run {
  code: number;
  closing: string;
  output: string;
}

function runFixture(env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const config = join(projectRoot, 'test', 'fixtures', 'reporter', 'vitest.config.ts');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(projectRoot, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', config],
      {
        cwd: projectRoot,
        env: { PATH: process.env.PATH, NO_COLOR: '1', ...env },
        timeout: 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        const closing =
          stdout
            .split('\n')
            .filter((l) => l.startsWith('vitest: '))
            .at(-1) ?? '';
        resolve({ code, closing, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

const CLOSING = /^vitest: (\d+) passed, (\d+) failed, (\d+) skipped(?: \(.*\))?$/;

function counts(line: string): { passed: number; failed: number; skipped: number } {
  const m = CLOSING.exec(line);
  if (!m) throw new Error(`not a closing line: ${JSON.stringify(line)}`);
  return { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
}

describe('summary reporter', () => {
  it('counts tests of a file whose beforeAll failed, and a file that failed to load, as failed', async () => {
    const run = await runFixture();
    expect(run.code, run.output).not.toBe(0);
    // 2 passed; 3 tests behind the failed hook + 1 file that never loaded;
    // only the test skipped on purpose stays skipped.
    expect(counts(run.closing)).toEqual({ passed: 2, failed: 4, skipped: 1 });
  }, 90_000);

  it('reports a failed run when the global setup fails before any test ran', async () => {
    const run = await runFixture({ FIXTURE_GLOBAL_SETUP: '1' });
    expect(run.code, run.output).not.toBe(0);
    const { passed, failed } = counts(run.closing);
    expect(passed).toBe(0);
    expect(failed).toBeGreaterThan(0);
    expect(run.closing).toMatch(/global setup|before any test/);
  }, 90_000);

  it('with two runs (npm test), prints each run as its own and the total as the closing line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-reporter-'));
    try {
      const file = join(dir, 'totals');
      const env = { CLOUDTASER_VITEST_TOTALS: file };
      const first = await runFixture({ ...env, CLOUDTASER_VITEST_RUN: '1/2' });
      expect(first.output).toMatch(/^vitest run 1\/2: 2 passed, 4 failed, 1 skipped/m);
      // Not the last run: no total yet, and no line a log reader takes for one.
      expect(first.closing).toBe('');
      const second = await runFixture({ ...env, CLOUDTASER_VITEST_RUN: '2/2' });
      expect(second.output).toMatch(/^vitest run 2\/2: 2 passed, 4 failed, 1 skipped/m);
      expect(counts(second.closing)).toEqual({ passed: 4, failed: 8, skipped: 2 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('counts an earlier run that reported nothing as a failure in the total', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-reporter-'));
    try {
      const run = await runFixture({
        CLOUDTASER_VITEST_TOTALS: join(dir, 'totals'),
        CLOUDTASER_VITEST_RUN: '2/2',
      });
      expect(counts(run.closing)).toEqual({ passed: 2, failed: 5, skipped: 1 });
      expect(run.closing).toContain('run 1/2 reported nothing');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
