// Shared by the test files that start a sandbox with a real node.
import { join } from 'node:path';
import { withLock } from '../../testenv/lock.js';
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
    fn,
  );
}
