// The built `cloudtaser webhook serve` process under the conditions a
// cluster gives it: a registry that never answers, a pull secret its
// service account may not read, and SIGTERM while reviews are in flight.
// AdmissionReviews are posted to it over HTTPS as the API server does.
import {
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1Container,
  type V1Pod,
} from '@kubernetes/client-node';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopbackPki, type ServingPki } from '../testenv/pki.js';
import { tempDir } from './helpers/cli.js';
import { REGISTRY_USER, startRegistry, type LocalRegistry } from './helpers/registry.js';
import { eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';
import {
  registerWebhook,
  removeWebhookAndNamespace,
  admissionReview,
  postReview,
  startWebhookProcess,
  type WebhookProcess,
} from './helpers/webhook.js';

let dir = '';
let pki: ServingPki;
const started: WebhookProcess[] = [];

/** A registry endpoint that accepts connections and never answers. */
let silent: { server: Server; host: string; sockets: Socket[] } | undefined;

beforeAll(async () => {
  dir = await tempDir('ct-serve-');
  pki = await loopbackPki(dir);
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  silent = { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
});

afterAll(() => {
  for (const w of started) w.kill();
  for (const s of silent?.sockets ?? []) s.destroy();
  silent?.server.close();
});

async function serve(args: string[]): Promise<WebhookProcess> {
  const w = await startWebhookProcess([
    '--tls-cert',
    pki.certFile,
    '--tls-key',
    pki.keyFile,
    ...args,
  ]);
  started.push(w);
  return w;
}

function named(pod: V1Pod, name: string): V1Pod {
  if (pod.metadata) pod.metadata.name = name;
  return pod;
}

function annotatedPod(containers: V1Container[], pullSecrets: string[] = []): V1Pod {
  const path = 'secret/data/team/db';
  return {
    metadata: {
      name: 'p',
      annotations: {
        'cloudtaser.io/inject': 'true',
        'cloudtaser.io/vault-address': 'https://vault.example.com',
        'cloudtaser.io/vault-role': 'team-role',
        'cloudtaser.io/secret-paths': path,
        'cloudtaser.io/env-map': `${path}:password=DB_PASS`,
      },
    },
    spec: {
      containers,
      ...(pullSecrets.length ? { imagePullSecrets: pullSecrets.map((name) => ({ name })) } : {}),
    },
  };
}

describe('admission deadline', () => {
  it('answers inside its budget when the registry never does, looking images up side by side', async () => {
    const host = silent?.host ?? '';
    const w = await serve(['--insecure-registry', host, '--review-timeout', '3']);
    const pod = annotatedPod(
      ['a', 'b', 'c'].map((n) => ({ name: n, image: `${host}/team/${n}:1` })),
    );
    const before = silent?.sockets.length ?? 0;
    const t0 = Date.now();
    const answer = await postReview(w.port, pki.ca, admissionReview('d1', 'team', pod));
    const elapsed = Date.now() - t0;
    // Three images, one budget: not three budgets (nor up to 4 × 10 s per image, one after another).
    expect(elapsed).toBeGreaterThanOrEqual(2900);
    // Slack for a loaded machine; two budgets would already be 6 s.
    expect(elapsed).toBeLessThan(5500);
    expect(answer.status).toBe(200);
    expect(answer.response.uid).toBe('d1');
    expect(answer.response.allowed).toBe(false);
    expect(answer.response.status?.message).toContain(
      'cannot find the command of container a (image',
    );
    expect(answer.response.status?.message).toContain('within the 3s admission budget');
    // All three lookups were under way at once.
    expect((silent?.sockets.length ?? 0) - before).toBe(3);
  });
});

describe('review log', () => {
  it("logs each review with its own duration, the webhook's share of a pod's admission", async () => {
    const w = await serve([]);
    const pod = annotatedPod([{ name: 'a', image: 'busybox:1', command: ['sh'] }]);
    const answer = await postReview(w.port, pki.ca, admissionReview('l1', 'team', pod));
    expect(answer.response.allowed).toBe(true);
    const line = await eventually('the review to be logged', () =>
      Promise.resolve(
        w
          .log()
          .split('\n')
          .find((l) => l.includes('admission team/p')),
      ),
    );
    expect(line).toMatch(/^admission team\/p in \d+\.\d ms: injected$/);
  });
});

describe('admission deadline, through the API server', () => {
  const ns = uniqueName('budget');
  const hookName = `cloudtaser-${ns}`;

  afterAll(() => removeWebhookAndNamespace(hookName, ns));

  it("rejects the pod with the webhook's own reason before the API server's timeoutSeconds runs out", async () => {
    const host = silent?.host ?? '';
    // No --review-timeout: the default budget (8 s) is cut to fit timeoutSeconds 4.
    const w = await serve(['--insecure-registry', host]);
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await registerWebhook({
      name: hookName,
      namespace: ns,
      port: w.port,
      caPems: [pki.ca],
      timeoutSeconds: 4,
    });
    const containers = ['a', 'b'].map((n) => ({ name: n, image: `${host}/team/${n}:1` }));
    // The API server picks up a new webhook configuration asynchronously:
    // until then the pod is created unmutated (and removed again).
    const refusal = await eventually('the webhook to be called', async () => {
      const name = uniqueName('p');
      const outcome = await core
        .createNamespacedPod({
          namespace: ns,
          body: named(annotatedPod(containers), name),
        })
        .then(
          async () => {
            await core.deleteNamespacedPod({ name, namespace: ns });
            return undefined;
          },
          (e: unknown) => String((e as { body?: unknown }).body ?? e),
        );
      return outcome;
    });
    expect(refusal).toContain('cannot find the command of container a');
    expect(refusal).toContain('within the 3s admission budget');
    expect(refusal).not.toContain('deadline exceeded');
    expect(w.log()).toContain(`admission ${ns}/`);
  });
});

describe('shutdown', () => {
  it('on SIGTERM stops accepting, finishes the review in flight, then exits 0', async () => {
    const host = silent?.host ?? '';
    const w = await serve(['--insecure-registry', host, '--review-timeout', '3']);
    const before = silent?.sockets.length ?? 0;
    const inFlight = postReview(
      w.port,
      pki.ca,
      admissionReview('s1', 'team', annotatedPod([{ name: 'a', image: `${host}/team/a:1` }])),
    );
    await eventually('the lookup to be under way', () =>
      Promise.resolve((silent?.sockets.length ?? 0) > before || undefined),
    );
    w.child.kill('SIGTERM');
    // New connections are refused while the review in hand finishes.
    await eventually('the listener to close', () =>
      postReview(w.port, pki.ca, {}).then(
        () => undefined,
        (e: unknown) => ((e as { code?: string }).code === 'ECONNREFUSED' ? true : undefined),
      ),
    );
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.response).toMatchObject({ uid: 's1', allowed: false });
    expect(await w.exited).toBe(0);
    expect(w.log()).toContain('draining');
  });
});

describe('pull secrets', () => {
  const ns = uniqueName('pull');
  let registry: LocalRegistry | undefined;

  afterAll(async () => {
    registry?.stop();
    await kubeConfig()
      .makeApiClient(CoreV1Api)
      .deleteNamespace({ name: ns })
      .catch(() => undefined);
  });

  it("logs and reports the API server's refusal to read a pull secret instead of a bare registry 401", async () => {
    registry = await startRegistry(await tempDir('ct-serve-registry-'), { auth: true });
    await registry.push('private/app', '2.0', { Entrypoint: ['/srv/app'], Cmd: ['run'] });
    const host = registry.host;
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const auth = Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString(
      'base64',
    );
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'regcred' },
        type: 'kubernetes.io/dockerconfigjson',
        stringData: { '.dockerconfigjson': JSON.stringify({ auths: { [host]: { auth } } }) },
      },
    });
    // The webhook's identity, without the right to read secrets yet.
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'wh' } },
    });
    const token = await core.createNamespacedServiceAccountToken({
      name: 'wh',
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const info = sandbox();
    const kubeconfig = join(dir, `${ns}.kubeconfig`);
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 's',
            cluster: {
              server: info.apiServer,
              'certificate-authority-data': (await readFile(info.caFile)).toString('base64'),
            },
          },
        ],
        users: [{ name: 'wh', user: { token: token.status?.token ?? '' } }],
        contexts: [{ name: 's', context: { cluster: 's', user: 'wh' } }],
        'current-context': 's',
      }),
    );
    const w = await serve(['--insecure-registry', host, '--kubeconfig', kubeconfig]);
    const review = admissionReview(
      'p1',
      ns,
      annotatedPod([{ name: 'app', image: `${host}/private/app:2.0` }], ['regcred']),
    );
    const refused = await postReview(w.port, pki.ca, review);
    expect(refused.response.allowed).toBe(false);
    const message = refused.response.status?.message ?? '';
    expect(message).toContain('answered 401');
    expect(message).toContain(`cannot read pull secret ${ns}/regcred`);
    expect(message).toContain('403');
    expect(w.log()).toContain(`cannot read pull secret ${ns}/regcred`);
    expect(w.log()).not.toContain(REGISTRY_USER.password);

    // Granted the right, the same review reads the secret and logs in.
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'read-secrets' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'read-secrets' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-secrets' },
        subjects: [{ kind: 'ServiceAccount', name: 'wh', namespace: ns }],
      },
    });
    const allowed = await eventually('the grant to take effect', async () => {
      const a = await postReview(w.port, pki.ca, review);
      return a.response.allowed ? a : undefined;
    });
    const patch = JSON.parse(Buffer.from(allowed.response.patch ?? '', 'base64').toString()) as {
      path: string;
      value: unknown;
    }[];
    expect(patch.find((op) => op.path === '/spec/containers/0/command')?.value).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '/srv/app',
      'run',
    ]);
  });
});
