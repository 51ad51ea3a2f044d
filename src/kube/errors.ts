// Kubernetes API failures → one-line messages that say what was attempted,
// what the server said, and what to do. 404/409/410 are handled by callers
// on purpose; everything else becomes a ServerError (exit 3).
import { ApiException } from '@kubernetes/client-node';
import { ServerError } from '../core/errors.js';
import { TLS_VERIFY_CODES } from '../core/tls.js';

/** What the caller was trying to do, for the message. */
export interface KubeAction {
  verb: string;
  /** Plural resource with group, as RBAC names it: `deployments.apps`, `secrets`. */
  resource: string;
  namespace?: string | undefined;
  name?: string | undefined;
}

/** A failed Kubernetes call; `status` is the HTTP status when the server answered. */
export class KubeApiError extends ServerError {
  constructor(
    message: string,
    readonly status: number | undefined,
    hint?: string,
  ) {
    super(message, hint);
  }
}

/** A request that got no complete answer within --request-timeout. */
export class KubeRequestTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs / 1000} s`);
  }
}

/** A request cut short by Ctrl-C (SIGINT/SIGTERM). */
export class KubeRequestInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

export function statusOf(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

function errnoOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (e as { cause?: unknown }).cause;
  return cause === undefined ? undefined : errnoOf(cause);
}

function scope(a: KubeAction): string {
  const target = a.name ? `${a.resource}/${a.name}` : a.resource;
  return a.namespace ? `${target} in namespace ${a.namespace}` : `${target} at cluster scope`;
}

function serverMessage(body: unknown): string {
  if (typeof body === 'string') {
    try {
      return serverMessage(JSON.parse(body) as unknown);
    } catch {
      return body.slice(0, 200);
    }
  }
  if (typeof body === 'object' && body !== null && 'message' in body) {
    const m = (body as { message?: unknown }).message;
    if (typeof m === 'string') return m;
  }
  return '';
}

/** Translates any error from a Kubernetes call into a ServerError with a clear message. */
export function kubeError(e: unknown, action: KubeAction, server: string): KubeApiError {
  if (e instanceof KubeApiError) return e;
  if (e instanceof KubeRequestTimeout) {
    return new KubeApiError(
      `the Kubernetes API server at ${server} did not answer within ${e.timeoutMs / 1000} s while trying to ${action.verb} ${scope(action)}`,
      undefined,
      'check that the cluster is up and reachable, or raise --request-timeout',
    );
  }
  if (e instanceof KubeRequestInterrupted) {
    return new KubeApiError(
      `interrupted while trying to ${action.verb} ${scope(action)}`,
      undefined,
    );
  }
  const status = statusOf(e);
  if (status === 401) {
    return new KubeApiError(
      `the Kubernetes API server at ${server} rejected the credentials (401 Unauthorized)`,
      401,
      'check the user of the kubeconfig context, or log in again',
    );
  }
  if (status === 403) {
    return new KubeApiError(
      `missing RBAC permission: cannot ${action.verb} ${scope(action)}`,
      403,
      `grant "${action.verb}" on "${action.resource}" to the kubeconfig's user (kubectl auth can-i ${action.verb} ${action.resource}${action.namespace ? ` -n ${action.namespace}` : ' -A'})`,
    );
  }
  if (status !== undefined) {
    const said = e instanceof ApiException ? serverMessage(e.body) : '';
    return new KubeApiError(
      `Kubernetes API ${status} while trying to ${action.verb} ${scope(action)}${said ? `: ${said}` : ''}`,
      status,
    );
  }
  const errno = errnoOf(e);
  if (errno && TLS_VERIFY_CODES.has(errno)) {
    return new KubeApiError(
      `TLS verification of the Kubernetes API server at ${server} failed (${errno})`,
      undefined,
      "check the cluster's certificate-authority in the kubeconfig",
    );
  }
  if (errno) {
    return new KubeApiError(
      `cannot reach the Kubernetes API server at ${server} (${errno})`,
      undefined,
      'check --kubeconfig/--context and that the cluster is up',
    );
  }
  const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
  return new KubeApiError(
    `cannot ${action.verb} ${scope(action)} at ${server}: ${message ?? ''}`,
    undefined,
  );
}
