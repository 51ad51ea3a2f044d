// Reads a cluster's identity (identity.ts) from its API server, through the
// kubeconfig context a command uses. Read-only, except the reviewer token,
// which `target fingerprint --reviewer-token` asks for explicitly.
import { CoreV1Api, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { allSettledOrThrow } from '../core/concurrency.js';
import { ServerError, UserError } from '../core/errors.js';
import { kubeError, statusOf } from '../kube/errors.js';
import type { KubeTarget } from '../kube/config.js';
import { KubeRest, resourcePath } from '../kube/rest.js';
import { fingerprintOf, type ClusterFacts } from './identity.js';

/** The namespace and name of the service account vault reviews tokens as (`--reviewer-token`). */
export const REVIEWER = { namespace: 'kube-system', name: 'cloudtaser-token-reviewer' } as const;

async function kubeconfigCa(target: KubeTarget): Promise<string | undefined> {
  const cluster = target.kc.getCurrentCluster();
  if (cluster?.caData) return Buffer.from(cluster.caData, 'base64').toString('utf8');
  if (cluster?.caFile) return readFile(cluster.caFile, 'utf8');
  return undefined;
}

/** Decodes the `iss` of a JWT's payload; the token itself is dropped by the caller. */
function issuerOf(jwt: string): string | undefined {
  const payload = jwt.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      iss?: unknown;
    };
    return typeof claims.iss === 'string' ? claims.iss : undefined;
  } catch {
    return undefined;
  }
}

async function readIssuer(target: KubeTarget, rest: KubeRest): Promise<string> {
  try {
    const doc = await rest.call<{ issuer?: unknown }>({
      method: 'GET',
      path: '/.well-known/openid-configuration',
    });
    if (typeof doc.issuer === 'string' && doc.issuer !== '') return doc.issuer;
  } catch (e) {
    const status = statusOf(e);
    // Discovery can be turned off or forbidden; a token the cluster signs names its issuer too.
    if (status !== 404 && status !== 403) {
      throw kubeError(
        e,
        { verb: 'get', resource: 'the service-account issuer discovery document' },
        target.server,
      );
    }
  }
  try {
    const tr = await target.api(CoreV1Api).createNamespacedServiceAccountToken({
      namespace: 'default',
      name: 'default',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const iss = tr.status?.token ? issuerOf(tr.status.token) : undefined;
    if (iss) return iss;
  } catch (e) {
    throw kubeError(
      e,
      { verb: 'create', resource: 'serviceaccounts/token', namespace: 'default', name: 'default' },
      target.server,
    );
  }
  throw new ServerError('the cluster names no service-account issuer');
}

/** The cluster's identity: kube-system UID, issuer and CA bundle, and its fingerprint. */
export async function readClusterFacts(
  target: KubeTarget,
): Promise<ClusterFacts & { fingerprint: string }> {
  const rest = new KubeRest(target);
  // Independent reads, sent together (a command pays for them before it acts).
  const readUid = async (): Promise<string | undefined> => {
    try {
      const ns = await rest.call<{ metadata?: { uid?: string } }>({
        method: 'GET',
        path: resourcePath('v1', 'namespaces', undefined, 'kube-system'),
      });
      return ns.metadata?.uid;
    } catch (e) {
      throw kubeError(
        e,
        { verb: 'get', resource: 'namespaces', name: 'kube-system' },
        target.server,
      );
    }
  };
  // The cluster's own CA (what its pods trust, the same for every user of
  // the cluster); the kubeconfig's only where the cluster publishes none.
  const readRootCa = async (): Promise<string | undefined> => {
    try {
      const cm = await rest.call<{ data?: Record<string, string> }>({
        method: 'GET',
        path: resourcePath('v1', 'configmaps', 'kube-system', 'kube-root-ca.crt'),
      });
      return cm.data?.['ca.crt'];
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw kubeError(
        e,
        { verb: 'get', resource: 'configmaps', namespace: 'kube-system', name: 'kube-root-ca.crt' },
        target.server,
      );
    }
  };
  const [kubeSystemUid, rootCa] = await allSettledOrThrow([readUid(), readRootCa()]);
  if (!kubeSystemUid)
    throw new ServerError('the API server returned namespace kube-system without a uid');
  // After the reads above, not beside them: where discovery is off, the
  // issuer comes from a TokenRequest, a write not worth making for a user
  // who may not read kube-system and is refused anyway.
  const issuer = await readIssuer(target, rest);
  let caBundle = rootCa;
  let caSource: ClusterFacts['caSource'] = 'kube-root-ca.crt';
  if (!caBundle) {
    caSource = 'kubeconfig';
    caBundle = await kubeconfigCa(target);
  }
  if (!caBundle) {
    throw new UserError(
      'the cluster publishes no CA (ConfigMap kube-system/kube-root-ca.crt) and the kubeconfig context names none',
    );
  }
  const facts: ClusterFacts = {
    apiServer: target.server,
    caBundle,
    caSource,
    issuer,
    kubeSystemUid,
  };
  return { ...facts, fingerprint: fingerprintOf(facts) };
}

/**
 * The public keys the cluster signs service-account tokens with, as PEM
 * (from /openid/v1/jwks). Public material: it lets vault check a token
 * without any connection to the cluster. Empty when the cluster does not
 * serve them.
 */
export async function readSigningKeys(target: KubeTarget): Promise<string[]> {
  const rest = new KubeRest(target);
  try {
    const jwks = await rest.call<{ keys?: JsonWebKey[] }>({
      method: 'GET',
      path: '/openid/v1/jwks',
      accept: 'application/jwk-set+json',
    });
    return (jwks.keys ?? []).map((k) =>
      createPublicKey({ key: k, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString(),
    );
  } catch (e) {
    const status = statusOf(e);
    if (status === 404 || status === 403) return [];
    throw kubeError(
      e,
      { verb: 'get', resource: 'the service-account signing keys (jwks)' },
      target.server,
    );
  }
}

/**
 * Creates (when missing) the reviewer service account and its
 * `system:auth-delegator` binding, and returns a token for it valid for
 * `ttlSeconds`. The token is secret: the caller writes it to a private file
 * and never prints it.
 */
export async function createReviewerToken(
  target: KubeTarget,
  ttlSeconds: number,
): Promise<{ token: string; expiresAt: string }> {
  const core = target.api(CoreV1Api);
  const rbac = target.api(RbacAuthorizationV1Api);
  const ignoreExists = (action: Parameters<typeof kubeError>[1]) => (e: unknown) => {
    if (statusOf(e) !== 409) throw kubeError(e, action, target.server);
  };
  await core
    .createNamespacedServiceAccount({
      namespace: REVIEWER.namespace,
      body: {
        metadata: {
          name: REVIEWER.name,
          labels: { 'app.kubernetes.io/managed-by': 'cloudtaser' },
        },
      },
    })
    .catch(
      ignoreExists({ verb: 'create', resource: 'serviceaccounts', namespace: REVIEWER.namespace }),
    );
  await rbac
    .createClusterRoleBinding({
      body: {
        metadata: {
          name: REVIEWER.name,
          labels: { 'app.kubernetes.io/managed-by': 'cloudtaser' },
        },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'system:auth-delegator',
        },
        subjects: [{ kind: 'ServiceAccount', name: REVIEWER.name, namespace: REVIEWER.namespace }],
      },
    })
    .catch(
      ignoreExists({ verb: 'create', resource: 'clusterrolebindings.rbac.authorization.k8s.io' }),
    );
  try {
    const tr = await core.createNamespacedServiceAccountToken({
      namespace: REVIEWER.namespace,
      name: REVIEWER.name,
      // No audience: the API server's own, so the token authenticates TokenReviews.
      body: { spec: { audiences: [], expirationSeconds: ttlSeconds } },
    });
    const token = tr.status?.token;
    if (!token) throw new Error('the TokenRequest returned no token');
    const expiresAt = new Date(tr.status?.expirationTimestamp ?? Date.now()).toISOString();
    return { token, expiresAt };
  } catch (e) {
    throw kubeError(
      e,
      {
        verb: 'create',
        resource: 'serviceaccounts/token',
        namespace: REVIEWER.namespace,
        name: REVIEWER.name,
      },
      target.server,
    );
  }
}
