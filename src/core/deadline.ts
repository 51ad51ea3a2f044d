// A time limit for one request, as an AbortSignal.
//
// Why not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 the
// timer behind AbortSignal.timeout holds its signal weakly, and a composite
// from AbortSignal.any holds its sources weakly too. Once a garbage collection
// runs, nothing keeps the timeout signal alive, it is collected, and the
// composite never aborts: a request to a server that stopped answering then
// hangs forever instead of failing after `ms` (seen as a CLI that never exited
// on a loaded machine). Here the timer's callback holds the controller, so the
// deadline fires whatever the collector does.

export interface Deadline {
  /** Aborted when the limit passes (reason: a TimeoutError) or the parent aborts (its reason). */
  signal: AbortSignal;
  /** True when it was the limit, not the parent, that aborted the signal. */
  timedOut(): boolean;
  /** Stops the timer and lets go of the parent; call it when the request is over. */
  dispose: () => void;
}

export function deadline(ms: number, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  const onParent = (): void => {
    dispose();
    controller.abort(parent?.reason);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    dispose();
    controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError'));
  }, ms);
  // A request in flight keeps the process alive by its socket; a deadline
  // left behind by a finished one must not.
  timer.unref();
  function dispose(): void {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParent);
  }
  if (parent?.aborted) onParent();
  else parent?.addEventListener('abort', onParent, { once: true });
  return { signal: controller.signal, timedOut: () => timedOut, dispose };
}
