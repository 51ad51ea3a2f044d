// The built `cloudtaser webhook serve` as its own process, as a cluster runs
// it, and an HTTPS client that posts AdmissionReviews to it the way the API
// server does.
import { AdmissionregistrationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:https';
import { connect, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import { INJECT_MATCH_EXPRESSION } from '../../src/webhook/install.js';
import { projectRoot } from '../../testenv/paths.js';
import type { SandboxInfo } from '../../testenv/sandbox.js';
import { eventually, kubeConfig } from './sandbox.js';

export interface WebhookProcess {
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far (its log). */
  log(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** SIGKILL if still running (test clean-up). */
  kill(): void;
}

export async function startWebhookProcess(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<WebhookProcess> {
  const child = spawn(
    process.execPath,
    [
      join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
      'webhook',
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      ...args,
    ],
    { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      resolve(code);
    }),
  );
  const port = await eventually(
    'the webhook to listen',
    () => {
      if (child.exitCode !== null)
        throw new Error(`webhook exited ${child.exitCode}: ${err.trim()}`);
      const m = /listening on https:\/\/[^:]+:(\d+)\/mutate/.exec(out);
      return Promise.resolve(m ? Number(m[1]) : undefined);
    },
    30_000,
  );
  return {
    port,
    child,
    log: () => err,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

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

export interface TestWebhookOptions {
  /** MutatingWebhookConfiguration name. */
  name: string;
  /** Only pods of this namespace are sent, so parallel test files are unaffected. */
  namespace: string;
  port: number;
  /** PEM CA certificates the API server trusts for the webhook (concatenated). */
  caPems: readonly string[];
  timeoutSeconds?: number;
  reinvocation?: boolean;
  /** The sandbox whose API server gets it (default: the test run's). */
  sandbox?: SandboxInfo;
}

/**
 * Registers a webhook served on loopback with the real API server, shaped like
 * the one `target install` renders (failure policy Fail, the same
 * matchConditions), but addressed by URL and limited to one namespace.
 */
export async function registerWebhook(o: TestWebhookOptions): Promise<void> {
  await kubeConfig(o.sandbox)
    .makeApiClient(AdmissionregistrationV1Api)
    .createMutatingWebhookConfiguration({
      body: {
        metadata: { name: o.name },
        webhooks: [
          {
            name: 'inject.cloudtaser.io',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            ...(o.reinvocation ? { reinvocationPolicy: 'IfNeeded' } : {}),
            timeoutSeconds: o.timeoutSeconds ?? 10,
            clientConfig: {
              url: `https://127.0.0.1:${o.port}/mutate`,
              caBundle: Buffer.from(o.caPems.join('')).toString('base64'),
            },
            rules: [
              {
                apiGroups: [''],
                apiVersions: ['v1'],
                operations: ['CREATE'],
                resources: ['pods'],
              },
            ],
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': o.namespace } },
            matchConditions: [{ name: 'annotated', expression: INJECT_MATCH_EXPRESSION }],
          },
        ],
      },
    });
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
