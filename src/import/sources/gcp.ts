// `--from gcp`: GCP Secret Manager through the official client, in its REST
// ("fallback") mode, which needs no gRPC and works through HTTP proxies and
// private endpoints alike. Credentials the way GCP users set them:
// Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud
// auth application-default login`, the metadata server), or an access token
// in GOOGLE_OAUTH_ACCESS_TOKEN (`gcloud auth print-access-token`).
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { GoogleAuth, OAuth2Client } from 'google-auth-library';
import { DEFAULT_REQUEST_TIMEOUT_MS, type Context } from '../../core/context.js';
import { ServerError, UserError } from '../../core/errors.js';
import type { SourceSecret } from '../plan.js';
import {
  cloudNaming,
  describeError,
  fieldsOf,
  isNetworkError,
  type CloudOptions,
} from './cloud.js';
import { withRetry } from './retry.js';
import type { DebugLine, ImportSource } from './source.js';

/** gRPC status codes the REST mode maps HTTP statuses to. */
const NOT_FOUND = 5;
const PERMISSION_DENIED = 7;
const RESOURCE_EXHAUSTED = 8;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

/** Secret ids: letters, digits, `-` and `_`, at most 255 (the API's rule). */
const SECRET_ID = /^[A-Za-z0-9_-]{1,255}$/;

const HTTP_TO_CODE: Record<number, number> = { 401: 16, 403: 7, 404: 5, 429: 8, 503: 14 };

/**
 * The gRPC status of a client error. In REST mode an HTTP error may reach us
 * as the auth library's error holding the HTTP status rather than as a
 * decoded status; both mean the same.
 */
function codeOf(e: unknown): number | undefined {
  const r = e as { code?: unknown; status?: unknown; response?: { status?: unknown } } | null;
  if (typeof r?.code === 'number' && r.code < 100) return r.code;
  const http = [r?.response?.status, r?.status, r?.code].find((x) => typeof x === 'number');
  return typeof http === 'number'
    ? (HTTP_TO_CODE[http] ?? (http >= 500 ? UNAVAILABLE : -http))
    : undefined;
}

/** The service's own message from a Google JSON error body, else the error's first line. */
function gcpMessage(e: unknown): string {
  const m = describeError(e);
  const brace = m.indexOf('{');
  if (brace >= 0) {
    try {
      const b = JSON.parse(m.slice(brace)) as { error?: { message?: string; status?: string } };
      if (b.error?.message) return `${b.error.status ?? 'error'}: ${b.error.message}`;
    } catch {
      // not a JSON body
    }
  }
  return m;
}

export function gcpSource(
  o: CloudOptions,
  names: ReadonlyMap<string, string>,
  ctx: Context,
  debug: DebugLine,
): ImportSource {
  const token = ctx.env.GOOGLE_OAUTH_ACCESS_TOKEN;
  const options: ConstructorParameters<typeof SecretManagerServiceClient>[0] = { fallback: true };
  if (o.endpoint) {
    let u: URL;
    try {
      u = new URL(o.endpoint);
    } catch {
      throw new UserError(
        `--endpoint must be a URL such as https://secretmanager.googleapis.com, not "${o.endpoint}"`,
      );
    }
    const protocol = u.protocol.replace(/:$/, '');
    options.apiEndpoint = u.hostname;
    options.port = Number(u.port || (protocol === 'http' ? 80 : 443));
    options.protocol = protocol;
  }
  const google = new GoogleAuth({ scopes: ['https://www.googleapis.com/auth/cloud-platform'] });
  // The client is made once the credentials are found, before the first
  // call: left to the client, a failure to find them surfaced once per call,
  // and once more as an unhandled rejection.
  let made: Promise<SecretManagerServiceClient> | undefined;
  const clientReady = (): Promise<SecretManagerServiceClient> =>
    (made ??= (async () => {
      if (token) {
        const auth = new OAuth2Client();
        auth.setCredentials({ access_token: token });
        return new SecretManagerServiceClient({ ...options, authClient: auth });
      }
      try {
        return new SecretManagerServiceClient({ ...options, authClient: await google.getClient() });
      } catch (e) {
        throw new ServerError(
          `no GCP credentials: ${describeError(e)}`,
          'run gcloud auth application-default login, set GOOGLE_APPLICATION_CREDENTIALS, or set GOOGLE_OAUTH_ACCESS_TOKEN',
        );
      }
    })());
  const timeout = ctx.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const explicitProject =
    o.project ??
    ctx.env.GOOGLE_CLOUD_PROJECT ??
    ctx.env.CLOUDSDK_CORE_PROJECT ??
    ctx.env.GCLOUD_PROJECT;
  let project: Promise<string> | undefined;
  const projectId = (): Promise<string> =>
    (project ??= explicitProject
      ? Promise.resolve(explicitProject)
      : clientReady()
          .then(() => google.getProjectId())
          .catch((e: unknown) => {
            if (e instanceof ServerError) throw e;
            throw new UserError('no GCP project: pass --project, or set GOOGLE_CLOUD_PROJECT');
          }));
  const label = (name: string): string => `GCP secret ${name}`;

  async function read(name: string): Promise<SourceSecret> {
    const client = await clientReady();
    // A full resource name is taken as it is; otherwise it is a secret id in the project.
    let resource: string;
    if (name.startsWith('projects/'))
      resource = name.includes('/versions/') ? name : `${name}/versions/latest`;
    else if (SECRET_ID.test(name))
      resource = `projects/${await projectId()}/secrets/${name}/versions/latest`;
    else {
      return {
        kind: 'missing',
        reason: `${label(name)}: not a valid secret id (letters, digits, - and _ only); pick names with --name-template or --name-map`,
      };
    }
    const started = Date.now();
    try {
      const [res] = await withRetry(
        () =>
          client.accessSecretVersion(
            { name: resource },
            {
              // Retries are ours (retry.ts), the same bounded rule for every source.
              retry: { retryCodes: [] },
              ...(timeout > 0 ? { timeout } : {}),
            },
          ),
        (e) => {
          const again = codeOf(e) === RESOURCE_EXHAUSTED || codeOf(e) === UNAVAILABLE;
          if (again) debug?.(`gcp access ${resource} -> code ${String(codeOf(e))}, retrying`);
          return again;
        },
        ctx.signal,
      );
      debug?.(`gcp access ${resource} -> ok (${Date.now() - started} ms)`);
      const data = res.payload?.data;
      const bytes =
        typeof data === 'string' ? Buffer.from(data, 'base64') : (data ?? new Uint8Array());
      return fieldsOf(bytes, label(name), o.stringField);
    } catch (e) {
      if (e instanceof UserError) throw e;
      const code = codeOf(e);
      debug?.(`gcp access ${resource} -> code ${String(code)} (${Date.now() - started} ms)`);
      if (code === NOT_FOUND)
        return { kind: 'missing', reason: `${label(name)} not found (or has no enabled version)` };
      if (
        code === UNAUTHENTICATED ||
        /could not load the default credentials/i.test(describeError(e))
      ) {
        throw new ServerError(
          `GCP Secret Manager refused the credentials: ${describeError(e)}`,
          'run gcloud auth application-default login, set GOOGLE_APPLICATION_CREDENTIALS, or set GOOGLE_OAUTH_ACCESS_TOKEN',
        );
      }
      if (isNetworkError(e) || typeof code !== 'number') {
        throw new ServerError(
          `GCP Secret Manager${o.endpoint ? ` at ${o.endpoint}` : ''}: ${describeError(e)}`,
        );
      }
      if (code === PERMISSION_DENIED) {
        return {
          kind: 'missing',
          reason: `${label(name)}: permission denied (needs secretmanager.versions.access)`,
        };
      }
      return { kind: 'missing', reason: `${label(name)}: ${gcpMessage(e)}` };
    }
  }

  return {
    description: `GCP Secret Manager (project ${explicitProject ?? 'from the credentials'}${o.endpoint ? `, ${o.endpoint}` : ''})`,
    nameOf: cloudNaming(o.nameTemplate ?? '{namespace}-{secret}', names),
    read,
    close: () => {
      void made?.then((c) => c.close()).catch(() => undefined);
    },
  };
}
