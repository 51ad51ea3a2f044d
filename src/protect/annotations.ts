// The annotations `target protect` writes on a pod template, built from the
// plan (pure), and the parsers the webhook and reports use to read them back.
import type { PlanWorkload, Tenant } from '../plan/schema.js';
import { roleName } from '../vault/provision.js';

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

export interface EnvMapEntry {
  path: string;
  field: string;
  env: string;
}

export function secretPaths(w: PlanWorkload): string[] {
  return [...new Set(w.secrets.map((s) => s.vaultPath))];
}

export function envMapEntries(w: PlanWorkload): EnvMapEntry[] {
  return w.secrets.flatMap((s) =>
    Object.entries(s.fields).map(([field, env]) => ({ path: s.vaultPath, field, env })),
  );
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

/** The protection annotations for one workload, without restartedAt. */
export function protectAnnotations(
  tenant: Tenant,
  w: PlanWorkload,
  vaultAddress: string,
): Record<string, string> {
  return {
    [ANNOTATION.inject]: 'true',
    [ANNOTATION.vaultAddress]: vaultAddress,
    [ANNOTATION.vaultRole]: roleName(tenant.name),
    [ANNOTATION.secretPaths]: secretPaths(w).join(','),
    [ANNOTATION.envMap]: formatEnvMap(envMapEntries(w)),
  };
}

/** True when the live template already carries exactly these annotations. */
export function alreadyApplied(
  live: Readonly<Record<string, string>> | undefined,
  wanted: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(wanted).every(([k, v]) => live?.[k] === v);
}
