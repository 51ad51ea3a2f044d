import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/program.js';
import { captureContext } from '../../src/testing/context.js';
import { projectRoot } from '../../testenv/paths.js';
import { sandbox } from './sandbox.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function tempDir(prefix = 'ct-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Default environment: the sandbox's kubeconfig and OpenBao, nothing else. */
export function sandboxEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const info = sandbox();
  return {
    KUBECONFIG: info.kubeconfig,
    BAO_ADDR: info.baoAddr,
    BAO_TOKEN: info.baoToken,
    USER: 'tester',
    ...extra,
  };
}

/** Runs the CLI in-process against the sandbox. */
export async function cli(
  argv: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; now?: Date } = {},
): Promise<CliResult> {
  const now = opts.now ?? new Date('2026-04-01T10:00:00Z');
  const ctx = captureContext({
    cwd: opts.cwd ?? (await tempDir()),
    env: opts.env ?? sandboxEnv(),
    now: () => now,
  });
  const code = await runCli(argv, ctx);
  return { code, stdout: ctx.out(), stderr: ctx.err() };
}

/** Runs the built CLI as a separate process, as a user would. */
export function cliProcess(
  argv: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(projectRoot, 'dist', 'bin', 'cloudtaser.js'), ...argv],
      {
        cwd: opts.cwd,
        env: { PATH: process.env.PATH, ...(opts.env ?? sandboxEnv()) },
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
