// `target verify-pod` against the shared sandbox, which has no node: the
// cases where there is nothing to inspect, answered before any debug
// container is added. The inspection itself runs in the node tests
// (verify-pod-node.test.ts, runtime-pods.test.ts).
import { describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.js';
import { kubeClients, uniqueName } from './helpers/sandbox.js';

const NS = uniqueName('verifypod');

describe('target verify-pod without a running pod', () => {
  it('says what is missing and adds no debug container', async () => {
    const { core, apps } = kubeClients();
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'api' },
        spec: {
          selector: { matchLabels: { app: 'api' } },
          template: {
            metadata: { labels: { app: 'api' } },
            spec: { containers: [{ name: 'app', image: 'busybox' }] },
          },
        },
      },
    });
    // No node schedules it: it stays Pending.
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: {
          name: 'pending',
          annotations: { 'cloudtaser.io/env-map': 'secret/data/x/db:password=DB_PASS' },
        },
        spec: { containers: [{ name: 'app', image: 'busybox' }] },
      },
    });

    const pending = await cli(['target', 'verify-pod', 'pod/pending', '-n', NS]);
    expect(pending.stderr).toBe(
      `error: container app of pod ${NS}/pending is not running: there is no PID 1 to inspect\n`,
    );
    expect(pending.code).toBe(1);

    const noPods = await cli(['target', 'verify-pod', 'deploy/api', '-n', NS]);
    expect(noPods.stderr).toMatch(
      new RegExp(
        `^error: Deployment ${NS}/api has no running pod \\(\\d+ pod\\(s\\), none Running\\)\\n$`,
      ),
    );
    expect(noPods.code).toBe(1);

    const missing = await cli(['target', 'verify-pod', 'sts/nope', '-n', NS]);
    expect(missing.stderr).toBe(`error: StatefulSet ${NS}/nope not found\n`);
    expect(missing.code).toBe(2);

    const bad = await cli(['target', 'verify-pod', 'job/x', '-n', NS]);
    expect(bad.stderr).toContain('error: cannot read "job/x" as a pod or workload');
    expect(bad.code).toBe(2);

    const badEnv = await cli(['target', 'verify-pod', 'pod/pending', '-n', NS, '--env', 'A-B']);
    expect(badEnv.stderr).toContain('--env wants a variable name, not "A-B"');
    expect(badEnv.code).toBe(2);

    const pod = await core.readNamespacedPod({ name: 'pending', namespace: NS });
    expect(pod.spec?.ephemeralContainers ?? []).toEqual([]);
  });
});
