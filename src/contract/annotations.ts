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
} as const;

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
