// The serving certificate rotates under a running webhook the way
// cert-manager and the kubelet do it: a new certificate from a new CA lands
// in the Secret volume by a symlink swap (..data), the caBundle first
// carries both CAs, then only the new one. The real `cloudtaser webhook
// serve` process stays registered with the real API server (failure policy
// Fail) the whole time, and annotated pods are created without pause: none
// may be rejected.
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loopbackPki, type ServingPki } from '../testenv/pki.js';
import { tempDir } from './helpers/cli.js';
import { eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';
import {
  registerWebhook,
  removeWebhookAndNamespace,
  servedCertificate,
  startWebhookProcess,
  type WebhookProcess,
} from './helpers/webhook.js';

const ns = uniqueName('rot');
const hookName = `cloudtaser-${ns}`;
let webhook: WebhookProcess | undefined;
let dir = '';
let pkiA: ServingPki;
let pkiB: ServingPki;
let version = 0;

/** Publishes cert and key the way the kubelet updates a Secret volume: new dir, one rename. */
async function publish(cert: string, key: string): Promise<void> {
  version++;
  const data = join(dir, 'tls', `..v${version}`);
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'tls.crt'), cert);
  await writeFile(join(data, 'tls.key'), key);
  const tmp = join(dir, 'tls', '..data_tmp');
  await symlink(`..v${version}`, tmp);
  await rename(tmp, join(dir, 'tls', '..data'));
}

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256;

const caBundle = (...pems: string[]): string => Buffer.from(pems.join('')).toString('base64');

function annotatedPod(name: string): V1Pod {
  const path = `secret/data/${ns}/db`;
  return {
    metadata: {
      name,
      annotations: {
        'cloudtaser.io/inject': 'true',
        'cloudtaser.io/vault-address': sandbox().baoTlsAddr,
        'cloudtaser.io/vault-role': `${ns}-role`,
        'cloudtaser.io/secret-paths': path,
        'cloudtaser.io/env-map': `${path}:password=DB_PASS`,
      },
    },
    spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1', command: ['/app'] }] },
  };
}

beforeAll(async () => {
  dir = await tempDir('ct-rotation-');
  await mkdir(join(dir, 'a'));
  await mkdir(join(dir, 'b'));
  pkiA = await loopbackPki(join(dir, 'a'));
  pkiB = await loopbackPki(join(dir, 'b'));
  expect(pkiA.ca).not.toBe(pkiB.ca);
  await publish(pkiA.cert, pkiA.key);
  for (const f of ['tls.crt', 'tls.key']) await symlink(join('..data', f), join(dir, 'tls', f));
  webhook = await startWebhookProcess([
    '--tls-cert',
    join(dir, 'tls', 'tls.crt'),
    '--tls-key',
    join(dir, 'tls', 'tls.key'),
    '--tls-check-interval',
    '1',
  ]);
  const kc = kubeConfig();
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
  // Both CAs, as cert-manager's CA injector leaves the bundle while a renewal is under way.
  await registerWebhook({
    name: hookName,
    namespace: ns,
    port: webhook.port,
    caPems: [pkiA.ca, pkiB.ca],
  });
});

afterAll(async () => {
  await removeWebhookAndNamespace(hookName, ns);
  webhook?.kill();
});

describe('serving certificate rotation', () => {
  it('serves the renewed certificate without rejecting a single admission while CA and certificate rotate', async () => {
    const port = webhook?.port ?? 0;
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const hooks = kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    let n = 0;
    /** 'injected', 'not injected' or why the pod was rejected. */
    const create = async (): Promise<string> => {
      n++;
      try {
        const pod = await core.createNamespacedPod({ namespace: ns, body: annotatedPod(`p-${n}`) });
        return pod.spec?.initContainers?.[0]?.name === 'cloudtaser-init'
          ? 'injected'
          : 'not injected';
      } catch (e) {
        return `p-${n}: ${String((e as { body?: unknown }).body ?? e)}`;
      }
    };
    // The API server picks up a new webhook configuration asynchronously.
    await eventually('the webhook to be called', async () =>
      (await create()) === 'injected' ? true : undefined,
    );
    expect((await servedCertificate(port)).fingerprint256).toBe(fingerprint(pkiA.cert));

    // Pods are created one after another, without pause, for the whole rotation.
    const failures: string[] = [];
    let injected = 0;
    const state = { stop: false };
    const load = (async () => {
      while (!state.stop) {
        const r = await create();
        if (r === 'injected') injected++;
        else failures.push(r);
      }
    })();
    const admittedAtLeast = (count: number) =>
      eventually(`${count} admissions`, () => Promise.resolve(injected >= count || undefined));

    await admittedAtLeast(10);
    await publish(pkiB.cert, pkiB.key);
    await eventually(
      'the renewed certificate to be served',
      async () => {
        const served = await servedCertificate(port);
        return served.fingerprint256 === fingerprint(pkiB.cert) ? true : undefined;
      },
      20_000,
    );
    const afterRotation = injected;
    await admittedAtLeast(afterRotation + 10);

    // The CA injector drops the old CA.
    const current = await hooks.readMutatingWebhookConfiguration({ name: hookName });
    const hook = current.webhooks?.[0];
    if (hook) hook.clientConfig.caBundle = caBundle(pkiB.ca);
    await hooks.replaceMutatingWebhookConfiguration({ name: hookName, body: current });
    const switchedAt = Date.now();
    const afterSwitch = injected;
    await eventually(
      'admissions under the new CA only',
      () =>
        Promise.resolve(
          (injected >= afterSwitch + 30 && Date.now() - switchedAt > 5000) || undefined,
        ),
      60_000,
    );
    state.stop = true;
    await load;

    expect(failures).toEqual([]);
    expect((await servedCertificate(port)).fingerprint256).toBe(fingerprint(pkiB.cert));
    expect(webhook?.log()).toContain('serving certificate reloaded');
  });

  it('keeps serving the current certificate when the new files do not belong together, and says why', async () => {
    const port = webhook?.port ?? 0;
    // A certificate with somebody else's key, e.g. a half-written renewal.
    await publish(pkiA.cert, pkiB.key);
    await eventually(
      'the webhook to notice the mismatch',
      () =>
        Promise.resolve(
          webhook?.log().includes('the certificate does not match the key') || undefined,
        ),
      20_000,
    );
    expect((await servedCertificate(port)).fingerprint256).toBe(fingerprint(pkiB.cert));
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const pod = await core.createNamespacedPod({ namespace: ns, body: annotatedPod('after-bad') });
    expect(pod.spec?.initContainers?.[0]?.name).toBe('cloudtaser-init');
    // A matching pair again is picked up.
    await publish(pkiA.cert, pkiA.key);
    await eventually(
      'the matching pair to be served',
      async () =>
        (await servedCertificate(port)).fingerprint256 === fingerprint(pkiA.cert) || undefined,
      20_000,
    );
  });
});
