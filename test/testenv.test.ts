// The sandbox must never outlive its owner: a test runner killed with SIGKILL
// (or Ctrl-C) leaves no server process and no temporary directory behind.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupAlive } from '../testenv/sandbox.js';
import { projectRoot } from '../testenv/paths.js';
import { eventually } from './helpers/sandbox.js';

describe('testenv', () => {
  it('stops every server and removes its directory when the owner is SIGKILLed', async () => {
    // `node --import tsx`, not the tsx launcher: the process killed must be
    // the owner itself, as a test runner would be.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(projectRoot, 'test', 'fixtures', 'sandbox-owner.ts')],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const info = await eventually(
      'the child sandbox to come up',
      () => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        return Promise.resolve(
          line ? (JSON.parse(line) as { dir: string; pids: number[] }) : undefined,
        );
      },
      120_000,
    );
    expect(info.pids).toHaveLength(4);
    expect(info.pids.every(groupAlive)).toBe(true);
    expect(existsSync(info.dir)).toBe(true);

    child.kill('SIGKILL');

    await eventually(
      'the servers to stop',
      () => Promise.resolve(info.pids.some(groupAlive) ? undefined : true),
      15_000,
    );
    await eventually(
      'the directory to go',
      () => Promise.resolve(existsSync(info.dir) ? undefined : true),
      15_000,
    );
  });
});
