// The built `cloudtaser webhook serve` as its own process, as a cluster runs
// it, and its registration with a sandbox's API server. Shared by the tests
// and the bench.
import { AdmissionregistrationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { INJECT_MATCH_EXPRESSION } from '../src/webhook/install.js';
import { projectRoot } from './paths.js';

export interface WebhookProcess {
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far (its log). */
  log(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** SIGKILL if still running (clean-up). */
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
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + 30_000;
  let port = 0;
  while (!port) {
    if (child.exitCode !== null) throw new Error(`webhook exited ${child.exitCode}: ${err.trim()}`);
    const m = /listening on https:\/\/[^:]+:(\d+)\/mutate/.exec(out);
    if (m) port = Number(m[1]);
    else if (Date.now() > deadline) {
      kill();
      throw new Error('timed out waiting for the webhook to listen');
    } else await new Promise((r) => setTimeout(r, 250));
  }
  return { port, child, log: () => err, exited, kill };
}

export interface WebhookRegistration {
  /** MutatingWebhookConfiguration name. */
  name: string;
  /** Only pods of this namespace are sent, so parallel users of the API server are unaffected. */
  namespace: string;
  port: number;
  /** PEM CA certificates the API server trusts for the webhook (concatenated). */
  caPems: readonly string[];
  timeoutSeconds?: number;
  reinvocation?: boolean;
  /** The cluster to register with. */
  kubeConfig: KubeConfig;
}

/**
 * Registers a webhook served on loopback with the real API server, shaped like
 * the one `target install` renders (failure policy Fail, the same
 * matchConditions), but addressed by URL and limited to one namespace.
 */
export async function registerWebhook(o: WebhookRegistration): Promise<void> {
  await o.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
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
