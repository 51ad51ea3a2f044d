import { Option, type Command } from '@commander-js/extra-typings';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { DEFAULT_INIT_IMAGE } from './webhook.js';

export function registerTargetInstall(target: Command, ctx: Context): void {
  target
    .command('install')
    .description(
      'render the webhook manifests (Deployment, Service, MutatingWebhookConfiguration, RBAC, certificate); apply them with kubectl apply -f -',
    )
    .option('--dry-run', 'render only (install always renders; apply the output yourself)', false)
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['yaml']).default('yaml'),
    )
    .option('-n, --namespace <namespace>', 'namespace for the webhook', 'cloudtaser-system')
    .option('--image <image>', 'webhook image', 'ghcr.io/cloudtaser/cloudtaser-webhook:0.1.0')
    .option('--init-image <image>', 'image holding /cloudtaser-wrapper', DEFAULT_INIT_IMAGE)
    .addOption(
      new Option('--replicas <n>', 'webhook replicas').default(2).argParser((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 20)
          throw new UserError(`--replicas ${v}: 1 to 20`);
        return n;
      }),
    )
    .addOption(
      new Option('--failure-policy <policy>', 'what the API server does when the webhook is down')
        .choices(['Fail', 'Ignore'])
        .default('Fail'),
    )
    .option(
      '--tls-secret <name>',
      'use an existing kubernetes.io/tls Secret instead of cert-manager',
    )
    .option('--ca-bundle <file>', 'CA (PEM) that signed --tls-secret')
    .option(
      '--registry-auth',
      'let the webhook read image pull secrets (a cluster-wide get on secrets)',
      false,
    )
    .option(
      '--auth-mount-path <path>',
      'Kubernetes auth mount the wrapper logs in at',
      'auth/kubernetes',
    )
    .action(async (o) => {
      if (o.tlsSecret && !o.caBundle) {
        throw new UserError('--tls-secret needs --ca-bundle (the CA the API server must trust)');
      }
      let caBundle: string | undefined;
      if (o.caBundle) {
        try {
          caBundle = await readFile(resolve(ctx.cwd, o.caBundle), 'utf8');
        } catch {
          throw new UserError(`--ca-bundle ${o.caBundle}: cannot read`);
        }
      }
      const { installManifests, renderYaml } = await import('../../webhook/install.js');
      const objects = installManifests({
        namespace: o.namespace,
        image: o.image,
        initImage: o.initImage,
        replicas: o.replicas,
        failurePolicy: o.failurePolicy,
        certManager: !o.tlsSecret,
        tlsSecret: o.tlsSecret,
        caBundle,
        registryAuth: o.registryAuth,
        authMountPath: o.authMountPath.replace(/^\/+|\/+$/g, ''),
      });
      ctx.stdout.write(renderYaml(objects));
    });
}
