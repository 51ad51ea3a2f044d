// Plain JSON requests to the Kubernetes API for the hot paths (protect's
// list, get and patch of 2,000 workloads), next to the generated client.
//
// Why: each call through @kubernetes/client-node goes through its request
// pipeline (promise middleware, node-fetch, then ObjectSerializer copying
// every field of the reply into model class instances). Profiled at 2,000
// workloads that was about a second of CPU and most of the short-lived
// garbage that carried protect's peak RSS past 200 MB. Here a reply is read
// as text and parsed once with JSON.parse; field names of the JSON and of
// the models agree for everything these paths read (`metadata.continue` is
// the one exception, mapped by the caller).
//
// Authentication is not re-implemented: every request is authenticated by
// the same kubeconfig code and gets the same pooled agent (or proxy agent)
// as the generated clients (`KubeTarget.authenticate`). Failures are thrown
// as client-node's ApiException (status, parsed body), so kubeError and
// statusOf treat them exactly as before; transport errors keep their errno.
import { ApiException, HttpMethod, RequestContext } from '@kubernetes/client-node';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { requestScope, type KubeTarget } from './config.js';

export interface RestRequest {
  method: 'GET' | 'PATCH' | 'DELETE';
  /** API path from the server root, e.g. `/apis/apps/v1/namespaces/a/deployments/b`. */
  path: string;
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Content type of the body (the patch strategy; JSON for DeleteOptions). */
  contentType?: string;
  /** Accept header when not JSON (the signing keys are served only as `application/jwk-set+json`). */
  accept?: string;
}

const METHOD = {
  GET: HttpMethod.GET,
  PATCH: HttpMethod.PATCH,
  DELETE: HttpMethod.DELETE,
} as const;

/** `/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>]`, each part escaped. */
export function resourcePath(
  groupVersion: string,
  plural: string,
  namespace?: string,
  name?: string,
): string {
  const root = groupVersion.includes('/') ? `/apis/${groupVersion}` : `/api/${groupVersion}`;
  const ns = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const one = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${root}${ns}/${plural}${one}`;
}

export class KubeRest {
  private readonly base: string;

  constructor(private readonly target: KubeTarget) {
    this.base = target.server.replace(/\/+$/, '');
  }

  /** One request; resolves with the parsed JSON reply of a 2xx, throws ApiException otherwise. */
  async call<T>(r: RestRequest): Promise<T> {
    const url = new URL(`${this.base}${r.path}`);
    for (const [k, v] of Object.entries(r.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, v);
    }
    const context = new RequestContext(url.toString(), METHOD[r.method]);
    await this.target.authenticate(context);
    const payload = r.body === undefined ? undefined : JSON.stringify(r.body);
    const headers: Record<string, string> = {
      ...context.getHeaders(),
      accept: r.accept ?? 'application/json',
    };
    if (payload !== undefined) {
      headers['content-type'] = r.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const requester = url.protocol === 'https:' ? httpsRequest : httpRequest;
    // The same per-request limit, Ctrl-C and --debug line as the generated clients.
    const scope = requestScope(this.target.net, r.method, url.toString());
    let reply: { status: number; text: string; responseHeaders: IncomingMessage['headers'] };
    try {
      reply = await new Promise((resolve, reject) => {
        const req = requester(
          url,
          {
            method: r.method,
            headers,
            agent: context.getAgent(),
            ...(scope.signal ? { signal: scope.signal } : {}),
          },
          (res: IncomingMessage) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => {
              body += c;
            });
            res.on('error', reject);
            res.on('aborted', () => {
              reject(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' }));
            });
            res.on('end', () => {
              resolve({ status: res.statusCode ?? 0, text: body, responseHeaders: res.headers });
            });
          },
        );
        req.on('error', reject);
        if (payload !== undefined) req.write(payload);
        req.end();
      });
    } catch (e) {
      throw scope.failed(e);
    } finally {
      scope.done();
    }
    scope.log(String(reply.status));
    const { status, text, responseHeaders } = reply;
    let parsed: unknown = text;
    try {
      parsed = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      // Not JSON (a proxy's error page, say): kept as text for the message.
    }
    if (status < 200 || status >= 300) {
      const flat: Record<string, string> = {};
      for (const [k, v] of Object.entries(responseHeaders)) {
        if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
      }
      throw new ApiException<unknown>(status, `${r.method} ${r.path}`, parsed, flat);
    }
    return parsed as T;
  }
}
