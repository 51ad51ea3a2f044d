// Reads External Secrets Operator's objects (ExternalSecrets, SecretStores,
// ClusterSecretStores) from the cluster: references only, never values.
import { UserError } from '../core/errors.js';
import type { KubeTarget } from '../kube/config.js';
import { KubeApiError } from '../kube/errors.js';
import { listAll, restPages } from '../kube/list.js';
import { KubeRest, resourcePath } from '../kube/rest.js';
import type { EsoInventory, ExternalSecretObject, SecretStoreObject } from './eso.js';

/** ESO v0.16 serves v1 and v1beta1; v1 is the stored one. */
export const ESO_GROUP_VERSION = 'external-secrets.io/v1';

interface Raw {
  metadata?: { name?: string; namespace?: string };
  spec?: unknown;
}

async function listKind<T>(
  rest: KubeRest,
  target: KubeTarget,
  plural: string,
  namespace: string | undefined,
  map: (o: Raw) => T,
): Promise<T[]> {
  return listAll(
    restPages<Raw>(rest, resourcePath(ESO_GROUP_VERSION, plural, namespace)),
    map,
    { verb: 'list', resource: `${plural}.external-secrets.io`, namespace },
    target.server,
  );
}

const meta = (o: Raw): { name: string; namespace: string } => ({
  name: o.metadata?.name ?? '',
  namespace: o.metadata?.namespace ?? '',
});

/**
 * Every ExternalSecret and SecretStore (in `namespace`, or cluster-wide) and
 * every ClusterSecretStore. A cluster without ESO's API is a usage error:
 * `--from eso` has nothing to read there.
 */
export async function readEso(target: KubeTarget, namespace?: string): Promise<EsoInventory> {
  const rest = new KubeRest(target);
  try {
    const [externalSecrets, stores, clusterStores] = await Promise.all([
      listKind(rest, target, 'externalsecrets', namespace, (o) => ({
        metadata: meta(o),
        spec: o.spec as ExternalSecretObject['spec'],
      })),
      listKind(rest, target, 'secretstores', namespace, (o): SecretStoreObject => ({
        kind: 'SecretStore',
        metadata: meta(o),
        spec: o.spec as SecretStoreObject['spec'],
      })),
      listKind(rest, target, 'clustersecretstores', undefined, (o): SecretStoreObject => ({
        kind: 'ClusterSecretStore',
        metadata: { name: o.metadata?.name ?? '' },
        spec: o.spec as SecretStoreObject['spec'],
      })),
    ]);
    return { externalSecrets, stores: [...stores, ...clusterStores] };
  } catch (e) {
    if (e instanceof KubeApiError && e.status === 404) {
      throw new UserError(
        `the cluster does not serve ${ESO_GROUP_VERSION} (External Secrets Operator is not installed, or older than v0.16)`,
        'run discover without --from eso',
      );
    }
    throw e;
  }
}
