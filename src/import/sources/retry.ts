// One retry rule for every source: a throttled or briefly unavailable
// provider is asked again after a jittered, doubling pause (100 ms up to
// 2 s), at most `attempts` times in all, so a run never hangs on a provider
// that keeps refusing; the last refusal is then reported for the path.
import { pause } from '../../core/context.js';

export const RETRY_ATTEMPTS = 7;

function backoff(attempt: number, signal?: AbortSignal): Promise<void> {
  const ms = Math.min(2000, 100 * 2 ** attempt) * (0.5 + Math.random() * 0.5);
  return pause(ms, signal);
}

/**
 * Calls `fn` until it succeeds, fails with an error `retryable` rejects, or
 * has been tried RETRY_ATTEMPTS times (then its last error is thrown).
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  retryable: (e: unknown) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt + 1 >= RETRY_ATTEMPTS || !retryable(e) || signal?.aborted) throw e;
      await backoff(attempt, signal);
    }
  }
}
