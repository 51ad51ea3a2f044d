import { Option, type Command } from '@commander-js/extra-typings';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { say, type Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import type { RegistryOptions } from '../../webhook/registry.js';

export const DEFAULT_INIT_IMAGE = 'ghcr.io/cloudtaser/cloudtaser-init:0.1.0';

async function readPem(ctx: Context, file: string, flag: string): Promise<string> {
  try {
    return await readFile(resolve(ctx.cwd, file), 'utf8');
  } catch {
    throw new UserError(`${flag} ${file}: cannot read`);
  }
}

/** Status and message of a failed API call, without its body's other fields. */
function apiFailure(e: unknown): string {
  const err = e as { code?: number; body?: unknown; message?: string };
  let detail = '';
  let body = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      body = undefined;
    }
  }
  if (body && typeof body === 'object' && 'message' in body && typeof body.message === 'string')
    detail = body.message;
  if (typeof err.code === 'number')
    return `the API server answered ${err.code}${detail ? ` (${detail})` : ''}`;
  const cause = (e as { cause?: { code?: string } }).cause?.code;
  return cause ?? (e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e));
}

/**
 * Reads image pull secrets with the webhook's own identity. Without a
 * kubeconfig or in-cluster credentials, images are looked up anonymously.
 * A secret that cannot be read is logged with the API server's reason and
 * reported to the registry client, which names it if the registry refuses.
 */
async function pullSecretReader(
  kubeconfig: string | undefined,
  ctx: Context,
  log: (line: string) => void,
): Promise<RegistryOptions['credentials']> {
  // Loaded on use: the Kubernetes client is large and most commands do not need it.
  const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
  const { credentialsFromDockerConfig } = await import('../../webhook/registry.js');
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(resolve(ctx.cwd, kubeconfig));
  else if (ctx.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else return undefined;
  const core = kc.makeApiClient(CoreV1Api);
  return async (namespace, names, registry) => {
    const problems: string[] = [];
    for (const name of names) {
      let raw: string | undefined;
      try {
        const secret = await core.readNamespacedSecret({ name, namespace });
        raw = secret.data?.['.dockerconfigjson'];
      } catch (e) {
        const problem = `cannot read pull secret ${namespace}/${name}: ${apiFailure(e)}`;
        log(problem);
        problems.push(problem);
        continue;
      }
      if (!raw) continue;
      const creds = credentialsFromDockerConfig(
        Buffer.from(raw, 'base64').toString('utf8'),
        registry,
      );
      if (creds) return creds;
    }
    if (problems.length > 0) throw new Error(problems.join('; '));
    return undefined;
  };
}

function seconds(flag: string, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > max)
      throw new UserError(`${flag} ${v}: not a number of seconds between 0 and ${max}`);
    return n;
  };
}

export function registerWebhookCommands(webhook: Command, ctx: Context): void {
  webhook
    .command('unregister')
    .description(
      "remove the webhook's MutatingWebhookConfiguration, then its guard policy (the Helm chart's pre-delete hook)",
    )
    .option('--name <name>', 'MutatingWebhookConfiguration', 'cloudtaser')
    .option('--guard <name>', 'ValidatingAdmissionPolicy and binding', 'cloudtaser-injected')
    .option(
      '--kubeconfig <file>',
      'kubeconfig (default: in-cluster service account, then KUBECONFIG)',
    )
    .action(async (o) => {
      const { KubeConfig } = await import('@kubernetes/client-node');
      const { unregisterWebhook } = await import('../../webhook/unregister.js');
      let kc = new KubeConfig();
      if (!o.kubeconfig && ctx.env.KUBERNETES_SERVICE_HOST) {
        // In a pod (the chart's hook): its own service account.
        kc.loadFromCluster();
      } else {
        const { loadKubeFor } = await import('../../kube/config.js');
        kc = loadKubeFor({ kubeconfig: o.kubeconfig }, ctx).kc;
      }
      for (const line of await unregisterWebhook(kc, {
        webhookConfiguration: o.name,
        guard: o.guard,
      }))
        say(ctx.stdout, line);
    });
  webhook
    .command('serve')
    .description('run the mutating admission webhook that injects cloudtaser-init and the wrapper')
    .requiredOption('--tls-cert <file>', 'serving certificate (PEM)')
    .requiredOption('--tls-key <file>', 'serving key (PEM)')
    .addOption(
      new Option('--port <port>', 'HTTPS port (0 picks a free one)')
        .default(8443)
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 65535)
            throw new UserError(`--port ${v}: not a port`);
          return n;
        }),
    )
    .option('--host <address>', 'address to listen on', '0.0.0.0')
    .option('--init-image <image>', 'image holding /cloudtaser-wrapper', DEFAULT_INIT_IMAGE)
    .option(
      '--auth-mount-path <path>',
      'Kubernetes auth mount the wrapper logs in at',
      'auth/kubernetes',
    )
    .option('--insecure-registry <host...>', 'registries (host:port) to reach over plain HTTP')
    .option(
      '--kubeconfig <file>',
      'kubeconfig for reading image pull secrets (default: in-cluster service account, if any)',
    )
    .addOption(
      new Option(
        '--review-timeout <seconds>',
        "time for one review, image lookups included; keep it below the webhook's timeoutSeconds",
      )
        .default(8)
        .argParser(seconds('--review-timeout', 30)),
    )
    .addOption(
      new Option(
        '--tls-check-interval <seconds>',
        'how often the certificate files are re-read to pick up a renewal',
      )
        .default(10)
        .argParser(seconds('--tls-check-interval', 3600)),
    )
    .action(async (o) => {
      // Loaded on use, like every command's implementation: start-up stays small.
      const { RegistryClient } = await import('../../webhook/registry.js');
      const { startWebhookServer } = await import('../../webhook/server.js');
      const { pairProblem } = await import('../../webhook/tls.js');
      const log = (line: string): void => {
        say(ctx.stderr, line);
      };
      const certFile = resolve(ctx.cwd, o.tlsCert);
      const keyFile = resolve(ctx.cwd, o.tlsKey);
      const cert = await readPem(ctx, o.tlsCert, '--tls-cert');
      const key = await readPem(ctx, o.tlsKey, '--tls-key');
      const problem = pairProblem({ cert, key });
      if (problem) throw new UserError(`--tls-cert ${o.tlsCert} --tls-key ${o.tlsKey}: ${problem}`);
      const registry = new RegistryClient({
        insecure: o.insecureRegistry ?? [],
        credentials: await pullSecretReader(o.kubeconfig, ctx, log),
      });
      const budgetMs = o.reviewTimeout * 1000;
      const server = await startWebhookServer({
        cert,
        key,
        reload: { certFile, keyFile, intervalMs: o.tlsCheckInterval * 1000 },
        port: o.port,
        host: o.host,
        config: {
          initImage: o.initImage,
          authMountPath: o.authMountPath.replace(/^\/+|\/+$/g, ''),
        },
        resolve: (image, namespace, pullSecrets, signal) =>
          registry.resolve(image, namespace, pullSecrets, signal),
        reviewBudgetMs: budgetMs,
        log,
      });
      say(ctx.stdout, `cloudtaser webhook listening on https://${o.host}:${server.port}/mutate`);
      // Serve until SIGINT/SIGTERM.
      await new Promise<void>((done) => {
        if (!ctx.signal) return;
        if (ctx.signal.aborted) done();
        ctx.signal.addEventListener('abort', () => {
          done();
        });
      });
      // The pod is being replaced: stop taking reviews, answer those in hand
      // (each ends within its budget), then exit.
      log('shutting down: no new connections');
      await server.close(budgetMs + 2000);
      log('stopped');
    });
}
