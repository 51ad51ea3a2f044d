// The annotation contract: the keys `target protect` writes on a pod template
// and the env-map format. Protect writes them, the webhook acts on them and the
// reports read them back, so they live here, below all three.
import { UserError } from '../core/errors.js';

export const ANNOTATION = {
  inject: 'cloudtaser.io/inject',
  vaultAddress: 'cloudtaser.io/vault-address',
  vaultRole: 'cloudtaser.io/vault-role',
  secretPaths: 'cloudtaser.io/secret-paths',
  envMap: 'cloudtaser.io/env-map',
  /** Vault fields written as files; absent when the plan maps none. */
  fileMap: 'cloudtaser.io/file-map',
  restartedAt: 'cloudtaser.io/restartedAt',
  /**
   * Vault's Kubernetes auth mount the pod logs in through, e.g.
   * `kubernetes-prod` (`protect --auth-path`): one vault serving several
   * clusters has one mount per cluster. Absent: the webhook's default.
   */
  vaultAuthPath: 'cloudtaser.io/vault-auth-path',
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

/** A vault mount path (KV or auth) as flags and the auth-path annotation carry it: no leading or trailing "/". */
export const MOUNT = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

/** A mount path flag (`--kv-mount`, `--auth-path`) without its surrounding slashes, or a UserError naming the flag. */
export function normalizeMount(value: string, flag: string): string {
  const v = value.replace(/^\/+|\/+$/g, '');
  if (!MOUNT.test(v)) throw new UserError(`${flag} "${value}" is not a valid mount path`);
  return v;
}

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
    const m = splitMapping(raw.trim());
    if (!m || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(m.target)) return undefined;
    out.push({ path: m.path, field: m.field, env: m.target });
  }
  return out;
}

/**
 * One `<vault-path>:<field>=<target>` mapping, shared by the env-map and the
 * file-map: the last '=' and the last ':' before it are the separators.
 * Undefined when either is missing or the path or field is not valid.
 */
function splitMapping(entry: string): { path: string; field: string; target: string } | undefined {
  const eq = entry.lastIndexOf('=');
  const colon = entry.lastIndexOf(':', eq);
  if (eq < 0 || colon < 0) return undefined;
  const path = entry.slice(0, colon);
  const field = entry.slice(colon + 1, eq);
  if (!/\/data\/./.test(path) || !/^[-._a-zA-Z0-9]+$/.test(field)) return undefined;
  return { path, field, target: entry.slice(eq + 1) };
}

export interface FileMapEntry {
  path: string;
  field: string;
  /** Absolute path of the file the wrapper writes. */
  file: string;
  /** The volume mount that holds it (the file itself for a subPath mount). */
  mount: string;
  /** Octal permission bits, e.g. "0400". */
  mode: string;
}

const ABSOLUTE_NORMAL = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9_.+@-]+)+$/;
const OCTAL_MODE = /^0?[0-7]{3}$/;

/** `<vault-path>:<field>=<file>;mount=<mount>;mode=<mode>`, comma-separated. */
export function formatFileMap(entries: readonly FileMapEntry[]): string {
  return entries
    .map((e) => `${e.path}:${e.field}=${e.file};mount=${e.mount};mode=${e.mode}`)
    .join(',');
}

/**
 * Parses the file-map. Plan validation keeps ',', ';', ':' and '=' out of
 * vault paths, field names and file paths, so they are separators here.
 * Returns undefined when malformed, when a file is not an absolute,
 * normalised path inside its mount, or when two entries name one file.
 */
export function parseFileMap(value: string): FileMapEntry[] | undefined {
  if (value.trim() === '') return [];
  const out: FileMapEntry[] = [];
  const seen = new Set<string>();
  for (const raw of value.split(',')) {
    const [head = '', ...opts] = raw.trim().split(';');
    const m = splitMapping(head);
    if (!m) return undefined;
    const { path, field, target: file } = m;
    const options = new Map<string, string>();
    for (const o of opts) {
      const i = o.indexOf('=');
      if (i < 0 || options.has(o.slice(0, i))) return undefined;
      options.set(o.slice(0, i), o.slice(i + 1));
    }
    const mount = options.get('mount');
    const mode = options.get('mode');
    if (options.size !== 2 || mount === undefined || mode === undefined) return undefined;
    if (!ABSOLUTE_NORMAL.test(file) || !ABSOLUTE_NORMAL.test(mount) || !OCTAL_MODE.test(mode)) {
      return undefined;
    }
    if (file !== mount && !file.startsWith(`${mount}/`)) return undefined;
    if (seen.has(file)) return undefined;
    seen.add(file);
    out.push({ path, field, file, mount, mode });
  }
  return out;
}
