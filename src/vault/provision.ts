// What apply-plan should make true in vault, and what must change to get
// there. Pure: the desired layout comes from the plan alone, the changes
// from comparing it with a snapshot of the server's current state.
import { UserError } from '../core/errors.js';
import type { MigrationPlan, Tenant } from '../plan/schema.js';
import { VAULT_TOKEN_AUDIENCE } from '../contract/annotations.js';

/** Tokens issued to workloads live just long enough to read their secrets at start. */
export const ROLE_TOKEN_TTL = 300;
export const ROLE_TOKEN_MAX_TTL = 900;

export interface RoleBody {
  bound_service_account_names: string[];
  bound_service_account_namespaces: string[];
  token_policies: string[];
  token_ttl: number;
  token_max_ttl: number;
  /**
   * The `aud` the login JWT must carry: the webhook projects a token for this
   * audience, so the pod's Kubernetes-API token is refused by the role.
   */
  audience: string;
}

/**
 * The same role on a JWT auth mount (`source register --method jwt`, for a
 * vault that can never reach the cluster): the token's signature is checked
 * against the cluster's public keys, its audience against `cloudtaser`, and
 * its subject against the service accounts the Kubernetes role would bind.
 */
export interface JwtRoleBody {
  role_type: 'jwt';
  bound_audiences: string[];
  user_claim: 'sub';
  bound_claims: { sub: string[] };
  token_policies: string[];
  token_ttl: number;
  token_max_ttl: number;
}

/** The subject Kubernetes puts in a service account's tokens. */
export const serviceAccountSubject = (namespace: string, name: string): string =>
  `system:serviceaccount:${namespace}:${name}`;

export function jwtRoleBody(k: RoleBody): JwtRoleBody {
  return {
    role_type: 'jwt',
    bound_audiences: [k.audience],
    user_claim: 'sub',
    bound_claims: {
      sub: k.bound_service_account_namespaces
        .flatMap((ns) => k.bound_service_account_names.map((sa) => serviceAccountSubject(ns, sa)))
        .sort(),
    },
    token_policies: k.token_policies,
    token_ttl: k.token_ttl,
    token_max_ttl: k.token_max_ttl,
  };
}

export interface DesiredPolicy {
  name: string;
  tenant: string;
  hcl: string;
}

export interface DesiredRole {
  name: string;
  tenant: string;
  body: RoleBody;
}

export interface Desired {
  kvMount: string;
  authPath: string;
  policies: DesiredPolicy[];
  roles: DesiredRole[];
  /** Mounts other than kvMount that plan paths point into (checked, never created). */
  otherMounts: string[];
  /** Tenants with nothing to grant (no workloads or no paths). */
  emptyTenants: string[];
}

/**
 * A tenant's read policy. Policies are global to the vault while roles live
 * on one auth mount, so with one mount per cluster the same tenant name in
 * two clusters must not share a policy (one cluster's apply would rewrite
 * the other's paths, or grant them). The default mount keeps the plain
 * name; any other gets `@<mount>` ("@" occurs in neither tenant names nor
 * mount paths, "/" becomes "~").
 */
export const policyName = (tenant: string, authPath = 'kubernetes'): string =>
  authPath === 'kubernetes' ? `${tenant}-read` : `${tenant}-read@${authPath.replace(/\//g, '~')}`;
export const roleName = (tenant: string): string => `${tenant}-role`;

/** The mount part of a KV v2 data path: everything before the first `/data/`. */
export function mountOf(vaultPath: string): string {
  const i = vaultPath.indexOf('/data/');
  return i < 0 ? vaultPath : vaultPath.slice(0, i);
}

/** Workloads that need vault access: pending or migrated, never skipped. */
function activeWorkloads(t: Tenant): Tenant['workloads'] {
  return t.workloads.filter((w) => w.status !== 'skipped');
}

export function tenantPaths(t: Tenant): string[] {
  const paths = new Set<string>();
  for (const w of activeWorkloads(t)) for (const s of w.secrets) paths.add(s.vaultPath);
  return [...paths].sort();
}

/** The read policy for one tenant: `read` on exactly its paths, nothing wider. */
export function policyHcl(t: Tenant): string {
  const lines = [
    `# cloudtaser: read access for tenant "${t.name}" (namespace ${t.namespace}).`,
    '# Written by `cloudtaser source apply-plan`; edits here are overwritten on the next apply.',
  ];
  for (const p of tenantPaths(t)) {
    lines.push(`path "${p}" {`, '  capabilities = ["read"]', '}');
  }
  return `${lines.join('\n')}\n`;
}

export function desiredState(
  plan: MigrationPlan,
  opts: { kvMount: string; authPath: string },
): Desired {
  const policies: DesiredPolicy[] = [];
  const roles: DesiredRole[] = [];
  const emptyTenants: string[] = [];
  const mounts = new Set<string>();
  for (const t of plan.tenants) {
    const paths = tenantPaths(t);
    const accounts = [...new Set(activeWorkloads(t).map((w) => w.serviceAccount))].sort();
    if (paths.length === 0 || accounts.length === 0) {
      emptyTenants.push(t.name);
      continue;
    }
    for (const p of paths) mounts.add(mountOf(p));
    const policy = policyName(t.name, opts.authPath);
    policies.push({ name: policy, tenant: t.name, hcl: policyHcl(t) });
    roles.push({
      name: roleName(t.name),
      tenant: t.name,
      body: {
        bound_service_account_names: accounts,
        bound_service_account_namespaces: [t.namespace],
        token_policies: [policy],
        token_ttl: ROLE_TOKEN_TTL,
        token_max_ttl: ROLE_TOKEN_MAX_TTL,
        audience: VAULT_TOKEN_AUDIENCE,
      },
    });
  }
  mounts.delete(opts.kvMount);
  return {
    kvMount: opts.kvMount,
    authPath: opts.authPath,
    policies,
    roles,
    otherMounts: [...mounts].sort(),
    emptyTenants,
  };
}

export interface MountInfo {
  type: string;
  options?: { version?: string } | null;
}

/** The parts of the server's state apply-plan compares against. */
export interface VaultState {
  /** Secret engine mounts, keyed with their trailing slash as the API returns them. */
  mounts: Record<string, MountInfo>;
  auths: Record<string, { type: string }>;
  /** Whether the Kubernetes auth method at authPath has a kubernetes_host. */
  authConfigured: boolean;
  /** Current policy text by name; absent names do not exist. */
  policies: Map<string, string>;
  roles: Map<string, RoleState>;
}

/** A role as the server returns it: our fields plus whatever else it holds. */
export type RoleState = Partial<RoleBody> & Record<string, unknown>;

export type Action = 'create' | 'update' | 'unchanged';

export interface Changes {
  mount: { path: string; action: 'create' | 'unchanged' };
  auth: { path: string; action: 'create' | 'unchanged'; configured: boolean };
  policies: (DesiredPolicy & { action: Action })[];
  roles: (Omit<DesiredRole, 'body'> & {
    /** The Kubernetes role, or its JWT form when the mount is a JWT auth method. */
    body: RoleBody | JwtRoleBody;
    action: Action;
    differences: string[];
  })[];
  warnings: string[];
  /** Number of writes the apply would make. */
  writes: number;
}

function sameSet(a: readonly unknown[] | undefined, b: readonly string[]): boolean {
  if (!Array.isArray(a) || a.length !== b.length) return false;
  const sa = a.map(String).sort();
  const sb = [...b].sort();
  return sa.every((v, i) => v === sb[i]);
}

/** Field-by-field differences between a role on the server and the one wanted. */
export function roleDifferences(current: RoleState, want: RoleBody): string[] {
  const diffs: string[] = [];
  for (const key of [
    'bound_service_account_names',
    'bound_service_account_namespaces',
    'token_policies',
  ] as const) {
    if (!sameSet(current[key], want[key])) diffs.push(key);
  }
  for (const key of ['token_ttl', 'token_max_ttl'] as const) {
    if (Number(current[key]) !== want[key]) diffs.push(key);
  }
  // The server returns "" for a role without one.
  if ((current.audience ?? '') !== want.audience) diffs.push('audience');
  return diffs;
}

/** Field-by-field differences between a JWT role on the server and the one wanted. */
export function jwtRoleDifferences(current: RoleState, want: JwtRoleBody): string[] {
  const diffs: string[] = [];
  if (current['role_type'] !== 'jwt') diffs.push('role_type');
  if (current['user_claim'] !== want.user_claim) diffs.push('user_claim');
  for (const key of ['bound_audiences', 'token_policies'] as const) {
    if (!sameSet(current[key] as unknown[] | undefined, want[key])) diffs.push(key);
  }
  const claims = current['bound_claims'] as Record<string, unknown> | null | undefined;
  const sub = claims?.['sub'];
  if (
    Object.keys(claims ?? {}).length !== 1 ||
    !sameSet(
      Array.isArray(sub) ? sub : sub === undefined ? undefined : [sub],
      want.bound_claims.sub,
    )
  ) {
    diffs.push('bound_claims');
  }
  for (const key of ['token_ttl', 'token_max_ttl'] as const) {
    if (Number(current[key]) !== want[key]) diffs.push(key);
  }
  return diffs;
}

/**
 * Compares what the plan wants with what the server has. Throws a UserError
 * for states apply-plan must not paper over (a mount of the wrong type).
 */
export function computeChanges(desired: Desired, state: VaultState): Changes {
  const warnings: string[] = [];
  const mountKey = `${desired.kvMount}/`;
  const mount = state.mounts[mountKey];
  if (mount) checkKv2(desired.kvMount, mount, '--kv-mount');
  for (const other of desired.otherMounts) {
    const m = state.mounts[`${other}/`];
    if (!m) {
      warnings.push(
        `plan paths point into mount ${other}/, which does not exist; apply-plan only creates --kv-mount (${desired.kvMount})`,
      );
    } else if (m.type !== 'kv' || m.options?.version !== '2') {
      warnings.push(
        `plan paths point into mount ${other}/, which is not KV v2 (${describeMount(m)})`,
      );
    }
  }
  const auth = state.auths[`${desired.authPath}/`];
  if (auth && auth.type !== 'kubernetes' && auth.type !== 'jwt') {
    throw new UserError(
      `auth method at ${desired.authPath}/ is of type "${auth.type}", not kubernetes (or jwt)`,
      'choose another --auth-path',
    );
  }
  const jwt = auth?.type === 'jwt';
  for (const t of desired.emptyTenants) {
    warnings.push(
      `tenant ${t} has no workloads with vault paths to grant; no policy or role for it`,
    );
  }

  const policies = desired.policies.map((p) => {
    const current = state.policies.get(p.name);
    const action: Action =
      current === undefined ? 'create' : current.trim() === p.hcl.trim() ? 'unchanged' : 'update';
    return { ...p, action };
  });
  const roles = desired.roles.map((r) => {
    const current = state.roles.get(r.name);
    const jwtBody = jwt ? jwtRoleBody(r.body) : undefined;
    const body = jwtBody ?? r.body;
    const differences = current
      ? jwtBody
        ? jwtRoleDifferences(current, jwtBody)
        : roleDifferences(current, r.body)
      : [];
    const action: Action =
      current === undefined ? 'create' : differences.length > 0 ? 'update' : 'unchanged';
    return { ...r, body, action, differences };
  });
  const changes: Changes = {
    mount: { path: desired.kvMount, action: mount ? 'unchanged' : 'create' },
    auth: {
      path: desired.authPath,
      action: auth ? 'unchanged' : 'create',
      configured: auth ? state.authConfigured : false,
    },
    policies,
    roles,
    warnings,
    writes: 0,
  };
  changes.writes =
    (changes.mount.action === 'create' ? 1 : 0) +
    (changes.auth.action === 'create' ? 1 : 0) +
    policies.filter((p) => p.action !== 'unchanged').length +
    roles.filter((r) => r.action !== 'unchanged').length;
  return changes;
}

function describeMount(m: MountInfo): string {
  return m.type === 'kv' ? `KV version ${m.options?.version ?? '1'}` : `a ${m.type} engine`;
}

/** A KV mount must be version 2; anything else is refused with advice. */
export function checkKv2(path: string, m: MountInfo, flag: string): void {
  if (m.type === 'kv' && m.options?.version === '2') return;
  if (m.type === 'kv' || m.type === 'generic') {
    throw new UserError(
      `mount ${path}/ is KV version 1; cloudtaser needs KV v2 (versioned, with subkeys)`,
      `upgrade it with: bao kv enable-versioning ${path}/   or choose another ${flag}`,
    );
  }
  throw new UserError(
    `mount ${path}/ is ${describeMount(m)}, not a KV v2 secrets engine`,
    `choose another ${flag}, or move that engine elsewhere`,
  );
}
