// Vault-side facts for validate and audit: roles, the policies they carry,
// and the state of every annotated path. Read-only.
import { mapLimit } from '../core/concurrency.js';
import type { VaultClient } from '../vault/client.js';
import { inspectPath, type PathState } from '../vault/verify.js';
import { parsePolicy, type PolicyRule } from './policy.js';

export interface RoleFacts {
  exists: boolean;
  namespaces: string[];
  serviceAccounts: string[];
  policies: string[];
  /** The `aud` a login token must carry; "" when the role sets none. */
  audience: string;
  /** token_no_default_policy: its tokens lack the `default` policy every other token holds. */
  noDefaultPolicy: boolean;
}

export interface VaultFacts {
  authPath: string;
  authEnabled: boolean;
  roles: Map<string, RoleFacts>;
  /** Parsed rules by policy name; absent names do not exist. */
  policies: Map<string, PolicyRule[]>;
  paths: Map<string, PathState>;
}

const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/**
 * A JWT role's bindings in the Kubernetes role's terms: the namespaces and
 * service accounts of its `bound_claims.sub` subjects (every pair bound,
 * as apply-plan writes them) and its one bound audience.
 */
function jwtBindings(d: Record<string, unknown> | undefined): {
  namespaces: string[];
  serviceAccounts: string[];
  audience: string;
} {
  const claims = d?.bound_claims as Record<string, unknown> | null | undefined;
  const subs = list(claims?.['sub']).map((s) => /^system:serviceaccount:([^:]+):([^:]+)$/.exec(s));
  const audiences = list(d?.bound_audiences);
  return {
    namespaces: [...new Set(subs.flatMap((m) => (m?.[1] ? [m[1]] : [])))],
    serviceAccounts: [...new Set(subs.flatMap((m) => (m?.[2] ? [m[2]] : [])))],
    audience: audiences.length === 1 ? (audiences[0] ?? '') : audiences.join(','),
  };
}

export async function readVaultFacts(
  client: VaultClient,
  authPath: string,
  roleNames: readonly string[],
  paths: readonly string[],
  concurrency = 16,
): Promise<VaultFacts> {
  const auths = await client.read<{ data?: Record<string, { type?: string }> }>('sys/auth');
  const authType = auths?.data?.[`${authPath}/`]?.type;
  // A JWT mount (`source register --method jwt`) holds the same roles in JWT form.
  const authEnabled = authType === 'kubernetes' || authType === 'jwt';
  const roles = new Map<string, RoleFacts>();
  await mapLimit([...new Set(roleNames)], concurrency, async (name) => {
    const body = authEnabled
      ? await client.read<{ data?: Record<string, unknown> }>(`auth/${authPath}/role/${name}`)
      : undefined;
    const d = body?.data;
    const bound =
      authType === 'jwt'
        ? jwtBindings(d)
        : {
            namespaces: list(d?.bound_service_account_namespaces),
            serviceAccounts: list(d?.bound_service_account_names),
            audience: typeof d?.audience === 'string' ? d.audience : '',
          };
    roles.set(name, {
      exists: d !== undefined,
      namespaces: bound.namespaces,
      serviceAccounts: bound.serviceAccounts,
      policies: [...list(d?.token_policies), ...list(d?.policies)].filter(
        (p, i, a) => a.indexOf(p) === i,
      ),
      audience: bound.audience,
      noDefaultPolicy: d?.token_no_default_policy === true,
    });
  });
  // `default` is read too: its rules are part of what a role's token may do.
  const policyNames = [...new Set([...roles.values()].flatMap((r) => [...r.policies, 'default']))];
  const policies = new Map<string, PolicyRule[]>();
  await mapLimit(policyNames, concurrency, async (name) => {
    const body = await client.read<{ data?: { policy?: string } }>(`sys/policies/acl/${name}`);
    if (body?.data?.policy !== undefined) policies.set(name, parsePolicy(body.data.policy));
  });
  const pathStates = new Map<string, PathState>();
  await mapLimit([...new Set(paths)], concurrency, async (p) => {
    pathStates.set(p, await inspectPath(client, p));
  });
  return { authPath, authEnabled, roles, policies, paths: pathStates };
}
