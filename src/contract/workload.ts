// The shapes of cluster objects that discovery, protect and the reports share,
// and what a live pod template references. Below discovery, kube and reports.
import type { V1PodSpec } from '@kubernetes/client-node';
import type { WorkloadKind } from '../plan/model.js';
import { AGENT_PREFIXES } from './annotations.js';

/**
 * The label cloudtaser's own components carry (the webhook Deployment from
 * the Helm chart and from `target install`): they keep their own Secrets
 * (the webhook's serving certificate) native, since they are what fetches
 * from vault for everyone else.
 */
export const PART_OF_CLOUDTASER = { key: 'app.kubernetes.io/part-of', value: 'cloudtaser' };

export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set([
  'kube-system',
  'kube-public',
  'kube-node-lease',
]);

/** The parts of a Deployment/StatefulSet/DaemonSet discovery reads. */
export interface WorkloadObject {
  kind: WorkloadKind;
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { annotations?: Record<string, string> };
      spec?: V1PodSpec;
    };
  };
}

/** A Secret as discovery sees it: its key names, never its values. */
export interface SecretKeys {
  namespace: string;
  name: string;
  type?: string;
  keys: readonly string[];
  /** Its ownerReferences (kind and name): a SealedSecret or ExternalSecret that writes it. */
  owners?: readonly { kind: string; name: string }[];
}

/** How a pod spec names a Secret. */
export type SecretRefVia =
  'env' | 'envFrom' | 'volume' | 'projected volume' | 'imagePullSecrets' | 'volume credentials';

/** The ways an application reads a Secret's values (as opposed to the kubelet using it). */
const VALUE_REFS: ReadonlySet<SecretRefVia> = new Set([
  'env',
  'envFrom',
  'volume',
  'projected volume',
]);

/** Volume sources that name a Secret holding credentials for the volume driver. */
type CredentialVolume = Partial<
  Record<
    'csi' | 'cephfs' | 'rbd' | 'flexVolume' | 'iscsi' | 'cinder' | 'scaleIO' | 'storageos',
    { secretRef?: { name?: string }; nodePublishSecretRef?: { name?: string } }
  >
> & { azureFile?: { secretName?: string } };

/**
 * Every Secret a pod spec names and how: env and envFrom of every container
 * (init and ephemeral ones included), secret and projected volumes, volume
 * drivers' credential Secrets, and imagePullSecrets. One entry per
 * (Secret, way), in a stable order.
 */
export function podSpecSecretRefs(
  spec: V1PodSpec | undefined,
): { secret: string; via: SecretRefVia }[] {
  const out = new Map<string, { secret: string; via: SecretRefVia }>();
  const add = (secret: string | undefined, via: SecretRefVia): void => {
    if (secret) out.set(`${secret}\u0000${via}`, { secret, via });
  };
  const containers = [
    ...(spec?.initContainers ?? []),
    ...(spec?.containers ?? []),
    ...(spec?.ephemeralContainers ?? []),
  ];
  for (const c of containers) {
    for (const e of c.env ?? []) add(e.valueFrom?.secretKeyRef?.name, 'env');
    for (const ef of c.envFrom ?? []) add(ef.secretRef?.name, 'envFrom');
  }
  for (const v of spec?.volumes ?? []) {
    add(v.secret?.secretName, 'volume');
    for (const p of v.projected?.sources ?? []) add(p.secret?.name, 'projected volume');
    const cv = v as CredentialVolume;
    add(cv.azureFile?.secretName, 'volume credentials');
    add(cv.csi?.nodePublishSecretRef?.name, 'volume credentials');
    for (const d of [
      cv.cephfs,
      cv.rbd,
      cv.flexVolume,
      cv.iscsi,
      cv.cinder,
      cv.scaleIO,
      cv.storageos,
    ])
      add(d?.secretRef?.name, 'volume credentials');
  }
  for (const r of spec?.imagePullSecrets ?? []) add(r.name, 'imagePullSecrets');
  return [...out.values()];
}

/**
 * The plan sources a live workload still references: `k8s-secret/<name>` for
 * every Secret its pod template reads (env, envFrom, volumes, projected
 * volumes) and `vault-agent/<file>` for every Vault Agent secret annotation.
 */
export function referencedSources(w: WorkloadObject): Set<string> {
  const out = new Set<string>();
  for (const r of podSpecSecretRefs(w.spec?.template?.spec))
    if (VALUE_REFS.has(r.via)) out.add(`k8s-secret/${r.secret}`);
  for (const [key, value] of Object.entries(w.spec?.template?.metadata?.annotations ?? {})) {
    for (const prefix of AGENT_PREFIXES) {
      const p = `${prefix}agent-inject-secret-`;
      if (key.startsWith(p) && value) out.add(`vault-agent/${key.slice(p.length)}`);
    }
  }
  return out;
}
