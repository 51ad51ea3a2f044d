// The built `cloudtaser webhook serve` as its own process, as a cluster runs
// it, and an HTTPS client that posts AdmissionReviews to it the way the API
// server does.
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { request } from 'node:https';
import { connect, type PeerCertificate } from 'node:tls';
import type { SandboxInfo } from '../../testenv/sandbox.js';
import {
  registerWebhook as registerWith,
  type WebhookRegistration,
} from '../../testenv/webhook.js';
import { kubeConfig } from './sandbox.js';

export { startWebhookProcess, type WebhookProcess } from '../../testenv/webhook.js';

export interface ReviewAnswer {
  status: number;
  response: {
    uid?: string;
    allowed?: boolean;
    patch?: string;
    status?: { code?: number; message?: string };
  };
}

export function admissionReview(uid: string, namespace: string, pod: V1Pod): unknown {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, operation: 'CREATE', namespace, object: pod },
  };
}

/** POSTs one AdmissionReview over HTTPS, trusting `ca`; rejects on a transport error. */
export function postReview(port: number, ca: string, body: unknown): Promise<ReviewAnswer> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/mutate',
        method: 'POST',
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': data.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const parsed = JSON.parse(text) as { response?: ReviewAnswer['response'] };
            resolve({ status: res.statusCode ?? 0, response: parsed.response ?? {} });
          } catch {
            reject(new Error(`webhook answered ${res.statusCode ?? 0}: ${text}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** The certificate the server on `port` presents right now (no trust check). */
export function servedCertificate(port: number): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
  });
}

export { waitForWebhook } from '../../testenv/webhook-probe.js';

export interface TestWebhookOptions extends Omit<WebhookRegistration, 'kubeConfig'> {
  /** The sandbox whose API server gets it (default: the test run's). */
  sandbox?: SandboxInfo;
  /** The cluster to register with (default: the test run's sandbox). */
  kubeConfig?: KubeConfig;
}

/** testenv's registerWebhook, on the test run's sandbox unless told otherwise. */
export async function registerWebhook(o: TestWebhookOptions): Promise<void> {
  await registerWith({ ...o, kubeConfig: o.kubeConfig ?? kubeConfig(o.sandbox) });
}

/** Test clean-up: the webhook configuration and the namespace, if present. */
export async function removeWebhookAndNamespace(name: string, namespace: string): Promise<void> {
  const kc = kubeConfig();
  await kc
    .makeApiClient(AdmissionregistrationV1Api)
    .deleteMutatingWebhookConfiguration({ name })
    .catch(() => undefined);
  await kc
    .makeApiClient(CoreV1Api)
    .deleteNamespace({ name: namespace })
    .catch(() => undefined);
}
