// A cluster's identity, as vault needs it to trust the cluster and as a plan
// records it to be tied to the cluster it was made from. Pure: reading the
// facts from the API server is read.ts, the file format is file.ts.
import { createHash } from 'node:crypto';

/** The facts that identify a cluster, every one read from the cluster itself. */
export interface ClusterFacts {
  /** API server URL of the kubeconfig context the facts were read through. */
  apiServer: string;
  /** PEM certificates vault trusts the API server with. */
  caBundle: string;
  /** Where caBundle came from: the cluster's own ConfigMap, or the kubeconfig when it has none. */
  caSource: 'kube-root-ca.crt' | 'kubeconfig';
  /** The service-account token issuer (`iss` of every token the cluster signs). */
  issuer: string;
  /** UID of the kube-system namespace: created once per cluster, never reused. */
  kubeSystemUid: string;
}

const CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle as bare base64 DER, sorted: layout and order do not matter. */
export function certificates(pem: string): string[] {
  return [...pem.matchAll(CERT)].map((m) => (m[1] ?? '').replace(/\s+/g, '')).sort();
}

/**
 * The short fingerprint of a cluster: `sha256:` and the first 16 hex digits
 * of a hash over the issuer, the kube-system UID and the CA certificates.
 *
 * The API server URL is recorded beside it but not hashed: one cluster is
 * reached through different addresses (a bastion, a port-forward, an
 * internal name), and it is still the same cluster. 64 bits tell clusters
 * apart; nothing here is a secret an attacker would have to guess.
 */
export function fingerprintOf(
  f: Pick<ClusterFacts, 'issuer' | 'kubeSystemUid' | 'caBundle'>,
): string {
  const h = createHash('sha256');
  h.update('cloudtaser-cluster-v1\n');
  h.update(`issuer=${f.issuer}\n`);
  h.update(`kube-system=${f.kubeSystemUid}\n`);
  for (const c of certificates(f.caBundle)) h.update(`ca=${c}\n`);
  return `sha256:${h.digest('hex').slice(0, 16)}`;
}

export { FINGERPRINT_FORMAT } from '../plan/model.js';

/** What a command does about a plan's cluster: pure, from the two fingerprints. */
export type ClusterVerdict =
  { kind: 'match' } | { kind: 'mismatch'; plan: string; current: string; overridden: boolean };

export function judgeCluster(
  planFingerprint: string,
  current: string,
  mismatchOk: boolean,
): ClusterVerdict {
  if (planFingerprint === current) return { kind: 'match' };
  return { kind: 'mismatch', plan: planFingerprint, current, overridden: mismatchOk };
}
