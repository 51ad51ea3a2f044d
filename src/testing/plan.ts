// Plans for tests: the envelope every fixture repeats (one tenant named after
// its namespace), so a test spells out only the workloads it is about.
import type { MigrationPlan, PlanWorkload } from '../plan/schema.js';

export function planFor(
  namespace: string,
  workloads: PlanWorkload[],
  metadata: MigrationPlan['metadata'] = { name: 'test' },
): MigrationPlan {
  return {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata,
    tenants: [{ name: namespace, namespace, workloads }],
  };
}
