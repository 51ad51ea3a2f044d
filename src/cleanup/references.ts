// Who in a namespace still names a Secret: pods of any controller, the pod
// templates of every workload kind (CronJobs and old ReplicaSets included),
// Ingress TLS and ServiceAccounts. Pure: the runner lists the objects, this
// file only reads them.
import type { V1ObjectMeta, V1PodSpec } from '@kubernetes/client-node';
import { ANNOTATION } from '../contract/annotations.js';
import { podSpecSecretRefs } from '../contract/workload.js';

/** One object that names a Secret, and how. */
export interface Referrer {
  kind: string;
  namespace: string;
  name: string;
  /** How it names the Secret: env, envFrom, volume, imagePullSecrets, tls, secrets… */
  via: string[];
  /** Why it matters although it may look harmless (a protected template, a rollback revision). */
  note?: string;
  /**
   * Only an old revision a Deployment keeps for `rollout undo` (a ReplicaSet
   * at zero replicas): nothing runs from it, so it does not hold the Secret
   * back; the output says a rollback to it would no longer start.
   */
  history?: boolean;
}

interface Meta {
  metadata?: Pick<V1ObjectMeta, 'name' | 'annotations' | 'ownerReferences'>;
}

interface Template {
  metadata?: { annotations?: Record<string, string> };
  spec?: V1PodSpec;
}

export interface PodLike extends Meta {
  spec?: V1PodSpec;
}

export interface TemplateOwner extends Meta {
  spec?: { replicas?: number; template?: Template };
}

export interface CronJobLike extends Meta {
  spec?: { jobTemplate?: { spec?: { template?: Template } } };
}

export interface IngressLike extends Meta {
  spec?: { tls?: { secretName?: string }[] };
}

export interface ServiceAccountLike extends Meta {
  secrets?: { name?: string }[];
  imagePullSecrets?: { name?: string }[];
}

/** Everything in one namespace that may name a Secret. */
export interface NamespaceObjects {
  pods: PodLike[];
  deployments: TemplateOwner[];
  statefulSets: TemplateOwner[];
  daemonSets: TemplateOwner[];
  replicaSets: TemplateOwner[];
  jobs: TemplateOwner[];
  cronJobs: CronJobLike[];
  ingresses: IngressLike[];
  serviceAccounts: ServiceAccountLike[];
}

export const EMPTY_NAMESPACE: NamespaceObjects = {
  pods: [],
  deployments: [],
  statefulSets: [],
  daemonSets: [],
  replicaSets: [],
  jobs: [],
  cronJobs: [],
  ingresses: [],
  serviceAccounts: [],
};

/** Secret name → every object in the namespace that names it, in a stable order. */
export function secretReferrers(
  namespace: string,
  objects: NamespaceObjects,
): Map<string, Referrer[]> {
  const out = new Map<string, Map<string, Referrer>>();
  const add = (
    secret: string | undefined,
    kind: string,
    name: string,
    via: string,
    note?: string,
    history?: boolean,
  ) => {
    if (!secret) return;
    let bySecret = out.get(secret);
    if (!bySecret) {
      bySecret = new Map();
      out.set(secret, bySecret);
    }
    const key = `${kind}/${name}`;
    let r = bySecret.get(key);
    if (!r) {
      r = {
        kind,
        namespace,
        name,
        via: [],
        ...(note ? { note } : {}),
        ...(history ? { history } : {}),
      };
      bySecret.set(key, r);
    }
    if (!r.via.includes(via)) r.via.push(via);
  };
  const template = (
    kind: string,
    o: Meta,
    t: Template | undefined,
    note?: string,
    history?: boolean,
  ): void => {
    const name = o.metadata?.name ?? '';
    // Protect leaves a workload's native references in place; until they are
    // removed the Secret is still read (the kubelet resolves it at pod start).
    const protectedNote =
      t?.metadata?.annotations?.[ANNOTATION.inject] === 'true'
        ? 'protected by cloudtaser, but its pod template still reads the Secret natively'
        : undefined;
    for (const r of podSpecSecretRefs(t?.spec))
      add(r.secret, kind, name, r.via, note ?? protectedNote, history);
  };

  for (const p of objects.pods) {
    for (const r of podSpecSecretRefs(p.spec)) add(r.secret, 'Pod', p.metadata?.name ?? '', r.via);
  }
  for (const d of objects.deployments) template('Deployment', d, d.spec?.template);
  for (const s of objects.statefulSets) template('StatefulSet', s, s.spec?.template);
  for (const d of objects.daemonSets) template('DaemonSet', d, d.spec?.template);
  for (const rs of objects.replicaSets) {
    // A Deployment keeps old ReplicaSets at zero replicas as rollback
    // targets: `kubectl rollout undo` would start pods that need the Secret.
    const owner = rs.metadata?.ownerReferences?.find((o) => o.kind === 'Deployment');
    const history = owner !== undefined && rs.spec?.replicas === 0;
    const note = history ? `old revision of Deployment ${owner.name} kept for rollback` : undefined;
    template('ReplicaSet', rs, rs.spec?.template, note, history);
  }
  for (const j of objects.jobs) template('Job', j, j.spec?.template);
  for (const c of objects.cronJobs) template('CronJob', c, c.spec?.jobTemplate?.spec?.template);
  for (const i of objects.ingresses) {
    for (const t of i.spec?.tls ?? []) add(t.secretName, 'Ingress', i.metadata?.name ?? '', 'tls');
  }
  for (const sa of objects.serviceAccounts) {
    const name = sa.metadata?.name ?? '';
    for (const s of sa.secrets ?? []) add(s.name, 'ServiceAccount', name, 'secrets');
    for (const s of sa.imagePullSecrets ?? [])
      add(s.name, 'ServiceAccount', name, 'imagePullSecrets');
  }
  return new Map([...out].map(([secret, refs]) => [secret, [...refs.values()]]));
}
