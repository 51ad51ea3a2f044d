// The plan's vocabulary that needs no validator: names, formats and the
// helpers every layer uses to read a validated plan. Kept apart from the zod
// schema (schema.ts) so that the commands reading a cached, already-validated
// plan (plan/cache.ts) and the webhook do not load zod at start-up.
import type { SecretRef } from './schema.js';

export const PLAN_API_VERSION = 'cloudtaser.io/v1';
export const PLAN_KIND = 'MigrationPlan';
/** Where editors find the schema; `cloudtaser plan schema` prints the same document. */
export const PLAN_SCHEMA_URL = 'https://cloudtaser.io/schemas/migration-plan-v1.json';

export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet'] as const;
export const WORKLOAD_STATUSES = ['pending', 'migrated', 'skipped'] as const;

const pathSegment = '(?!\\.{1,2}(?:/|$))[A-Za-z0-9_.-]+';
/** `<mount>/data/<path>`: the KV v2 API path the wrapper reads and the policy grants. */
export const KV2_DATA_PATH = new RegExp(
  `^${pathSegment}(?:/${pathSegment})*?/data/${pathSegment}(?:/${pathSegment})*$`,
);
/** Secret keys as Kubernetes allows them; also safe inside the env-map annotation. */
export const FIELD_NAME = /^[-._a-zA-Z0-9]+$/;
/** A POSIX-portable environment variable name. */
export const ENV_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * An absolute, normalised file path: no "." or ".." segment, no empty
 * segment, no trailing "/". Segments keep to the characters the file-map
 * annotation can carry (no ",", ";", ":", "=" or spaces).
 */
export const FILE_PATH = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9_.+@-]+)+$/;
/** Octal permission bits, as a string ("0400"): YAML readers disagree on unquoted octal. */
export const FILE_MODE = /^0?[0-7]{3}$/;
/** The mode a file gets when the plan names none: readable by its owner only. */
export const DEFAULT_FILE_MODE = '0400';
/** Paths the webhook mounts its own volumes at; no plan file may land there. */
export const RESERVED_PATHS = ['/cloudtaser', '/var/run/secrets/cloudtaser.io'] as const;

/** A cluster fingerprint as `target fingerprint` prints it (src/cluster/identity.ts). */
export const FINGERPRINT_FORMAT = /^sha256:[0-9a-f]{16}$/;

/** Every vault field a Secret reference reads, as an env var or as a file. */
export function mappedFields(s: SecretRef): string[] {
  return [...new Set([...Object.keys(s.fields), ...Object.keys(s.files ?? {})])];
}
/**
 * The native Secret a source reads today and, per vault field the entry maps,
 * the key of that Secret holding it: `k8s-secret/<name>` and
 * `sealed-secret/<name>` keys are the fields themselves; a `sops/<file>#<doc>`
 * source reads the `secret` it records (the document's metadata.name); an
 * `eso/<externalsecret>` writes `secret` (default: its own name) with
 * `secretKeys` renaming fields. Undefined for Vault Agent files.
 */
export function nativeSecretOf(
  s: Pick<SecretRef, 'source' | 'secret' | 'secretKeys'>,
): { name: string; keyOf: (field: string) => string; viaExternalSecret?: string } | undefined {
  // The Secret the Sealed Secrets controller unseals is named after its SealedSecret.
  for (const kind of ['k8s-secret/', 'sealed-secret/']) {
    if (s.source.startsWith(kind)) return { name: s.source.slice(kind.length), keyOf: (f) => f };
  }
  // A SOPS file is where the values come from; the Secret it deploys is what pods read.
  if (s.source.startsWith('sops/')) {
    return s.secret === undefined ? undefined : { name: s.secret, keyOf: (f) => f };
  }
  if (s.source.startsWith('eso/')) {
    const es = s.source.slice('eso/'.length);
    const keys = s.secretKeys ?? {};
    return {
      name: s.secret ?? es,
      keyOf: (f) => (Object.hasOwn(keys, f) ? (keys[f] ?? f) : f),
      viaExternalSecret: es,
    };
  }
  return undefined;
}
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];
export type WorkloadStatus = (typeof WORKLOAD_STATUSES)[number];
