// `target verify-pod` on the sandbox's real node: the guide's own check
// (`kubectl exec … cat /proc/1/environ`) is refused by a wrapped pod, so it
// proves nothing; verify-pod reads the names in PID 1's environment from an
// ephemeral container and tells a wrapped pod (absent) from one whose native
// envFrom value reaches PID 1 (PRESENT).
//
// The wrapped pod runs the built wrapper as PID 1 from a hostPath (no init
// image here) with token auth against the sandbox's OpenBao; the pod also
// keeps the native envFrom, as a template protect annotated still does, so
// the wrapper has a value to keep out of PID 1. The native pod carries the
// same annotations but starts without the wrapper, as a pod created with the
// webhook bypassed would.
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { NODE_TOLERATION } from '../testenv/node.js';
import { describe, expect, it } from 'vitest';
import { ANNOTATION } from '../src/contract/annotations.js';
import { RUN_MOUNT_PATH, RUN_VOLUME_NAME, startedProbe } from '../src/webhook/mutate.js';
import { projectRoot } from '../testenv/paths.js';
import { startSandbox, type SandboxInfo } from '../testenv/sandbox.js';
import { cli, type CliResult } from './helpers/cli.js';
import { withNodeTestLock } from './helpers/node.js';
import { eventually } from './helpers/sandbox.js';

const NS = 'vpnode';
/** In vault. */
const VALUE = 'vp-secret-7f3a9c';
/** In the native Secret, a different value, to tell which one a process got. */
const NATIVE = 'vp-native-51c2e8';
const PATH = `secret/data/${NS}/db`;

/**
 * `wrapped`: the wrapper as PID 1 with the startup probe and marker the
 * webhook adds; `vault` is where it fetches from. Unwrapped: the app itself.
 */
function deployment(
  name: string,
  image: string,
  wrapped: boolean,
  vault: string,
  info: SandboxInfo,
): V1Deployment {
  const app = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'];
  return {
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          annotations: {
            [ANNOTATION.inject]: 'true',
            [ANNOTATION.secretPaths]: PATH,
            [ANNOTATION.envMap]: `${PATH}:password=DB_PASS`,
          },
        },
        spec: {
          hostNetwork: true,
          tolerations: [NODE_TOLERATION],
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'app',
              image,
              command: wrapped ? ['/cloudtaser/bin/cloudtaser-wrapper', ...app] : app,
              envFrom: [{ secretRef: { name: 'db' } }],
              env: wrapped
                ? [
                    { name: 'VAULT_ADDR', value: vault },
                    { name: 'CLOUDTASER_ALLOW_INSECURE_VAULT', value: 'true' },
                    { name: 'VAULT_AUTH_METHOD', value: 'token' },
                    { name: 'VAULT_TOKEN', value: info.baoToken },
                    { name: 'CLOUDTASER_SECRET_PATHS', value: PATH },
                    { name: 'CLOUDTASER_ENV_MAP', value: `${PATH}:password=DB_PASS` },
                    { name: 'CLOUDTASER_STARTED_FILE', value: `${RUN_MOUNT_PATH}/app` },
                  ]
                : [],
              ...(wrapped
                ? {
                    volumeMounts: [
                      { name: 'bin', mountPath: '/cloudtaser/bin', readOnly: true },
                      { name: RUN_VOLUME_NAME, mountPath: RUN_MOUNT_PATH },
                    ],
                    startupProbe: startedProbe('app'),
                  }
                : {}),
            },
          ],
          ...(wrapped
            ? {
                volumes: [
                  {
                    name: 'bin',
                    hostPath: { path: join(projectRoot, 'dist', 'wrapper'), type: 'Directory' },
                  },
                  { name: RUN_VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
                ],
              }
            : {}),
        },
      },
    },
  };
}

function kubectl(info: SandboxInfo, args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      info.binaries.kubectl,
      ['--kubeconfig', info.kubeconfig, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

async function verifyOnNode(info: SandboxInfo): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const env = { KUBECONFIG: info.kubeconfig, USER: 'tester' };
  const image = info.node?.images.busybox ?? '';

  const put = await fetch(`${info.baoAddr}/v1/${PATH}`, {
    method: 'POST',
    headers: { 'x-vault-token': info.baoToken, 'content-type': 'application/json' },
    body: JSON.stringify({ data: { password: VALUE } }),
  });
  expect(put.status).toBe(200);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedSecret({
    namespace: NS,
    // CERT: a value over two lines, one holding '=': the log must still hold names only.
    body: {
      metadata: { name: 'db' },
      stringData: { DB_PASS: NATIVE, CERT: `first-line\n${NATIVE}=x` },
    },
  });
  const isReady = (p: V1Pod): boolean =>
    (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  // Nothing listens on port 1: the wrapper retries, gives up, is restarted.
  for (const [name, wrapped, vault] of [
    ['wrapped', true, info.baoAddr],
    ['native', false, info.baoAddr],
    ['stuck', true, 'http://127.0.0.1:1'],
  ] as const) {
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: deployment(name, image, wrapped, vault, info),
    });
  }
  // The stuck pod, polled from its start until the wrapper has given up at
  // least once and the probe has said why: its container ran, and the pod
  // was never Ready (without the startup probe it is Ready while the wrapper
  // retries).
  const stuckSeen = { running: false, ready: false };
  await eventually(
    'the stuck pod restarted, its startup probe failing',
    async () => {
      const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=stuck' }))
        .items;
      const p = pods[0];
      if (!p) return undefined;
      const s = p.status?.containerStatuses?.[0];
      stuckSeen.running ||= s?.state?.running !== undefined;
      stuckSeen.ready ||= isReady(p);
      if ((s?.restartCount ?? 0) < 1) return undefined;
      const events = await core.listNamespacedEvent({
        namespace: NS,
        fieldSelector: `involvedObject.name=${p.metadata?.name ?? ''}`,
      });
      return events.items.some(
        (e) =>
          e.reason === 'Unhealthy' &&
          (e.message ?? '').includes('Startup probe failed') &&
          (e.message ?? '').includes('the wrapper has not started the app yet'),
      )
        ? true
        : undefined;
    },
    90_000,
  );
  expect(stuckSeen).toEqual({ running: true, ready: false });
  await eventually(
    'the wrapped and the native pod Ready',
    async () => {
      const pods = (await core.listNamespacedPod({ namespace: NS })).items;
      return ['wrapped', 'native'].every((app) =>
        pods.some((p) => p.metadata?.labels?.app === app && isReady(p)),
      )
        ? true
        : undefined;
    },
    90_000,
  );

  // The guide's check on the wrapped pod: `cat` is refused, so the pipeline
  // would print nothing whatever PID 1 holds.
  const guide = await kubectl(info, [
    'exec',
    'deploy/wrapped',
    '-n',
    NS,
    '--',
    'cat',
    '/proc/1/environ',
  ]);
  expect(guide.code).not.toBe(0);
  expect(guide.stderr).toMatch(/Permission denied/i);
  expect(guide.stdout).toBe('');
  // The app (the wrapper's child) has vault's value: the wrapper did fetch it.
  const child = await kubectl(info, [
    'exec',
    'deploy/wrapped',
    '-n',
    NS,
    '--',
    'sh',
    '-c',
    // busybox grep stops a line at its first NUL: split the entries first.
    `for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < $f 2>/dev/null | grep -qxF "DB_PASS=${VALUE}" && echo $f; done; true`,
  ]);
  expect(child.stdout, child.stderr).toMatch(/^\/proc\/\d+\/environ$/m);
  expect(child.stdout).not.toContain('/proc/1/environ');

  const absent = await cli(['target', 'verify-pod', 'deploy/wrapped', '-n', NS, '--image', image], {
    env,
  });
  expect(absent.stderr).toBe('');
  expect(absent.stdout).toMatch(
    /^pod vpnode\/wrapped-[a-z0-9-]+, container app, PID 1: cloudtaser-wrap\n/,
  );
  expect(absent.stdout).toContain('\nDB_PASS  absent\n');
  expect(absent.stdout).toContain('no VAULT_* or CLOUDTASER_* variable in its environment');
  expect(absent.code).toBe(0);

  const present = await cli(['target', 'verify-pod', 'deploy/native', '-n', NS, '--image', image], {
    env,
  });
  expect(present.stdout).toMatch(/^pod vpnode\/native-[a-z0-9-]+, container app, PID 1: sh\n/);
  expect(present.stdout).toContain('\nDB_PASS  PRESENT\n');
  expect(present.stderr).toContain('has DB_PASS in its environment (names read, values not)');
  expect(present.code).toBe(1);

  // JSON, and a pod named directly.
  const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=native' })).items;
  const json = await cli(
    [
      'target',
      'verify-pod',
      `pod/${pods[0]?.metadata?.name ?? ''}`,
      '-n',
      NS,
      '-o',
      'json',
      '--image',
      image,
    ],
    { env },
  );
  expect(json.code).toBe(1);
  const report = JSON.parse(json.stdout) as { ok: boolean; names: unknown[]; pid1: string };
  expect(report).toMatchObject({
    ok: false,
    pid1: 'sh',
    names: [{ name: 'DB_PASS', present: true }],
  });

  // A check that cannot run is an error, not "absent".
  const noImage = await cli(
    ['target', 'verify-pod', 'deploy/wrapped', '-n', NS, '--image', 'cloudtaser.local/none:1'],
    { env },
  );
  expect(noImage.stdout).toBe('');
  expect(noImage.stderr).toMatch(
    /the debug container in pod vpnode\/wrapped-\S+ cannot start: (ErrImagePull|ImagePullBackOff)/,
  );
  expect(noImage.code).toBe(3);

  // Values never leave the pod: not in the output, not in the debug containers' logs.
  for (const r of [absent, present, json, noImage]) {
    expect(r.stdout + r.stderr).not.toContain(VALUE);
    expect(r.stdout + r.stderr).not.toContain(NATIVE);
  }
  const logs: string[] = [];
  for (const p of (await core.listNamespacedPod({ namespace: NS })).items) {
    for (const c of p.spec?.ephemeralContainers ?? []) {
      if (
        !p.status?.ephemeralContainerStatuses?.some((s) => s.name === c.name && s.state?.terminated)
      )
        continue;
      logs.push(
        await core.readNamespacedPodLog({
          name: p.metadata?.name ?? '',
          namespace: NS,
          container: c.name,
        }),
      );
    }
  }
  expect(logs).toHaveLength(3);
  expect(logs.join('\n')).toContain('\nCERT\n');
  expect(logs.join('\n')).not.toContain('first-line');
  expect(logs.join('\n')).not.toContain(VALUE);
  expect(logs.join('\n')).not.toContain(NATIVE);
}

describe('target verify-pod on a real node', () => {
  it(
    "reads PID 1's variable names: absent under the wrapper, PRESENT without it",
    () =>
      withNodeTestLock(async () => {
        const sb = await startSandbox({
          node: true,
          log: (line) => {
            console.error(line);
          },
        });
        try {
          await verifyOnNode(sb.info);
        } finally {
          await sb.stop();
        }
      }),
    // The node-test lock may first wait for another run's node.
    1_200_000,
  );
});
