// Reads the server state apply-plan compares against: mounts, auth methods,
// and only the policies and roles the plan names.
import { allSettledOrThrow, mapLimit } from '../core/concurrency.js';
import type { VaultClient } from './client.js';
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

  const [policyNames, roleNames, authConfig] = await allSettledOrThrow([
    listNames(client, 'sys/policies/acl'),
    authEnabled
      ? listNames(client, `auth/${desired.authPath}/role`)
      : Promise.resolve(new Set<string>()),
    authEnabled
      ? client.read<{ data?: { kubernetes_host?: string } }>(`auth/${desired.authPath}/config`)
      : Promise.resolve(undefined),
  ]);

  const policies = new Map<string, string>();
  await mapLimit(
    desired.policies.filter((p) => policyNames.has(p.name)),
    concurrency,
    async (p) => {
      const body = await client.read<{ data?: { policy?: string } }>(`sys/policies/acl/${p.name}`);
      if (body?.data?.policy !== undefined) policies.set(p.name, body.data.policy);
    },
  );
  const roles = new Map<string, RoleState>();
  await mapLimit(
    desired.roles.filter((r) => roleNames.has(r.name)),
    concurrency,
    async (r) => {
      const body = await client.read<{ data?: RoleState }>(
        `auth/${desired.authPath}/role/${r.name}`,
      );
      if (body?.data) roles.set(r.name, body.data);
    },
  );

  return {
    mounts: unwrap(mounts) ?? {},
    auths: authMounts,
    authConfigured: Boolean(authConfig?.data?.kubernetes_host),
    policies,
    roles,
  };
}
