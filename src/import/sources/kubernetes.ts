// `--from kubernetes`: the Secret the plan names, in the workload's namespace,
// read from the API server of the current kubeconfig context.
import { CoreV1Api } from '@kubernetes/client-node';
import type { Context } from '../../core/context.js';
import { loadKube } from '../../kube/config.js';
import { kubeError, statusOf } from '../../kube/errors.js';
import { offlineUnsealer } from '../../sources/sealed-secrets-kube.js';
import { secretKey, type FieldOrigin, type SourceSecret } from '../plan.js';
import { backoff } from './retry.js';
import type { ImportSource } from './source.js';

export function kubernetesSource(
  o: { kubeconfig?: string | undefined; context?: string | undefined },
  ctx: Context,
): ImportSource {
  const kube = loadKube({ kubeconfig: o.kubeconfig, context: o.context }, ctx.env, ctx.cwd);
  const core = kube.api(CoreV1Api);
  return {
    description: `Kubernetes (context ${kube.context})`,
    nameOf: secretKey,
    read: (_name, origin) => readSecret(core, kube.server, origin, ctx.signal),
    close: () => undefined,
  };
}

/**
 * `--from sealed-secrets`: the Secrets the controller unsealed, read as
 * `--from kubernetes` reads them; with `--sealing-key`, the SealedSecrets
 * themselves, unsealed here with the controller's private key(s).
 */
export async function sealedSecretsSource(
  o: {
    kubeconfig?: string | undefined;
    context?: string | undefined;
    sealingKey?: string | undefined;
  },
  ctx: Context,
): Promise<ImportSource> {
  const unsealer =
    o.sealingKey === undefined ? undefined : await offlineUnsealer(o.sealingKey, ctx);
  const kube = loadKube({ kubeconfig: o.kubeconfig, context: o.context }, ctx.env, ctx.cwd);
  const core = kube.api(CoreV1Api);
  const how = unsealer
    ? 'SealedSecrets unsealed offline with --sealing-key'
    : 'the Secrets the controller unsealed';
  return {
    description: `Sealed Secrets (${how}) (context ${kube.context})`,
    nameOf: secretKey,
    // Offline: a SealedSecret's values come from the SealedSecret, not its Secret.
    read: (_name, origin) =>
      unsealer && origin.sealed
        ? unsealer(kube, origin.namespace, origin.secret)
        : readSecret(core, kube.server, origin, ctx.signal),
    close: () => undefined,
  };
}

/**
 * Reads one Secret and keeps its keys as bytes. A Secret that does not exist
 * (or may not be read) fails the paths that need it, by name; an API server
 * that cannot be reached fails the run. Throttling (429) is retried with
 * backoff, bounded.
 */
async function readSecret(
  core: CoreV1Api,
  server: string,
  o: FieldOrigin,
  signal: AbortSignal | undefined,
  retries = 6,
): Promise<SourceSecret> {
  for (let attempt = 0; ; attempt++) {
    try {
      const s = await core.readNamespacedSecret({ name: o.secret, namespace: o.namespace });
      const data = new Map<string, Buffer>();
      for (const [k, v] of Object.entries(s.data ?? {})) data.set(k, Buffer.from(v, 'base64'));
      return { kind: 'found', data };
    } catch (e) {
      const status = statusOf(e);
      if ((status === 429 || status === 503) && attempt < retries) {
        await backoff(attempt, signal);
        continue;
      }
      if (status === 404) {
        return { kind: 'missing', reason: `Secret ${secretKey(o)} not found` };
      }
      const err = kubeError(
        e,
        { verb: 'get', resource: 'secrets', namespace: o.namespace, name: o.secret },
        server,
      );
      if (status === undefined) throw err;
      return { kind: 'missing', reason: err.message };
    }
  }
}
