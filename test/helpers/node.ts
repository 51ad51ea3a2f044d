// Shared by the test files that start a sandbox with a real node.
import { join } from 'node:path';
import { withLock } from '../../testenv/lock.js';
import { nodeLockOwner } from '../../testenv/node.js';
import { cacheRoot } from '../../testenv/paths.js';

/**
 * One node test at a time on the machine: the before/after snapshots would
 * see another run's node. (Node starts themselves already wait on the
 * node lock; this covers the snapshots around them.)
 */
export function withNodeTestLock<T>(fn: () => Promise<T>): Promise<T> {
  const lock = join(cacheRoot(), 'node-tests.lock');
  return withLock(
    lock,
    {
      timeoutMs: 20 * 60_000,
      pollMs: 1000,
      waiting: () => undefined,
      stuck: () => new Error(`node tests: ${lock} held for 20 min`),
    },
    async () => {
      // A test run's global sandbox holds a node for the whole run without
      // this lock: wait until no node runs, so the snapshot before is clean.
      const deadline = Date.now() + 20 * 60_000;
      while (nodeLockOwner() !== 0) {
        if (Date.now() > deadline) throw new Error('node tests: another node ran for 20 min');
        await new Promise((r) => setTimeout(r, 1000));
      }
      return fn();
    },
  );
}
