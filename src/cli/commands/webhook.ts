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

/**
 * Reads image pull secrets with the webhook's own identity. Without a
 * kubeconfig or in-cluster credentials, images are looked up anonymously.
 */
async function pullSecretReader(
  kubeconfig: string | undefined,
  ctx: Context,
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
    for (const name of names) {
      const secret = await core.readNamespacedSecret({ name, namespace }).catch(() => undefined);
      const raw = secret?.data?.['.dockerconfigjson'];
      if (!raw) continue;
      const creds = credentialsFromDockerConfig(
        Buffer.from(raw, 'base64').toString('utf8'),
        registry,
      );
      if (creds) return creds;
    }
    return undefined;
  };
}

export function registerWebhookCommands(webhook: Command, ctx: Context): void {
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
    .action(async (o) => {
      // Loaded on use, like every command's implementation: start-up stays small.
      const { RegistryClient } = await import('../../webhook/registry.js');
      const { startWebhookServer } = await import('../../webhook/server.js');
      const registry = new RegistryClient({
        insecure: o.insecureRegistry ?? [],
        credentials: await pullSecretReader(o.kubeconfig, ctx),
      });
      const server = await startWebhookServer({
        cert: await readPem(ctx, o.tlsCert, '--tls-cert'),
        key: await readPem(ctx, o.tlsKey, '--tls-key'),
        port: o.port,
        host: o.host,
        config: {
          initImage: o.initImage,
          authMountPath: o.authMountPath.replace(/^\/+|\/+$/g, ''),
        },
        resolve: (image, namespace, pullSecrets) => registry.resolve(image, namespace, pullSecrets),
        log: (line) => {
          say(ctx.stderr, line);
        },
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
      await server.close();
    });
}
