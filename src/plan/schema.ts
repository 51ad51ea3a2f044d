// The MigrationPlan schema: one zod definition from which the TypeScript
// types, the runtime validation and the published JSON Schema all derive.
import { z } from 'zod';
import { quoteToken } from './display.js';
import {
  DEFAULT_FILE_MODE,
  ENV_VAR_NAME,
  FIELD_NAME,
  FILE_MODE,
  FILE_PATH,
  FINGERPRINT_FORMAT,
  KV2_DATA_PATH,
  PLAN_API_VERSION,
  PLAN_KIND,
  PLAN_SCHEMA_URL,
  RESERVED_PATHS,
  WORKLOAD_KINDS,
  WORKLOAD_STATUSES,
} from './model.js';

// Names end up in Kubernetes objects, vault policy and role names, and in the
// comma/colon/equals separated annotation formats, so they are held to the
// strictest rule any of those places has.
const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const tenantName = /^[a-z0-9]([a-z0-9_.-]{0,61}[a-z0-9])?$/;
const SOURCE =
  /^(?:(k8s-secret|sealed-secret|vault-agent|eso)\/[-._a-zA-Z0-9]+|sops(?:\/(?!\.{1,2}[/#])[A-Za-z0-9_.+@-]+)+#(?:0|[1-9][0-9]{0,5}))$/;

const text = (what: string) => z.string({ error: `${what} must be a string` });

const filePath = (what: string) =>
  text(what).regex(FILE_PATH, {
    error: `${what} must be an absolute, normalised path (no "." or ".." segments, no trailing "/"; letters, digits, "_", ".", "+", "@", "-")`,
  });

export const FileTargetSchema = z
  .strictObject({
    path: filePath('path').describe('where the app reads the file'),
    mountPath: filePath('mountPath').describe(
      'the volume mount the file lives in (the path itself for a subPath mount)',
    ),
    mode: text('mode')
      .regex(FILE_MODE, { error: 'mode must be an octal string such as "0400"' })
      .optional()
      .describe(`permission bits, default ${DEFAULT_FILE_MODE}`),
  })
  .describe('A file the wrapper writes before the app starts, owned by the container user.');

export const SecretRefSchema = z
  .strictObject({
    source: text('source').regex(SOURCE, {
      error:
        'source must be "k8s-secret/<secret-name>", "sealed-secret/<sealedsecret-name>", "eso/<externalsecret-name>", "vault-agent/<file-name>" or "sops/<relative-file>#<doc-index>"',
    }),
    vaultPath: text('vaultPath').regex(KV2_DATA_PATH, {
      error: 'vaultPath must be a KV v2 data path "<mount>/data/<path>" (no globs, no "..")',
    }),
    fields: z
      .record(
        text('field name').regex(FIELD_NAME, {
          error: 'field name may contain only letters, digits, "-", "_" and "."',
        }),
        text('env var name').regex(ENV_VAR_NAME, {
          error:
            'not a valid environment variable name (letters, digits, "_"; not starting with a digit)',
        }),
        { error: 'fields must be a map of vault field to environment variable name' },
      )
      .default({}),
    files: z
      .record(
        text('field name').regex(FIELD_NAME, {
          error: 'field name may contain only letters, digits, "-", "_" and "."',
        }),
        FileTargetSchema,
        { error: 'files must be a map of vault field to {path, mountPath, mode}' },
      )
      .optional()
      .describe('vault fields delivered as files instead of environment variables'),
    secret: text('secret')
      .regex(dnsSubdomain, { error: 'secret must be a Kubernetes object name' })
      .optional()
      .describe(
        "the native Secret the source stands for: for an eso/<externalsecret> source the Secret it writes (default: the ExternalSecret's name); for a sops/<file>#<doc> source (required there) the metadata.name of the Secret that document deploys; not allowed on other sources",
      ),
    secretKeys: z
      .record(
        text('field name').regex(FIELD_NAME, {
          error: 'field name may contain only letters, digits, "-", "_" and "."',
        }),
        text('secret key').regex(FIELD_NAME, {
          error: 'secret key may contain only letters, digits, "-", "_" and "."',
        }),
        { error: 'secretKeys must be a map of vault field to Secret key' },
      )
      .optional()
      .describe(
        'eso sources only: vault field -> the key of the native Secret ESO writes it to, where the two differ',
      ),
  })
  .describe(
    'One Secret (or Vault Agent file, or ExternalSecret) a workload reads, and where it lives in vault.',
  );

export const WorkloadSchema = z
  .strictObject({
    kind: z.enum(WORKLOAD_KINDS, { error: `kind must be one of ${WORKLOAD_KINDS.join(', ')}` }),
    name: text('name').regex(dnsSubdomain, { error: 'name must be a Kubernetes object name' }),
    replicas: z.number().int().nonnegative().optional().describe('informational'),
    serviceAccount: text('serviceAccount')
      .regex(dnsSubdomain, { error: 'serviceAccount must be a Kubernetes object name' })
      .default('default')
      .describe("the pod template's service account"),
    status: z
      .enum(WORKLOAD_STATUSES, {
        error: `status must be one of ${WORKLOAD_STATUSES.join(', ')}`,
      })
      .default('pending'),
    secrets: z.array(SecretRefSchema, { error: 'secrets must be a list' }).default([]),
  })
  .describe('A Deployment, StatefulSet or DaemonSet to migrate.');

export const TenantSchema = z
  .strictObject({
    name: text('name').regex(tenantName, {
      error:
        'tenant name must be lower-case letters, digits, "-", "_" or "." (it names a policy and a role)',
    }),
    namespace: text('namespace').regex(dnsLabel, {
      error: 'namespace must be a Kubernetes namespace name',
    }),
    workloads: z.array(WorkloadSchema, { error: 'workloads must be a list' }).default([]),
  })
  .describe('One namespace: one vault policy <name>-read and one role <name>-role.');

export const MetadataSchema = z.strictObject({
  name: text('metadata.name').min(1, { error: 'metadata.name must not be empty' }),
  cluster: text('metadata.cluster').optional(),
  clusterFingerprint: text('metadata.clusterFingerprint')
    .regex(FINGERPRINT_FORMAT, {
      error:
        'metadata.clusterFingerprint must be "sha256:" and 16 hex digits (cloudtaser target fingerprint)',
    })
    .optional()
    .describe('the cluster the plan was made from (cloudtaser target fingerprint)'),
  createdAt: text('metadata.createdAt').optional(),
  createdBy: text('metadata.createdBy').optional(),
  annotations: z
    .record(z.string(), z.string())
    .optional()
    .describe('free-form notes for reviewers'),
});

export const MigrationPlanSchema = z
  .strictObject({
    apiVersion: z.literal(PLAN_API_VERSION, { error: `apiVersion must be "${PLAN_API_VERSION}"` }),
    kind: z.literal(PLAN_KIND, { error: `kind must be "${PLAN_KIND}"` }),
    metadata: MetadataSchema,
    tenants: z.array(TenantSchema, { error: 'tenants must be a list' }).default([]),
  })
  .superRefine((plan, ctx) => {
    for (const issue of crossCheck(plan)) ctx.addIssue({ code: 'custom', ...issue });
  })
  .describe('A reviewable plan for moving workloads from Kubernetes Secrets to OpenBao/Vault.');

export type MigrationPlan = z.output<typeof MigrationPlanSchema>;
export type Tenant = MigrationPlan['tenants'][number];
export type PlanWorkload = Tenant['workloads'][number];
export type SecretRef = PlanWorkload['secrets'][number];
export type FileTarget = z.output<typeof FileTargetSchema>;

/** The JSON Schema editors and CI use to check a plan file (input form: defaults optional). */
export function planJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(MigrationPlanSchema, { io: 'input', unrepresentable: 'any' });
  return { ...schema, $id: PLAN_SCHEMA_URL, title: 'cloudtaser MigrationPlan' };
}

export interface CrossIssue {
  path: (string | number)[];
  message: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * The rules that span entries: duplicate tenants, workloads and sources, and
 * an env var mapped twice in one workload. They read the raw YAML value
 * defensively (anything of the wrong shape is skipped: the schema reports
 * it), so a plan with a structural problem still gets these reported in the
 * same run, instead of only after the structural one is fixed.
 */
export function crossCheck(raw: unknown): CrossIssue[] {
  const out: CrossIssue[] = [];
  if (!isRecord(raw)) return out;
  const tenantNames = new Map<string, number>();
  const workloadKeys = new Map<string, string>();
  list(raw.tenants).forEach((tenant, ti) => {
    if (!isRecord(tenant)) return;
    const tenantName = str(tenant.name);
    if (tenantName !== undefined) {
      const first = tenantNames.get(tenantName);
      if (first !== undefined) {
        out.push({
          path: ['tenants', ti, 'name'],
          message: `duplicate tenant name ${quoteToken(tenantName)} (also tenant #${first + 1})`,
        });
      } else tenantNames.set(tenantName, ti);
    }
    const namespace = str(tenant.namespace);
    list(tenant.workloads).forEach((w, wi) => {
      if (!isRecord(w)) return;
      const kind = str(w.kind);
      const name = str(w.name);
      if (kind !== undefined && name !== undefined && namespace !== undefined) {
        const key = JSON.stringify([namespace, kind, name]);
        const seen = workloadKeys.get(key);
        if (seen !== undefined) {
          out.push({
            path: ['tenants', ti, 'workloads', wi, 'name'],
            message: `duplicate workload ${kind} ${namespace}/${name} (also in tenant ${quoteToken(seen)})`,
          });
        } else workloadKeys.set(key, tenantName ?? '');
      }
      const envOwner = new Map<string, string>();
      const files: FileEntry[] = [];
      const sources = new Set<string>();
      const workloadName = name === undefined ? `#${wi + 1}` : name;
      list(w.secrets).forEach((s, si) => {
        if (!isRecord(s)) return;
        const source = str(s.source);
        const isEso = source?.startsWith('eso/') === true;
        if (s.secretKeys !== undefined && source !== undefined && !isEso) {
          out.push({
            path: ['tenants', ti, 'workloads', wi, 'secrets', si, 'secretKeys'],
            message: 'secretKeys is only for eso/<externalsecret> sources',
          });
        }
        // One ExternalSecret may read several vault paths: one entry per path.
        if (source !== undefined) {
          const sourceKey = isEso ? `${source}\u0000${str(s.vaultPath) ?? ''}` : source;
          if (sources.has(sourceKey)) {
            out.push({
              path: ['tenants', ti, 'workloads', wi, 'secrets', si, 'source'],
              message: `duplicate source ${quoteToken(source)} in workload ${workloadName}`,
            });
          }
          sources.add(sourceKey);
          out.push(
            ...secretFieldIssues(source, s.secret, ['tenants', ti, 'workloads', wi, 'secrets', si]),
          );
        }
        const vaultPath = str(s.vaultPath) ?? '?';
        if (isRecord(s.files)) {
          for (const [field, target] of Object.entries(s.files)) {
            if (!isRecord(target)) continue;
            files.push({
              at: ['tenants', ti, 'workloads', wi, 'secrets', si, 'files', field],
              from: `${vaultPath}:${field}`,
              path: str(target.path),
              mount: str(target.mountPath),
            });
          }
        }
        if (!isRecord(s.fields)) return;
        for (const [field, env] of Object.entries(s.fields)) {
          if (typeof env !== 'string') continue;
          const owner = envOwner.get(env);
          if (owner !== undefined) {
            out.push({
              path: ['tenants', ti, 'workloads', wi, 'secrets', si, 'fields', field],
              message: `env var ${env} is already mapped from ${owner} in workload ${workloadName}`,
            });
          } else envOwner.set(env, `${vaultPath}:${field}`);
        }
      });
      out.push(...fileIssues(files, workloadName));
    });
  });
  return out;
}

/**
 * A `sops/` source names a file; protect and cleanup need the Secret it
 * deploys, so the reference must say which (`secret`). Other sources name
 * their Secret (or none) themselves: a `secret` beside them could only
 * contradict it.
 */
function secretFieldIssues(source: string, secret: unknown, at: (string | number)[]): CrossIssue[] {
  if (source.startsWith('sops/')) {
    return secret === undefined
      ? [
          {
            path: [...at, 'secret'],
            message: `source ${quoteToken(source)} needs "secret: <name>", the metadata.name of the Secret that document deploys (target discover --from sops writes it)`,
          },
        ]
      : [];
  }
  // An ExternalSecret may write a Secret of another name (its target.name).
  if (source.startsWith('eso/')) return [];
  return secret === undefined
    ? []
    : [
        {
          path: [...at, 'secret'],
          message: `"secret" belongs only to sops/<file>#<doc> and eso/<externalsecret> sources; ${quoteToken(source)} names its Secret itself`,
        },
      ];
}

interface FileEntry {
  at: (string | number)[];
  from: string;
  path: string | undefined;
  mount: string | undefined;
}

const within = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

/**
 * File rules across one workload: each file inside its own mount, one field
 * per path, no mount inside another (the inner one would hide or be hidden
 * by the outer), and nothing on the webhook's own mounts. Paths the schema
 * rejects are skipped: it reports them.
 */
function fileIssues(files: FileEntry[], workloadName: string): CrossIssue[] {
  const out: CrossIssue[] = [];
  const ok = (p: string | undefined): p is string => p !== undefined && FILE_PATH.test(p);
  const pathOwner = new Map<string, string>();
  const mounts = new Set(files.map((f) => f.mount).filter(ok));
  for (const f of files) {
    const { path, mount } = f;
    if (!ok(path) || !ok(mount)) continue;
    const reserved = RESERVED_PATHS.find((r) => within(path, r) || within(r, path));
    if (reserved !== undefined) {
      out.push({
        path: [...f.at, 'path'],
        message: `file ${path} overlaps ${reserved}, where cloudtaser mounts its own volumes`,
      });
      continue;
    }
    if (!within(path, mount)) {
      out.push({
        path: [...f.at, 'path'],
        message: `file ${path} is outside its mountPath ${mount}`,
      });
      continue;
    }
    const owner = pathOwner.get(path);
    if (owner !== undefined) {
      out.push({
        path: [...f.at, 'path'],
        message: `file ${path} is already mapped from ${owner} in workload ${workloadName}`,
      });
    } else pathOwner.set(path, f.from);
    const outer = [...mounts].find((m) => m !== mount && within(mount, m));
    if (outer !== undefined) {
      out.push({
        path: [...f.at, 'mountPath'],
        message: `mountPath ${mount} overlaps the mount ${outer} of another file in workload ${workloadName}`,
      });
    }
  }
  return out;
}
