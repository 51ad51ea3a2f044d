// Reads the server state apply-plan compares against: mounts, auth methods,
// and only the policies and roles the plan names.
import { allSettledOrThrow, mapLimit } from '../core/concurrency.js';
import { VaultError, type VaultClient } from './client.js';
import type { Desired, MountInfo, RoleState, VaultState } from './provision.js';

interface Wrapped<T> {
  data?: T;
}

/** Vault returns some listings both at top level and under `data`; prefer `data`. */
function unwrap<T>(body: (Wrapped<T> & T) | undefined): T | undefined {
  return body?.data ?? body;
}

async function listNames(client: VaultClient, path: string): Promise<Set<string>> {
  const res = await client.request<{ data?: { keys?: string[] } }>('LIST', path);
  return new Set(res.status === 404 ? [] : (res.body?.data?.keys ?? []));
}

/** The text of each desired policy that exists, one GET per policy. */
async function readPoliciesOneByOne(
  client: VaultClient,
  names: readonly string[],
  concurrency: number,
): Promise<Map<string, string>> {
  const policies = new Map<string, string>();
  await mapLimit(names, concurrency, async (name) => {
    const body = await client.read<{ data?: { policy?: string } }>(`sys/policies/acl/${name}`);
    if (body?.data?.policy !== undefined) policies.set(name, body.data.policy);
  });
  return policies;
}

interface DetailedList {
  data?: { keys?: string[]; key_info?: Record<string, { policy?: unknown } | undefined> };
}

/**
 * The text of each desired policy that exists. OpenBao returns every ACL
 * policy with its text in one request (`LIST sys/policies/detailed/acl`):
 * on a re-run that replaces one GET per tenant, half of all its requests.
 * Servers without that endpoint (HashiCorp Vault, older OpenBao: 404/405,
 * or 400), and tokens not allowed to use it (403), get the LIST of names
 * and the GETs as before; so does any policy listed without its text.
 */
async function readPolicies(
  client: VaultClient,
  desired: Desired,
  concurrency: number,
): Promise<Map<string, string>> {
  let detailed: DetailedList | undefined;
  try {
    const res = await client.request<DetailedList>('LIST', 'sys/policies/detailed/acl');
    // The built-in policies always exist, so a 404 means no such endpoint.
    detailed = res.status === 404 ? undefined : res.body;
  } catch (e) {
    if (!(e instanceof VaultError && [400, 403, 405].includes(e.status ?? 0))) throw e;
  }
  const info = detailed?.data?.key_info;
  if (!info) {
    const names = await listNames(client, 'sys/policies/acl');
    const wanted = desired.policies.map((p) => p.name).filter((n) => names.has(n));
    return readPoliciesOneByOne(client, wanted, concurrency);
  }
  const listed = new Set(detailed?.data?.keys ?? Object.keys(info));
  const policies = new Map<string, string>();
  const missing: string[] = [];
  for (const { name } of desired.policies) {
    const text = info[name]?.policy;
    if (typeof text === 'string') policies.set(name, text);
    else if (listed.has(name)) missing.push(name);
  }
  for (const [name, text] of await readPoliciesOneByOne(client, missing, concurrency)) {
    policies.set(name, text);
  }
  return policies;
}

export async function readVaultState(
  client: VaultClient,
  desired: Desired,
  concurrency = 16,
): Promise<VaultState> {
  const [mounts, auths] = await allSettledOrThrow([
    client.read<Wrapped<Record<string, MountInfo>> & Record<string, MountInfo>>('sys/mounts'),
    client.read<Wrapped<Record<string, { type: string }>> & Record<string, { type: string }>>(
      'sys/auth',
    ),
  ]);
  const authMounts = unwrap(auths) ?? {};
  const authEnabled = `${desired.authPath}/` in authMounts;

  // Each role is read as soon as the role list says it exists, while the
  // policies are still coming: on a re-run these GETs are most of the work.
  const readRoles = async (): Promise<Map<string, RoleState>> => {
    const roles = new Map<string, RoleState>();
    if (!authEnabled) return roles;
    const names = await listNames(client, `auth/${desired.authPath}/role`);
    await mapLimit(
      desired.roles.filter((r) => names.has(r.name)),
      concurrency,
      async (r) => {
        const body = await client.read<{ data?: RoleState }>(
          `auth/${desired.authPath}/role/${r.name}`,
        );
        if (body?.data) roles.set(r.name, body.data);
      },
    );
    return roles;
  };
  const [policies, roles, authConfig] = await allSettledOrThrow([
    readPolicies(client, desired, concurrency),
    readRoles(),
    authEnabled
      ? client.read<{
          data?: { kubernetes_host?: string; jwt_validation_pubkeys?: unknown[] | null };
        }>(`auth/${desired.authPath}/config`)
      : Promise.resolve(undefined),
  ]);

  return {
    mounts: unwrap(mounts) ?? {},
    auths: authMounts,
    // A JWT mount (`register --method jwt`) is configured by its keys.
    authConfigured: Boolean(
      authConfig?.data?.kubernetes_host ?? authConfig?.data?.jwt_validation_pubkeys?.length,
    ),
    policies,
    roles,
  };
}
