// The annotation contract: the keys `target protect` writes on a pod template
// and the env-map format. Protect writes them, the webhook acts on them and the
// reports read them back, so they live here, below all three.

export const ANNOTATION = {
  inject: 'cloudtaser.io/inject',
  vaultAddress: 'cloudtaser.io/vault-address',
  vaultRole: 'cloudtaser.io/vault-role',
  secretPaths: 'cloudtaser.io/secret-paths',
  envMap: 'cloudtaser.io/env-map',
  restartedAt: 'cloudtaser.io/restartedAt',
  /** "true" when the vault address is plain http on purpose (`protect --allow-insecure-vault`). */
  allowInsecureVault: 'cloudtaser.io/allow-insecure-vault',
  /**
   * JSON record of the references to migrated Secrets that protect removed
   * from the template (env, envFrom, volumes), so unprotect can put exactly
   * those back. References only: Secret names, keys, variable names, never a value.
   */
  nativeRefs: 'cloudtaser.io/native-refs',
} as const;

/**
 * The audience of the service-account token the wrapper presents to vault,
 * and the `audience` every role apply-plan writes. A token minted for this
 * audience is refused by the Kubernetes API server (its audience is the
 * issuer's), so a vault, or anyone who sees the login, cannot replay it
 * against the cluster; and the role refuses the pod's API token. A fixed name
 * rather than one derived from the vault address: the address apply-plan
 * uses (a port-forward, an admin endpoint) often differs from the one pods
 * use, and both sides must agree without configuration.
 */
export const VAULT_TOKEN_AUDIENCE = 'cloudtaser';

/** True for an http:// URL: the token and the secrets would cross the network in clear. */
export const isPlainHttp = (address: string): boolean => /^http:\/\//i.test(address);

/** Every key protect may write; unprotect removes exactly these. */
export const OWNED_ANNOTATIONS: readonly string[] = Object.values(ANNOTATION);

/** Vault Agent Injector annotation prefixes: HashiCorp's and OpenBao's fork. */
export const AGENT_PREFIXES = ['vault.hashicorp.com/', 'openbao.openbao.org/'] as const;

export interface EnvMapEntry {
  path: string;
  field: string;
  env: string;
}

export function formatEnvMap(entries: readonly EnvMapEntry[]): string {
  return entries.map((e) => `${e.path}:${e.field}=${e.env}`).join(',');
}

/**
 * Parses `<vault-path>:<field>=<ENV_VAR>,…`. Plan validation keeps ':', '='
 * and ',' out of paths and field names, so the last '=' and the last ':' of
 * each entry are the separators. Returns undefined when malformed.
 */
export function parseEnvMap(value: string): EnvMapEntry[] | undefined {
  if (value.trim() === '') return [];
  const out: EnvMapEntry[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    const eq = entry.lastIndexOf('=');
    const colon = entry.lastIndexOf(':', eq);
    if (eq < 0 || colon < 0) return undefined;
    const path = entry.slice(0, colon);
    const field = entry.slice(colon + 1, eq);
    const env = entry.slice(eq + 1);
    if (!/\/data\/./.test(path) || !/^[-._a-zA-Z0-9]+$/.test(field)) return undefined;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) return undefined;
    out.push({ path, field, env });
  }
  return out;
}
