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

export async function readVaultFacts(
  client: VaultClient,
  authPath: string,
  roleNames: readonly string[],
  paths: readonly string[],
  concurrency = 16,
): Promise<VaultFacts> {
  const auths = await client.read<{ data?: Record<string, { type?: string }> }>('sys/auth');
  const authEnabled = auths?.data?.[`${authPath}/`]?.type === 'kubernetes';
  const roles = new Map<string, RoleFacts>();
  await mapLimit([...new Set(roleNames)], concurrency, async (name) => {
    const body = authEnabled
      ? await client.read<{ data?: Record<string, unknown> }>(`auth/${authPath}/role/${name}`)
      : undefined;
    const d = body?.data;
    roles.set(name, {
      exists: d !== undefined,
      namespaces: list(d?.bound_service_account_namespaces),
      serviceAccounts: list(d?.bound_service_account_names),
      policies: [...list(d?.token_policies), ...list(d?.policies)].filter(
        (p, i, a) => a.indexOf(p) === i,
      ),
      audience: typeof d?.audience === 'string' ? d.audience : '',
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
