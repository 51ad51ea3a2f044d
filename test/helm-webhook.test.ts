// The webhook installed with the Helm chart and running as a pod on the
// sandbox's node (its image built here without Docker, pulled from the
// sandbox registry): annotated pods created afterwards are injected through
// it and run; `helm upgrade` rolls it while pods keep being created, none
// refused; `helm uninstall` takes the webhook configuration away before the
// webhook's pod goes.
//
// The chart's webhook is limited to namespaces labelled for this file
// (webhook.namespaceLabels), so tests sharing the sandbox are not sent to it.
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  type CoreV1Api,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART_DIR, installSandboxChart, type SandboxChart } from '../testenv/helm.js';
import type { SandboxInfo } from '../testenv/sandbox.js';
import { tempDir } from './helpers/cli.js';
import {
  acquirePodSandbox,
  clientsFor,
  createVaultCaConfigMap,
  describePod,
  isRunning,
  type PodSandbox,
} from './helpers/pods.js';
import { bao, eventually, uniqueName } from './helpers/sandbox.js';
import { waitForWebhook } from '../testenv/webhook-probe.js';

const RELEASE_NS = uniqueName('ct-system');
const NS = uniqueName('helm-app');
const LABEL = { 'cloudtaser-test/helm': NS };
const ROLE = `${NS}-role`;
const VAULT_PATH = `secret/data/${NS}/db`;
const VALUE = `pw-${randomBytes(12).toString('hex')}`;
const CA_DIR = '/etc/vault-ca';

let sb: PodSandbox | undefined;
let info: SandboxInfo;
let core: CoreV1Api;
let chart: SandboxChart | undefined;

const annotations = (): Record<string, string> => ({
  'cloudtaser.io/inject': 'true',
  'cloudtaser.io/vault-address': info.baoTlsAddr,
  'cloudtaser.io/vault-role': ROLE,
  'cloudtaser.io/secret-paths': VAULT_PATH,
  'cloudtaser.io/env-map': `${VAULT_PATH}:password=DB_PASS`,
});

beforeAll(async () => {
  sb = await acquirePodSandbox();
  info = sb.info;
  core = clientsFor(info).core;
  await core.createNamespace({ body: { metadata: { name: NS, labels: LABEL } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'app' } } });
  await createVaultCaConfigMap(core, NS, info);
  // The vault side as apply-plan writes it: a read policy and a role bound
  // to the service account, for the cloudtaser audience.
  expect(
    (
      await bao('PUT', `sys/policies/acl/${ROLE}`, {
        policy: `path "${VAULT_PATH}" { capabilities = ["read"] }`,
      })
    ).status,
  ).toBe(204);
  expect(
    (
      await bao('POST', `auth/${info.baoKubeAuthPath}/role/${ROLE}`, {
        bound_service_account_names: ['app'],
        bound_service_account_namespaces: [NS],
        audience: 'cloudtaser',
        token_policies: [ROLE],
        token_ttl: 300,
      })
    ).status,
  ).toBe(204);
  expect((await bao('POST', VAULT_PATH, { data: { password: VALUE } })).status).toBe(200);

  chart = await installSandboxChart(info, {
    namespace: RELEASE_NS,
    dir: await tempDir('ct-helm-'),
    namespaceLabels: LABEL,
    log: (l) => {
      console.error(l);
    },
  });
  await waitForWebhook(core, NS, 60_000);
}, 900_000);

afterAll(async () => {
  if (chart) await chart.run(['uninstall', 'cloudtaser', '-n', RELEASE_NS, '--wait']);
  await sb?.release();
}, 180_000);

/** A bare annotated pod: admission is what is tested, it never needs to run. */
function probePod(name: string): V1Pod {
  return {
    metadata: { name, annotations: annotations() },
    spec: {
      serviceAccountName: 'app',
      containers: [{ name: 'app', image: info.node?.images.busybox ?? '', command: ['true'] }],
    },
  };
}

const hasInit = (p: V1Pod): boolean =>
  (p.spec?.initContainers ?? []).some((c) => c.name === 'cloudtaser-init');

async function webhookPods(): Promise<V1Pod[]> {
  return (
    await core.listNamespacedPod({
      namespace: RELEASE_NS,
      labelSelector: 'app.kubernetes.io/name=cloudtaser-webhook',
    })
  ).items;
}

describe('the webhook installed with Helm', () => {
  it('runs as a Ready pod from the image built here, and annotated pods run with cloudtaser-init', async () => {
    const pods = await webhookPods();
    expect(pods).toHaveLength(1);
    const w = pods[0];
    expect(w?.spec?.containers[0]?.image).toBe(chart?.image);
    expect(w?.spec?.containers[0]?.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(w?.spec?.securityContext?.runAsNonRoot).toBe(true);
    expect(w?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    const apps = clientsFor(info).kc.makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'api' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'api' } },
          template: {
            metadata: { labels: { app: 'api' }, annotations: annotations() },
            spec: {
              hostNetwork: true,
              tolerations: info.node ? [info.node.toleration] : [],
              serviceAccountName: 'app',
              automountServiceAccountToken: false,
              terminationGracePeriodSeconds: 5,
              containers: [
                {
                  name: 'api',
                  image: info.node?.images.busybox ?? '',
                  command: [
                    'sh',
                    '-c',
                    'echo "started with a DB_PASS of ${#DB_PASS} chars"; while true; do sleep 1; done',
                  ],
                  env: [{ name: 'VAULT_CACERT', value: `${CA_DIR}/ca.crt` }],
                  volumeMounts: [{ name: 'vault-ca', mountPath: CA_DIR, readOnly: true }],
                },
              ],
              volumes: [{ name: 'vault-ca', configMap: { name: 'vault-ca' } }],
            },
          },
        },
      },
    });
    let last = '';
    const running = await eventually(
      'a Ready api pod',
      async () => {
        const list = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=api' });
        const p = list.items[0];
        if (p) last = describePod(p);
        return p && isRunning(p, 'api') ? p : undefined;
      },
      120_000,
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}; last seen: ${last}`);
    });
    expect(running.spec?.initContainers?.map((c) => c.name)).toEqual(['cloudtaser-init']);
    const init = running.status?.initContainerStatuses?.find((s) => s.name === 'cloudtaser-init');
    expect(init?.state?.terminated?.exitCode, describePod(running)).toBe(0);
    expect(init?.image).toContain(info.node?.images.init ?? '?');
    const log = await eventually('the app log', async () => {
      const l = await core.readNamespacedPodLog({
        name: running.metadata?.name ?? '',
        namespace: NS,
        container: 'api',
      });
      return l.includes('started') ? l : undefined;
    });
    // The value came from OpenBao through the wrapper; the log holds its length only.
    expect(log).toContain(`started with a DB_PASS of ${VALUE.length} chars`);
  });

  it('helm upgrade with a changed value rolls the webhook while pods keep being created: none refused', async () => {
    const admission = clientsFor(info).kc.makeApiClient(AdmissionregistrationV1Api);
    const caBefore = (await admission.readMutatingWebhookConfiguration({ name: 'cloudtaser' }))
      .webhooks?.[0]?.clientConfig.caBundle;
    const before = await webhookPods();
    const oldPod = before[0]?.metadata?.name ?? '';
    const oldPort = before[0]?.spec?.containers[0]?.ports?.[0]?.containerPort;

    const refused: string[] = [];
    const created: V1Pod[] = [];
    const ctl = { stop: false };
    let n = 0;
    const stream = (async () => {
      while (!ctl.stop) {
        try {
          created.push(
            await core.createNamespacedPod({ namespace: NS, body: probePod(`stream-${n++}`) }),
          );
        } catch (e) {
          refused.push(String((e as { body?: unknown }).body ?? e).slice(0, 300));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const up = await chart?.run([
        'upgrade',
        'cloudtaser',
        CHART_DIR,
        '-n',
        RELEASE_NS,
        '-f',
        chart.valuesFile,
        '--set',
        'webhook.reviewTimeoutSeconds=7',
        '--wait',
        '--timeout',
        '5m',
      ]);
      expect(up?.code, `${up?.stdout ?? ''}${up?.stderr ?? ''}`).toBe(0);
      // The stream goes on until the old pod is gone, through its drain.
      await eventually(
        'the old webhook pod to be gone',
        async () =>
          (await webhookPods()).some((p) => p.metadata?.name === oldPod) ? undefined : true,
        90_000,
      );
      const countAtEnd = n;
      await eventually('two more creations', () =>
        Promise.resolve(n >= countAtEnd + 2 ? true : undefined),
      );
    } finally {
      ctl.stop = true;
      await stream;
    }
    expect(refused).toEqual([]);
    expect(created.length).toBeGreaterThan(20);
    expect(created.filter((p) => !hasInit(p)).map((p) => p.metadata?.name)).toEqual([]);

    const after = await webhookPods();
    expect(after).toHaveLength(1);
    const c = after[0]?.spec?.containers[0];
    expect(c?.args).toContain('7');
    // The new pod took the other port, so it could start beside the old one.
    expect(c?.ports?.[0]?.containerPort).not.toBe(oldPort);
    expect(chart?.ports).toContain(c?.ports?.[0]?.containerPort);
    // The generated CA was read back, not generated again.
    const caAfter = (await admission.readMutatingWebhookConfiguration({ name: 'cloudtaser' }))
      .webhooks?.[0]?.clientConfig.caBundle;
    expect(caAfter).toBe(caBefore);
  });

  it('helm uninstall removes the webhook configuration before the webhook Deployment', async () => {
    const admission = clientsFor(info).kc.makeApiClient(AdmissionregistrationV1Api);
    const exists = async (read: () => Promise<unknown>): Promise<boolean> => {
      try {
        await read();
        return true;
      } catch (e) {
        if ((e as { code?: number }).code === 404) return false;
        throw e;
      }
    };
    expect(
      await exists(() => admission.readMutatingWebhookConfiguration({ name: 'cloudtaser' })),
    ).toBe(true);
    // Watch both while helm uninstalls: the configuration must be gone
    // before the Deployment is deleted (Helm alone deletes it after).
    const kc = clientsFor(info).kc;
    const seen: { hookGone?: number; deploymentDeleted?: number } = {};
    const watches = await Promise.all([
      new Watch(kc).watch(
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
        { fieldSelector: 'metadata.name=cloudtaser' },
        (type) => {
          if (type === 'DELETED') seen.hookGone ??= performance.now();
        },
        () => undefined,
      ),
      new Watch(kc).watch(
        `/apis/apps/v1/namespaces/${RELEASE_NS}/deployments`,
        { fieldSelector: 'metadata.name=cloudtaser-webhook' },
        (type, obj: { metadata?: { deletionTimestamp?: unknown } }) => {
          if (type === 'DELETED' || obj.metadata?.deletionTimestamp)
            seen.deploymentDeleted ??= performance.now();
        },
        () => undefined,
      ),
    ]);
    const un = await chart?.run(['uninstall', 'cloudtaser', '-n', RELEASE_NS, '--wait']);
    try {
      await eventually('both deletions seen', () =>
        Promise.resolve(
          seen.hookGone !== undefined && seen.deploymentDeleted !== undefined ? true : undefined,
        ),
      );
    } finally {
      for (const w of watches) w.abort();
    }
    expect(un?.code, `${un?.stdout ?? ''}${un?.stderr ?? ''}`).toBe(0);
    chart = undefined;
    expect(seen.hookGone).toBeLessThan(seen.deploymentDeleted ?? 0);
    expect(
      await exists(() => admission.readMutatingWebhookConfiguration({ name: 'cloudtaser' })),
    ).toBe(false);
    expect(
      await exists(() => admission.readValidatingAdmissionPolicy({ name: 'cloudtaser-injected' })),
    ).toBe(false);
    expect(
      await exists(() =>
        admission.readValidatingAdmissionPolicyBinding({ name: 'cloudtaser-injected' }),
      ),
    ).toBe(false);
  });
});
