// kubeconfig resolution exactly as kubectl does it: --kubeconfig, then
// KUBECONFIG (a colon-separated list, merged), then ~/.kube/config;
// --context picks a context. Errors name the file and the missing key.
import {
  createConfiguration,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type HttpLibrary,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { requestSignal, say, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { KubeRequestInterrupted, KubeRequestTimeout } from './errors.js';

export interface KubeOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

/** How requests are sent: their abort signal and time limit, and the --debug log. */
export interface KubeNet {
  /** A fresh signal per request (see requestSignal), with the limit it enforces. */
  signal?: () => { signal: AbortSignal | undefined; timeoutMs: number; dispose?: () => void };
  /** Called with one line per request: method, path, status, duration. Never headers or bodies. */
  debug?: (line: string) => void;
}

/** The request settings a command's context asks for. */
export function kubeNet(ctx: Context): KubeNet {
  return {
    signal: () => requestSignal(ctx),
    ...(ctx.debug
      ? {
          debug: (line: string) => {
            say(ctx.stderr, `debug: ${line}`);
          },
        }
      : {}),
  };
}

/**
 * Sends each request with its own abort signal (an interrupt, or the
 * per-request limit: an API server that stops answering must not hang a run
 * forever) and logs one line per request under --debug. Only the method, the
 * URL path and the status are logged: the query may carry continue tokens and
 * selectors, and headers carry credentials.
 */
function instrumentedHttp(net: KubeNet): HttpLibrary {
  const inner = new IsomorphicFetchHttpLibrary();
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const scope = requestScope(net, request.getHttpMethod().toString(), request.getUrl());
      if (scope.signal) request.setSignal(scope.signal);
      let response: ResponseContext;
      try {
        response = await inner.send(request).toPromise();
      } catch (e) {
        scope.done();
        throw scope.failed(e);
      }
      scope.log(String(response.httpStatusCode));
      // The signal also covers reading the body, which the generated client
      // does after send() returns: the same translation applies there.
      const body = response.body;
      return new ResponseContext(response.httpStatusCode, response.headers, {
        text: () =>
          body
            .text()
            .catch((e: unknown) => {
              throw scope.translate(e);
            })
            .finally(scope.done),
        binary: () =>
          body
            .binary()
            .catch((e: unknown) => {
              throw scope.translate(e);
            })
            .finally(scope.done),
      });
    },
  });
}

/** What one request needs to honour KubeNet: created when the request starts. */
export interface RequestScope {
  signal: AbortSignal | undefined;
  /** The --debug line for this request, with its outcome (a status, `timeout`, …). */
  log(outcome: string): void;
  /** An abort becomes KubeRequestTimeout or KubeRequestInterrupted; other errors pass. */
  translate(e: unknown): Error;
  /** translate(), and the request's --debug line for the failure. */
  failed(e: unknown): Error;
  /** The request is over (answered and read, or failed): its time limit stops. */
  done: () => void;
}

/**
 * The per-request signal, the --debug line and the error translation, shared
 * by the generated clients (instrumentedHttp) and the plain requests of
 * rest.ts, so both time out, stop on Ctrl-C and log alike.
 */
export function requestScope(net: KubeNet, method: string, url: string): RequestScope {
  const { signal, timeoutMs, dispose } = net.signal?.() ?? { signal: undefined, timeoutMs: 0 };
  const path = new URL(url).pathname;
  const started = Date.now();
  const log = (outcome: string): void =>
    net.debug?.(`kube ${method} ${path} -> ${outcome} (${Date.now() - started} ms)`);
  const translate = (e: unknown): Error => {
    if (!signal?.aborted) return e instanceof Error ? e : new Error(String(e));
    // Which of the two fired: the interrupt, or the time limit.
    const timedOut = (signal.reason as { name?: unknown } | undefined)?.name === 'TimeoutError';
    return timedOut ? new KubeRequestTimeout(timeoutMs) : new KubeRequestInterrupted();
  };
  return {
    signal,
    log,
    translate,
    done: () => dispose?.(),
    failed: (e) => {
      const err = translate(e);
      log(
        err instanceof KubeRequestTimeout
          ? 'timeout'
          : err instanceof KubeRequestInterrupted
            ? 'interrupted'
            : `error ${errorCode(e)}`,
      );
      return err;
    },
  };
}

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : e instanceof Error ? e.name : 'unknown';
}

export interface KubeTarget {
  kc: KubeConfig;
  /** API server URL of the chosen context. */
  server: string;
  context: string;
  /** An API client whose requests share keep-alive connections (see ConnectionPool). */
  api<T>(Api: new (config: Configuration) => T): T;
  /** Authenticates one request and gives it the same pooled agent (for rest.ts). */
  authenticate(context: RequestContext): Promise<void>;
  /** Per-request signal, time limit and --debug log, for requests sent without the generated clients. */
  net: KubeNet;
}

/**
 * client-node (1.x) hands every request a brand-new https.Agent, so each call
 * pays a TCP connect, a TLS handshake and a fresh SecureContext (the CA
 * parsed again) on both ends: profiled, more than a third of protect's CPU
 * at 2,000 workloads. This authentication wrapper lets the kubeconfig do all
 * its work (tokens, exec plugins, client certificates), then swaps the
 * throw-away agent for a pooled keep-alive one built from the same TLS
 * options. Proxy agents are left alone.
 */
class ConnectionPool implements SecurityAuthentication {
  private readonly agents = new Map<string, HttpAgent>();

  constructor(private readonly kc: KubeConfig) {}

  getName(): string {
    return 'pooled-kubeconfig';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kc.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (!fresh) return;
    // Exact classes only: proxy agents subclass these and keep their own pools.
    const isHttps = fresh instanceof HttpsAgent && fresh.constructor === HttpsAgent;
    if (!isHttps && fresh.constructor !== HttpAgent) return;
    const o = fresh instanceof HttpsAgent ? fresh.options : {};
    // Credentials can change (a rotated client certificate from an exec
    // plugin): a different set of TLS options gets its own pool. This runs
    // for every request, so the key is built from base64 and strings, not
    // by JSON-encoding Buffers byte by byte (a profiled hot spot).
    const key = [
      isHttps,
      o.ca,
      o.cert,
      o.key,
      o.pfx,
      o.passphrase,
      o.rejectUnauthorized,
      o.servername,
    ]
      .map(keyPart)
      .join('\u0000');
    let pooled = this.agents.get(key);
    if (!pooled) {
      pooled = isHttps
        ? new HttpsAgent({ ...o, keepAlive: true })
        : new HttpAgent({ keepAlive: true });
      this.agents.set(key, pooled);
    }
    context.setAgent(pooled);
  }
}

/** One TLS option as text (PEM as is, Buffers as base64); NUL and SOH never occur in either. */
function keyPart(v: unknown): string {
  if (Array.isArray(v)) return v.map(keyPart).join('\u0001');
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'string' || typeof v === 'boolean') return String(v);
  return v === undefined ? '' : JSON.stringify(v);
}

function apiFactory(
  kc: KubeConfig,
  server: string,
  net: KubeNet,
): Pick<KubeTarget, 'api' | 'authenticate'> {
  const pool = new ConnectionPool(kc);
  const config = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: pool },
    httpApi: instrumentedHttp(net),
  });
  return {
    api: (Api) => new Api(config),
    authenticate: (context) => pool.applySecurityAuthentication(context),
  };
}

function loadOne(kc: KubeConfig, file: string): void {
  if (!existsSync(file)) throw new UserError(`kubeconfig ${file}: no such file`);
  try {
    kc.loadFromFile(file);
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    throw new UserError(`kubeconfig ${file} is not valid: ${first}`);
  }
}

/** Loads the kubeconfig a kubectl user would expect, and checks the context. */
export function loadKube(
  opts: KubeOptions,
  env: NodeJS.ProcessEnv,
  cwd: string,
  home: string = homedir(),
  net: KubeNet = {},
): KubeTarget {
  const abs = (f: string): string => (isAbsolute(f) ? f : resolve(cwd, f));
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    loadOne(kc, abs(opts.kubeconfig));
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter)
      .filter(Boolean)
      .map(abs)
      .filter((f) => existsSync(f));
    if (files.length === 0) {
      throw new UserError(`KUBECONFIG=${env.KUBECONFIG}: none of its files exist`);
    }
    // Like kubectl: the first file that sets a value wins.
    const [first, ...rest] = files;
    loadOne(kc, first ?? '');
    for (const f of rest) {
      const more = new KubeConfig();
      loadOne(more, f);
      mergeFirstWins(kc, more);
    }
  } else {
    const file = join(home, '.kube', 'config');
    if (!existsSync(file)) {
      throw new UserError(
        'no kubeconfig found',
        'pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config',
      );
    }
    loadOne(kc, file);
  }

  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UserError(
        `context "${opts.context}" not found in kubeconfig`,
        known.length > 0 ? `known contexts: ${known.join(', ')}` : 'the kubeconfig has no contexts',
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const context = kc.getCurrentContext();
  if (!context) {
    throw new UserError('kubeconfig has no current-context', 'pass --context NAME');
  }
  const ctxObj = kc.getContextObject(context);
  if (!ctxObj) throw new UserError(`kubeconfig: current-context "${context}" is not defined`);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new UserError(
      `kubeconfig: context "${context}" names cluster "${ctxObj.cluster}", which has no server`,
    );
  }
  return { kc, server: cluster.server, context, net, ...apiFactory(kc, cluster.server, net) };
}

/** The kubeconfig a command's context selects, sending requests as the context asks. */
export function loadKubeFor(opts: KubeOptions, ctx: Context): KubeTarget {
  return loadKube(opts, ctx.env, ctx.cwd, homedir(), kubeNet(ctx));
}

/**
 * Folds a later KUBECONFIG file into the merged config the way kubectl does:
 * a cluster, user or context whose name is already defined keeps its first
 * definition (client-node's mergeConfig throws on the duplicate instead), and
 * current-context comes from the first file that sets one.
 */
function mergeFirstWins(kc: KubeConfig, more: KubeConfig): void {
  for (const c of more.clusters) if (!kc.getCluster(c.name)) kc.addCluster(c);
  for (const u of more.users) if (!kc.getUser(u.name)) kc.addUser(u);
  for (const c of more.contexts) if (!kc.getContextObject(c.name)) kc.addContext(c);
  if (!kc.getCurrentContext() && more.getCurrentContext()) {
    kc.setCurrentContext(more.getCurrentContext());
  }
}
