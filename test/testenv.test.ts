// The sandbox must never outlive its owner: a test runner killed with SIGKILL
// (or Ctrl-C) leaves no server process and no temporary directory behind.
// And one state dir has one owner: a second starter never starts a second set
// of servers on it, `down` stops whatever was started from it, and a failed
// start stops what it started.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { groupAlive, startSandbox } from '../testenv/sandbox.js';
import { projectRoot } from '../testenv/paths.js';
import { tempDir } from './helpers/cli.js';
import { eventually } from './helpers/sandbox.js';

/**
 * Live processes that belong to `dir`: their command line names it or they
 * run in it (OpenBao's dev server has no path argument). Read with ps and
 * /proc, independently of the code under test.
 */
function processesFor(dir: string, exceptGroups: readonly number[] = []): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' });
  const found: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m?.[1] || !m[2] || !m[3] || m[4] === undefined) continue;
    const pid = Number(m[1]);
    if (m[3].startsWith('Z') || exceptGroups.includes(Number(m[2])) || pid === process.pid) {
      continue;
    }
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`).replace(/ \(deleted\)$/, '');
    } catch {
      // gone, or not ours to read
    }
    if (m[4].includes(`${dir}/`) || m[4].includes(`${dir} `) || cwd === dir) {
      found.push(`${pid} ${m[4]}`);
    }
  }
  return found;
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs one of the project's TypeScript entry points as a person would. */
function runTs(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, file), ...args], {
      cwd: projectRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 });
    });
  });
}

// Whatever a failing test leaves in its own temp dirs is stopped here, by
// pid; nothing outside those dirs is touched.
const dirs: string[] = [];
const decoys: ChildProcess[] = [];
afterEach(async () => {
  for (const d of decoys.splice(0)) {
    try {
      process.kill(-(d.pid ?? 0), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of dirs.splice(0)) {
    for (const p of processesFor(dir)) {
      try {
        process.kill(Number(p.split(' ')[0]), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // The temp parent holds the state dir and its lock.
    await rm(dirname(dir), { recursive: true, force: true });
  }
});

async function sandboxDir(): Promise<string> {
  const dir = join(await tempDir('ct-sandbox-dir-'), 'sandbox');
  dirs.push(dir);
  return dir;
}

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
    expect(info.pids).toHaveLength(5);
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

  it('sandbox up, then demo --keep on the same dir, then down: the demo refuses at once and down leaves no server', async () => {
    const dir = await sandboxDir();
    const env = { ...process.env, CLOUDTASER_SANDBOX_DIR: dir };
    const up = await runTs('testenv/cli.ts', ['up', '--no-node'], env);
    expect(up.stderr).not.toMatch(/not ready/);
    expect(up.code).toBe(0);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pids: number[] };
    expect(state.pids).toHaveLength(5);
    expect(state.pids.every(groupAlive)).toBe(true);

    const demo = await runTs('scripts/demo.ts', ['--keep'], env);
    expect(demo.code).toBe(1);
    // One line naming the sandbox that is up and how to stop it, at once:
    // not 30 s spent on an etcd whose data dir the running one holds.
    expect(demo.stderr.trim().split('\n')).toHaveLength(1);
    expect(demo.stderr).toContain(`sandbox is already up in ${dir}`);
    expect(demo.stderr).toContain('npm run sandbox -- down');
    expect(demo.stderr).not.toMatch(/not ready|etcd/);
    // Under 30 s, the time the old demo spent on that etcd alone (most of
    // what is left is loading the Kubernetes client on a busy machine).
    expect(demo.seconds).toBeLessThan(30);
    // The running sandbox is untouched.
    expect(state.pids.every(groupAlive)).toBe(true);
    expect(existsSync(join(dir, 'state.json'))).toBe(true);

    const down = await runTs('testenv/cli.ts', ['down'], env);
    expect(down.code).toBe(0);
    expect(down.stderr).toContain('sandbox stopped');
    expect(down.seconds).toBeLessThan(30);
    expect(state.pids.some(groupAlive)).toBe(false);
    expect(processesFor(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  }, 300_000);

  it('down with no state left stops the servers started from that dir, and nothing else', async () => {
    const dir = await sandboxDir();
    const env = { ...process.env, CLOUDTASER_SANDBOX_DIR: dir };
    expect((await runTs('testenv/cli.ts', ['up', '--no-node'], env)).code).toBe(0);
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pids: number[] };
    // Not a sandbox binary, though it names the dir and runs in it: left alone.
    const decoy = spawn('sh', ['-c', 'sleep 300; :', join(dir, 'decoy')], {
      cwd: dir,
      stdio: 'ignore',
      detached: true,
    });
    decoys.push(decoy);
    // What the old demo's failed start did: the state dir is gone, the servers run on.
    await rm(dir, { recursive: true, force: true });

    const down = await runTs('testenv/cli.ts', ['down'], env);
    expect(down.code).toBe(0);
    expect(down.stderr).toMatch(/stopped 5 sandbox servers left running without state/);
    expect(state.pids.some(groupAlive)).toBe(false);
    expect(processesFor(dir, [decoy.pid ?? 0])).toEqual([]);
    expect(decoy.exitCode).toBeNull();
    expect(decoy.signalCode).toBeNull();
  }, 300_000);

  it('a start that fails halfway (the API server port taken) leaves no process behind', async () => {
    const dir = await sandboxDir();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      await expect(startSandbox({ dir, ports: { apiServer: port } })).rejects.toThrow(
        /kube-apiserver/,
      );
      expect(processesFor(dir)).toEqual([]);
      expect(existsSync(dir)).toBe(false);
    } finally {
      blocker.close();
    }
  }, 300_000);
});
