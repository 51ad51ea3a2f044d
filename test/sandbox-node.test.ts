// The test sandbox comes up with the machine's real node, and the node takes
// only the pods that tolerate its taint: a pod that does runs (its log is
// read back through the API server), one that does not stays Pending, as the
// placeholder workloads of the other tests must.
//
// On a machine that cannot run containers the sandbox has no node and these
// tests fail with its one-line reason (requireNode); they are never skipped.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { eventually, kubeConfig, requireNode, sandbox, uniqueName } from './helpers/sandbox.js';

describe('the test sandbox node', () => {
  it('runs a pod that tolerates its taint; a pod that does not stays Pending', async () => {
    const node = requireNode();
    const core = kubeConfig(sandbox()).makeApiClient(CoreV1Api);
    const ns = uniqueName('sbnode');
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const spec = (tolerate: boolean): V1Pod => ({
      metadata: { name: tolerate ? 'runs' : 'waits' },
      spec: {
        hostNetwork: true,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 1,
        ...(tolerate ? { tolerations: [node.toleration] } : {}),
        containers: [
          {
            name: 'app',
            image: node.images.busybox,
            command: [
              'sh',
              '-c',
              'echo on-the-node; trap "exit 0" TERM; while true; do sleep 1; done',
            ],
          },
        ],
      },
    });
    try {
      await core.createNamespacedPod({ namespace: ns, body: spec(true) });
      await core.createNamespacedPod({ namespace: ns, body: spec(false) });
      const running = await eventually(
        'the tolerating pod to run',
        async () => {
          const p = await core.readNamespacedPod({ name: 'runs', namespace: ns });
          return p.status?.phase === 'Running' ? p : undefined;
        },
        60_000,
      );
      expect(running.spec?.nodeName).toBe(node.name);
      const log = await eventually('its log line', async () => {
        const l = await core.readNamespacedPodLog({
          name: 'runs',
          namespace: ns,
          container: 'app',
        });
        return l.includes('on-the-node') ? l : undefined;
      });
      expect(log.trim()).toBe('on-the-node');

      // The scheduler has looked at the other pod and left it unscheduled.
      const waiting = await eventually('the scheduler to refuse the other pod', async () => {
        const p = await core.readNamespacedPod({ name: 'waits', namespace: ns });
        const c = (p.status?.conditions ?? []).find((x) => x.type === 'PodScheduled');
        return c?.status === 'False' ? { p, c } : undefined;
      });
      expect(waiting.c.reason).toBe('Unschedulable');
      expect(waiting.c.message).toContain('untolerated taint');
      expect(waiting.p.status?.phase).toBe('Pending');
      expect(waiting.p.spec?.nodeName).toBeUndefined();
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  });
});
