// SecretMapping resources (cloudtaser.io/v1alpha1), one per planned workload:
// discover's output when no plan file is asked for.
import { stringify } from 'yaml';
import type { MigrationPlan } from '../plan/schema.js';

export const SECRET_MAPPING_API_VERSION = 'cloudtaser.io/v1alpha1';

export interface SecretMapping {
  apiVersion: typeof SECRET_MAPPING_API_VERSION;
  kind: 'SecretMapping';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: {
    workloadRef: { apiVersion: 'apps/v1'; kind: string; name: string };
    vaultAddress: string;
    vaultRole: string;
    serviceAccount: string;
    secrets: { source: string; vaultPath: string; fields: Record<string, string> }[];
  };
}

export function secretMappings(
  plan: MigrationPlan,
  vaultAddress: string,
  vaultRole: string,
): SecretMapping[] {
  return plan.tenants.flatMap((t) =>
    t.workloads.map((w) => ({
      apiVersion: SECRET_MAPPING_API_VERSION,
      kind: 'SecretMapping' as const,
      metadata: {
        // Kind in the name: a Deployment and a StatefulSet may share a name.
        name: `${w.kind.toLowerCase()}-${w.name}`,
        namespace: t.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'cloudtaser' },
      },
      spec: {
        workloadRef: { apiVersion: 'apps/v1' as const, kind: w.kind, name: w.name },
        vaultAddress,
        vaultRole,
        serviceAccount: w.serviceAccount,
        secrets: w.secrets.map((s) => ({
          ...s,
          fields: { ...s.fields },
          ...(s.files ? { files: { ...s.files } } : {}),
        })),
      },
    })),
  );
}

/** A multi-document YAML stream, as `kubectl apply -f -` takes it. */
export function renderSecretMappings(mappings: readonly SecretMapping[]): string {
  return mappings.map((m) => `---\n${stringify(m, { lineWidth: 0 })}`).join('');
}
