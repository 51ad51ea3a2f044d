// Findings about protected workloads and the vault side, as pure functions
// of the inventory and the vault facts, shared by validate and audit.
import type { PolicyRule } from './policy.js';
import { excessGrants, governingRule, grantsRead } from './policy.js';
import type { Inventory, WorkloadFacts } from './inventory.js';
import type { VaultFacts } from './vault-facts.js';
import type { SecretKeys } from '../contract/workload.js';
import { mappedFields, nativeSecretOf } from '../plan/model.js';
import type { MigrationPlan, PlanWorkload } from '../plan/schema.js';
import { VAULT_TOKEN_AUDIENCE } from '../contract/annotations.js';

export type Severity = 'error' | 'warning';

export interface Finding {
  severity: Severity;
  code:
    | 'annotations-malformed'
    | 'auth-missing'
    | 'role-missing'
    | 'role-namespace'
    | 'role-service-account'
    | 'role-audience'
    | 'policy-missing'
    | 'path-not-granted'
    | 'path-missing'
    | 'path-deleted'
    | 'field-missing'
    | 'native-secret-referenced'
    | 'native-secret-remains'
    | 'unprotected'
    | 'role-too-broad'
    | 'pods-without-init';
  /** `Kind namespace/name`, `Secret namespace/name`, or a role for role-level findings. */
  subject: string;
  message: string;
}

export const subjectOf = (w: WorkloadFacts): string => `${w.kind} ${w.namespace}/${w.name}`;

function rulesOf(facts: VaultFacts, policies: readonly string[]): PolicyRule[] {
  return policies.flatMap((p) => facts.policies.get(p) ?? []);
}

/** Everything that stops a protected workload's pods from getting their secrets. */
export function validateWorkload(w: WorkloadFacts, facts: VaultFacts): Finding[] {
  const subject = subjectOf(w);
  const out: Finding[] = [];
  const add = (code: Finding['code'], message: string): void => {
    out.push({ severity: 'error', code, subject, message });
  };
  for (const p of w.protection.problems) add('annotations-malformed', p);
  const roleName = w.protection.role;
  if (roleName) {
    const role = facts.roles.get(roleName);
    if (!facts.authEnabled)
      add('auth-missing', `no Kubernetes auth method at auth/${facts.authPath}`);
    else if (!role?.exists)
      add('role-missing', `role ${roleName} does not exist at auth/${facts.authPath}`);
    else {
      if (!role.namespaces.includes(w.namespace) && !role.namespaces.includes('*')) {
        add('role-namespace', `role ${roleName} is not bound to namespace ${w.namespace}`);
      }
      if (!role.serviceAccounts.includes(w.serviceAccount) && !role.serviceAccounts.includes('*')) {
        add(
          'role-service-account',
          `role ${roleName} is not bound to service account ${w.serviceAccount}`,
        );
      }
      // The webhook gives pods a token for this audience; a role without one
      // also accepts the pod's Kubernetes-API token (tested against OpenBao),
      // which the vault could then replay against the cluster.
      if (role.audience === '') {
        add(
          'role-audience',
          `role ${roleName} sets no audience: it accepts the pods' Kubernetes-API token, not only their vault token (audience "${VAULT_TOKEN_AUDIENCE}"); run source apply-plan`,
        );
      } else if (role.audience !== VAULT_TOKEN_AUDIENCE) {
        add(
          'role-audience',
          `role ${roleName} requires audience "${role.audience}", not "${VAULT_TOKEN_AUDIENCE}" (the pods' vault token); run source apply-plan`,
        );
      }
      for (const p of role.policies) {
        if (p !== 'default' && !facts.policies.has(p))
          add('policy-missing', `policy ${p} of role ${roleName} does not exist`);
      }
      // What the role's token holds: its policies, plus `default` unless the role opts out.
      const held = role.noDefaultPolicy ? role.policies : [...role.policies, 'default'];
      const rules = rulesOf(facts, [...new Set(held)]);
      for (const path of w.protection.paths) {
        if (grantsRead(rules, path)) continue;
        // Name the rule OpenBao applies: a glob that grants read may be shadowed by it.
        const rule = governingRule(rules, path);
        const why = rule
          ? ` (the rule that applies is "${rule.pattern}": ${rule.capabilities.join(', ') || 'no capabilities'})`
          : '';
        add('path-not-granted', `role ${roleName}'s policies do not grant read on ${path}${why}`);
      }
    }
  }
  for (const path of w.protection.paths) {
    const st = facts.paths.get(path);
    if (!st || st.kind === 'missing') add('path-missing', `${path} does not exist`);
    else if (st.kind === 'deleted' || st.kind === 'destroyed')
      add('path-deleted', `${path}: latest version (v${st.version}) is ${st.kind}`);
    else if (st.kind === 'error') add('path-missing', `${path}: ${st.message}`);
    else {
      for (const e of w.protection.envMap.filter((x) => x.path === path)) {
        if (!st.keys.includes(e.field))
          add('field-missing', `${path} has no field ${e.field} (for ${e.env})`);
      }
    }
  }
  return out;
}

/** The compliance findings: everything validate finds, plus leftovers and over-broad grants. */
export function auditFindings(inv: Inventory, facts: VaultFacts): Finding[] {
  const out: Finding[] = [];
  const byRole = new Map<string, WorkloadFacts[]>();
  for (const w of inv.workloads) {
    const subject = subjectOf(w);
    const st = w.protection.state;
    if (st === 'protected' || st === 'partial') {
      out.push(...validateWorkload(w, facts));
      const natives = w.sources
        .filter((s) => s.startsWith('k8s-secret/'))
        .map((s) => s.slice('k8s-secret/'.length));
      if (natives.length > 0) {
        out.push({
          severity: 'warning',
          code: 'native-secret-referenced',
          subject,
          message: `still references native Secret(s) ${natives.join(', ')} (their values remain in etcd)`,
        });
      }
      if (w.rollout === 'old-template') {
        out.push({
          severity: 'warning',
          code: 'pods-without-init',
          subject,
          message: `${w.pods.total - w.pods.injected} of ${w.pods.total} pod(s) run without the cloudtaser-init container`,
        });
      }
      if (w.protection.role) {
        const list = byRole.get(w.protection.role) ?? [];
        list.push(w);
        byRole.set(w.protection.role, list);
      }
    } else if (st === 'unprotected') {
      out.push({
        severity: 'warning',
        code: 'unprotected',
        subject,
        message: `reads Secrets (${w.sources.join(', ')}) but is not protected`,
      });
    }
  }
  for (const [name, users] of [...byRole].sort((a, b) => a[0].localeCompare(b[0]))) {
    const role = facts.roles.get(name);
    if (!role?.exists) continue;
    const subject = `role ${name}`;
    const namespaces = [...new Set(users.map((u) => u.namespace))];
    const accounts = [...new Set(users.map((u) => u.serviceAccount))];
    const extraNs = role.namespaces.filter((n) => !namespaces.includes(n));
    const extraSa = role.serviceAccounts.filter((s) => !accounts.includes(s));
    if (extraNs.length > 0) {
      out.push({
        severity: 'warning',
        code: 'role-too-broad',
        subject,
        message: `bound to namespaces no protected workload uses it from: ${extraNs.join(', ')}`,
      });
    }
    if (extraSa.length > 0) {
      out.push({
        severity: 'warning',
        code: 'role-too-broad',
        subject,
        message: `bound to service accounts no protected workload runs as: ${extraSa.join(', ')}`,
      });
    }
    const needed = [...new Set(users.flatMap((u) => u.protection.paths))];
    const excess = excessGrants(
      rulesOf(
        facts,
        role.policies.filter((p) => p !== 'default'),
      ),
      needed,
    );
    if (excess.length > 0) {
      out.push({
        severity: 'warning',
        code: 'role-too-broad',
        subject,
        message: `policies grant more than its workloads read: ${excess.join('; ')}`,
      });
    }
  }
  return out;
}

/** A native Secret that still holds keys a protected workload now reads from vault. */
export interface MigratedValueSecret {
  namespace: string;
  name: string;
  keys: string[];
  vaultPaths: string[];
}

/**
 * Native Secrets that still hold values a protected workload reads from
 * vault: a Secret the workload still names, or the one the vault path is
 * named after (`<mount>/data/<namespace>/<secret>`, discover's suggestion),
 * with a key named like a field the env-map reads from that path. With the
 * plan, also the Secret each of the workload's plan entries came from
 * (nativeSecretOf: an ExternalSecret's target, a SOPS document's Secret),
 * under the key that held each field (`secretKeys` renames), files
 * included. Key names only: values are neither read nor compared.
 */
export function migratedValueSecrets(
  inv: Inventory,
  secrets: readonly SecretKeys[],
  plan?: MigrationPlan,
): MigratedValueSecret[] {
  const byId = new Map(secrets.map((s) => [`${s.namespace}/${s.name}`, s]));
  const out = new Map<string, { keys: Set<string>; paths: Set<string> }>();
  const hold = (namespace: string, name: string, key: string, path: string): void => {
    const id = `${namespace}/${name}`;
    if (!byId.get(id)?.keys.includes(key)) return;
    const hit = out.get(id) ?? { keys: new Set<string>(), paths: new Set<string>() };
    hit.keys.add(key);
    hit.paths.add(path);
    out.set(id, hit);
  };
  const planned = new Map<string, PlanWorkload>();
  for (const t of plan?.tenants ?? []) {
    for (const pw of t.workloads) planned.set(`${t.namespace}/${pw.kind}/${pw.name}`, pw);
  }
  for (const w of inv.workloads) {
    if (w.protection.state !== 'protected' && w.protection.state !== 'partial') continue;
    const named = w.sources
      .filter((s) => s.startsWith('k8s-secret/'))
      .map((s) => s.slice('k8s-secret/'.length));
    for (const e of w.protection.envMap) {
      const tail = e.path.split('/data/').slice(1).join('/data/').split('/');
      const byPath = tail.length === 2 && tail[0] === w.namespace ? [tail[1] ?? ''] : [];
      for (const name of new Set([...named, ...byPath])) hold(w.namespace, name, e.field, e.path);
    }
    for (const ref of planned.get(`${w.namespace}/${w.kind}/${w.name}`)?.secrets ?? []) {
      // Only what the template really reads from vault now (a partial
      // protection may not cover every entry of the plan yet).
      if (!w.protection.paths.includes(ref.vaultPath)) continue;
      const native = nativeSecretOf(ref);
      if (!native) continue;
      for (const field of mappedFields(ref)) {
        hold(w.namespace, native.name, native.keyOf(field), ref.vaultPath);
      }
    }
  }
  return [...out]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([id, hit]) => {
      const slash = id.indexOf('/');
      return {
        namespace: id.slice(0, slash),
        name: id.slice(slash + 1),
        keys: [...hit.keys].sort(),
        vaultPaths: [...hit.paths].sort(),
      };
    });
}

/** One warning per native Secret still holding migrated values. */
export function migratedValueFindings(found: readonly MigratedValueSecret[]): Finding[] {
  return found.map((s) => ({
    severity: 'warning',
    code: 'native-secret-remains',
    subject: `Secret ${s.namespace}/${s.name}`,
    message: `still holds value(s) now read from vault: ${s.keys.join(', ')} (${s.vaultPaths.join(', ')}); delete it with cloudtaser target cleanup once nothing references it`,
  }));
}
