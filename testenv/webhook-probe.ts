// Waits until the API server really calls an admission webhook that was just
// registered: the configuration takes effect asynchronously, so a fixed sleep
// either wastes time or is too short on a loaded machine. Shared by the tests
// and the demo.
import type { CoreV1Api } from '@kubernetes/client-node';

/**
 * Polls with a server-side dry run of a pod annotated for injection but
 * without its settings, which the cloudtaser webhook (and only it) refuses
 * with a message naming cloudtaser; nothing is stored.
 */
export async function waitForWebhook(
  core: CoreV1Api,
  namespace: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await core.createNamespacedPod({
        namespace,
        dryRun: 'All',
        body: {
          metadata: {
            generateName: 'webhook-probe-',
            annotations: { 'cloudtaser.io/inject': 'true' },
          },
          spec: { containers: [{ name: 'probe', image: 'probe:1', command: ['true'] }] },
        },
      });
    } catch (e) {
      if (String((e as { body?: unknown }).body).includes('cloudtaser')) return;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for the API server to call the webhook in ${namespace}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
