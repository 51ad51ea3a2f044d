// The annotations `target protect` writes on a pod template, built from the
// plan (pure). Keys and formats are the contract in src/contract/.
import {
  ANNOTATION,
  formatEnvMap,
  formatFileMap,
  type EnvMapEntry,
  type FileMapEntry,
} from '../contract/annotations.js';
import type { PlanWorkload, Tenant } from '../plan/schema.js';
import { DEFAULT_FILE_MODE } from '../plan/model.js';
import { roleName } from '../vault/provision.js';

export function secretPaths(w: PlanWorkload): string[] {
  return [...new Set(w.secrets.map((s) => s.vaultPath))];
}

export function envMapEntries(w: PlanWorkload): EnvMapEntry[] {
  return w.secrets.flatMap((s) =>
    Object.entries(s.fields).map(([field, env]) => ({ path: s.vaultPath, field, env })),
  );
}

export function fileMapEntries(w: PlanWorkload): FileMapEntry[] {
  return w.secrets.flatMap((s) =>
    Object.entries(s.files ?? {}).map(([field, t]) => ({
      path: s.vaultPath,
      field,
      file: t.path,
      mount: t.mountPath,
      mode: t.mode ?? DEFAULT_FILE_MODE,
    })),
  );
}

/**
 * The protection annotations for one workload, without restartedAt. The
 * insecure opt-in is written only when given, so https templates carry no
 * trace of it.
 */
export function protectAnnotations(
  tenant: Tenant,
  w: PlanWorkload,
  vaultAddress: string,
  allowInsecureVault = false,
  authPath?: string,
): Record<string, string> {
  const files = fileMapEntries(w);
  return {
    [ANNOTATION.inject]: 'true',
    [ANNOTATION.vaultAddress]: vaultAddress,
    [ANNOTATION.vaultRole]: roleName(tenant.name),
    [ANNOTATION.secretPaths]: secretPaths(w).join(','),
    [ANNOTATION.envMap]: formatEnvMap(envMapEntries(w)),
    // Only when the plan maps files: templates protected before files
    // existed stay byte-for-byte what they were.
    ...(files.length > 0 ? { [ANNOTATION.fileMap]: formatFileMap(files) } : {}),
    ...(allowInsecureVault ? { [ANNOTATION.allowInsecureVault]: 'true' } : {}),
    // Only when given: one cluster per vault needs no mount of its own.
    ...(authPath === undefined ? {} : { [ANNOTATION.vaultAuthPath]: authPath }),
  };
}

/** True when the live template already carries exactly these annotations. */
export function alreadyApplied(
  live: Readonly<Record<string, string>> | undefined,
  wanted: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(wanted).every(([k, v]) => live?.[k] === v);
}
