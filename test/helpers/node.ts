// Shared by the test files that start a sandbox with a real node.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheRoot } from '../../testenv/paths.js';

/**
 * One node test at a time on the machine: the before/after snapshots would
 * see another run's node. (Node starts themselves already wait on the
 * node lock; this covers the snapshots around them.)
 */
export async function withNodeTestLock<T>(fn: () => Promise<T>): Promise<T> {
  const lock = join(cacheRoot(), 'node-tests.lock');
  await mkdir(cacheRoot(), { recursive: true });
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      const owner = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => '0'));
      let alive = false;
      try {
        process.kill(owner, 0);
        alive = owner > 0;
      } catch {
        alive = false;
      }
      // A lock just made has no pid yet: give its maker a moment.
      if (!alive && owner > 0) await rm(lock, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`node tests: ${lock} held for 20 min`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
