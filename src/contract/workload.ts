// The shapes of cluster objects that discovery, protect and the reports share,
// and what a live pod template references. Below discovery, kube and reports.
import type { V1PodSpec } from '@kubernetes/client-node';
import type { WorkloadKind } from '../plan/schema.js';
import { AGENT_PREFIXES } from './annotations.js';

export const SYSTEM_NAMESPACES: ReadonlySet<string> = new Set([
  'kube-system',
  'kube-public',
  'kube-node-lease',
]);

/** The parts of a Deployment/StatefulSet/DaemonSet discovery reads. */
export interface WorkloadObject {
  kind: WorkloadKind;
  metadata: { name: string; namespace: string };
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
}

/**
 * The plan sources a live workload still references: `k8s-secret/<name>` for
 * every Secret its pod template reads (env, envFrom, volumes, projected
 * volumes) and `vault-agent/<file>` for every Vault Agent secret annotation.
 */
export function referencedSources(w: WorkloadObject): Set<string> {
  const spec = w.spec?.template?.spec;
  const out = new Set<string>();
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      const name = e.valueFrom?.secretKeyRef?.name;
      if (name) out.add(`k8s-secret/${name}`);
    }
    for (const ef of c.envFrom ?? [])
      if (ef.secretRef?.name) out.add(`k8s-secret/${ef.secretRef.name}`);
  }
  for (const v of spec?.volumes ?? []) {
    if (v.secret?.secretName) out.add(`k8s-secret/${v.secret.secretName}`);
    for (const p of v.projected?.sources ?? [])
      if (p.secret?.name) out.add(`k8s-secret/${p.secret.name}`);
  }
  for (const [key, value] of Object.entries(w.spec?.template?.metadata?.annotations ?? {})) {
    for (const prefix of AGENT_PREFIXES) {
      const p = `${prefix}agent-inject-secret-`;
      if (key.startsWith(p) && value) out.add(`vault-agent/${key.slice(p.length)}`);
    }
  }
  return out;
}
