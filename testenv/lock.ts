// Directory locks between processes on this machine: a build cache entry, a
// sandbox state dir, the one node a machine can run. The lock is a directory
// holding its owner's pid, written aside and renamed into place so that a
// lock never exists without its pid; a lock whose owner died is taken over.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid recorded in a lock directory, or 0 when there is none. */
export function lockOwner(lock: string): number {
  try {
    return Number(readFileSync(join(lock, 'pid'), 'utf8')) || 0;
  } catch {
    return 0;
  }
}

export interface LockWait {
  /** How long to wait for a live owner before `stuck`. */
  timeoutMs: number;
  pollMs: number;
  /** Told once per owner that is waited for. */
  waiting(owner: number): void;
  /** The error thrown once timeoutMs has passed. */
  stuck(owner: number): Error;
  /** Clean-up for what a dead owner may have left, before its lock is taken over. */
  stale?(lock: string): Promise<void>;
}

/** Takes the lock directory `lock`, waiting while a live process holds it. */
export async function acquireLock(lock: string, o: LockWait): Promise<void> {
  await mkdir(dirname(lock), { recursive: true });
  const deadline = Date.now() + o.timeoutMs;
  let told = 0;
  for (;;) {
    const tmp = await mkdtemp(`${lock}.new-`);
    await writeFile(join(tmp, 'pid'), String(process.pid));
    try {
      await rename(tmp, lock);
      return;
    } catch {
      await rm(tmp, { recursive: true, force: true });
    }
    const owner = lockOwner(lock);
    if (!owner || !pidAlive(owner)) {
      await o.stale?.(lock);
      await rm(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw o.stuck(owner);
    if (told !== owner) {
      o.waiting(owner);
      told = owner;
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}

/** Runs `fn` holding `lock`, and frees it afterwards. */
export async function withLock<T>(lock: string, o: LockWait, fn: () => Promise<T>): Promise<T> {
  await acquireLock(lock, o);
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}
