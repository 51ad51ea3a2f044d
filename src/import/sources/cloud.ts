// What the cloud sources share: which provider secret holds a plan path's
// values (a name template over the plan's namespace and Secret name, or a
// per-path mapping file), and how a provider secret's text becomes fields
// (a JSON object gives its members; a plain string one field named by
// --string-field).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { load } from 'js-yaml';
import { UserError } from '../../core/errors.js';
import type { FieldOrigin, SourceNaming, SourceSecret } from '../plan.js';

export interface CloudOptions {
  /** `{namespace}` and `{secret}` are replaced; undefined = the provider's default. */
  nameTemplate?: string | undefined;
  /** YAML or JSON file: plan vault path → provider secret name. */
  nameMap?: string | undefined;
  /** The vault field a provider secret that is a plain string (not a JSON object) fills. */
  stringField?: string | undefined;
  /** Provider endpoint (private endpoint, or a test server). */
  endpoint?: string | undefined;
  region?: string | undefined;
  project?: string | undefined;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Checks a template once, up front: a misspelt placeholder would name no secret at all. */
export function checkTemplate(template: string): void {
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]);
  const bad = names.filter((n) => n !== 'namespace' && n !== 'secret');
  if (bad.length > 0) {
    throw new UserError(
      `--name-template has unknown placeholder(s) ${bad.map((b) => `{${b ?? ''}}`).join(', ')}`,
      'use {namespace} and {secret} (the plan tenant’s namespace and the Kubernetes Secret name)',
    );
  }
  if (template.replace(PLACEHOLDER, '').length === template.length && !template.includes('{')) {
    throw new UserError(
      '--name-template has no placeholder, so every path would read the same provider secret',
      'include {namespace} and/or {secret}, or map each path with --name-map',
    );
  }
}

function fill(template: string, o: FieldOrigin): string {
  return template.replace(PLACEHOLDER, (_m, n: string) =>
    n === 'namespace' ? o.namespace : o.secret,
  );
}

/**
 * Reads the mapping file: an object from plan vault path to provider secret
 * name. Paths it lists use that name; the others the template.
 */
export async function readNameMap(file: string, cwd: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(resolve(cwd, file), 'utf8');
  } catch (e) {
    throw new UserError(
      `cannot read --name-map ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  let doc: unknown;
  try {
    doc = load(text);
  } catch (e) {
    throw new UserError(
      `--name-map ${file} is not YAML or JSON: ${(e as Error).message.split('\n')[0] ?? ''}`,
    );
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UserError(
      `--name-map ${file} must map plan vault paths to provider secret names`,
      'for example: secret/data/payments/db-credentials: prod/payments/db',
    );
  }
  const map = new Map<string, string>();
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v !== 'string' || v === '') {
      throw new UserError(`--name-map ${file}: the name for ${k} must be a non-empty string`);
    }
    map.set(k, v);
  }
  return map;
}

export function cloudNaming(template: string, map: ReadonlyMap<string, string>): SourceNaming {
  return (o, vaultPath) => map.get(vaultPath) ?? fill(template, o);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A provider secret's payload as fields. A JSON object gives one field per
 * member (a string as it is, any other JSON value as its JSON text); anything
 * else is a plain string, which fills the --string-field field, or, without
 * that flag, is reported so the user can say which field it is. The payload
 * is never quoted in a reason.
 */
export function fieldsOf(
  payload: Uint8Array,
  label: string,
  stringField: string | undefined,
): SourceSecret {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    if (stringField === undefined) {
      return { kind: 'missing', reason: `${label} is binary, not a JSON object` };
    }
    return { kind: 'found', label, data: new Map([[stringField, Buffer.from(payload)]]) };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const data = new Map<string, Buffer>();
    for (const [k, v] of Object.entries(parsed)) {
      data.set(k, Buffer.from(typeof v === 'string' ? v : JSON.stringify(v), 'utf8'));
    }
    return { kind: 'found', label, data };
  }
  if (stringField === undefined) {
    return {
      kind: 'missing',
      reason: `${label} is not a JSON object (pass --string-field FIELD to import a plain string as that one field)`,
    };
  }
  return { kind: 'found', label, data: new Map([[stringField, Buffer.from(text, 'utf8')]]) };
}

/** The HTTP status of a provider client's error, whichever client threw it. */
export function httpStatus(e: unknown): number | undefined {
  if (e === null || typeof e !== 'object') return undefined;
  const r = e as {
    $metadata?: { httpStatusCode?: number };
    statusCode?: number;
    response?: { status?: number };
  };
  return r.$metadata?.httpStatusCode ?? r.statusCode ?? r.response?.status;
}

/** A short, value-free description of a provider error: its name and first line. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const first = (e.message.split('\n')[0] ?? '').slice(0, 300);
  return e.name && e.name !== 'Error' ? `${e.name}: ${first}` : first;
}

/** A network-level failure (nothing answered): the whole run stops, one message. */
export function isNetworkError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    [
      'ECONNREFUSED',
      'ENOTFOUND',
      'EAI_AGAIN',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'ECONNRESET',
      'ETIMEDOUT',
      'CERT_HAS_EXPIRED',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'SELF_SIGNED_CERT_IN_CHAIN',
    ].includes(code)
  );
}
