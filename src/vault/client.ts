// A thin typed client for the OpenBao/Vault HTTP API, on node:http(s).
//
// Why not a library: the maintained JavaScript clients either wrap the whole
// API surface we do not need or predate OpenBao; what this tool needs is
// exact control over TLS (custom CA, skip-verify), bounded retries for the
// failures that are safe to retry, and a guarantee that the token never
// appears in any message or debug line. That is less code written here than
// adapted around a library.
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pause } from '../core/context.js';
import { deadline } from '../core/deadline.js';
import { ServerError, UserError } from '../core/errors.js';
import { TLS_VERIFY_CODES } from '../core/tls.js';

export interface VaultConfig {
  /** Base URL without trailing slash, e.g. https://vault.eu.example.com:8200 */
  address: string;
  token: string;
  caCert?: string | undefined;
  skipVerify: boolean;
  namespace?: string | undefined;
}

/** Connection flags as a command received them; unset ones come from the environment. */
export interface VaultFlags {
  address?: string | undefined;
  token?: string | undefined;
  caCert?: string | undefined;
  skipVerify?: boolean | undefined;
  namespace?: string | undefined;
  /** Permit plain http to a non-loopback address (`--allow-insecure-vault`). */
  allowInsecure?: boolean | undefined;
}

/** 127.0.0.0/8, ::1 and localhost: plain http there never leaves the machine. */
function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Plain http sends the token (root-capable for apply-plan) in clear. It is
 * allowed without a flag only to loopback, where a dev server or a
 * port-forward listens and nothing crosses the network.
 */
function checkScheme(address: string, allowInsecure: boolean): void {
  if (!/^http:\/\//i.test(address) || allowInsecure) return;
  let host = '';
  try {
    host = new URL(address).hostname;
  } catch {
    throw new UserError(`vault address "${address}" is not a valid URL`);
  }
  if (isLoopbackHost(host)) return;
  throw new UserError(
    `vault address "${address}" is plain http: the vault token would cross the network unencrypted`,
    'use https, or pass --allow-insecure-vault if that is really intended',
  );
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && /^(1|t|true|y|yes)$/i.test(v.trim());
}

/**
 * Resolves address, token, CA, skip-verify and namespace the way the `bao`
 * and `vault` CLIs do: flag, then BAO_*, then VAULT_* (and ~/.vault-token for
 * the token). `addressFlag` names the flag in messages.
 */
export function resolveVaultConfig(
  flags: VaultFlags,
  env: NodeJS.ProcessEnv,
  addressFlag: string,
  home: string = homedir(),
): VaultConfig {
  const address = flags.address ?? env.BAO_ADDR ?? env.VAULT_ADDR;
  if (!address) {
    throw new UserError(
      'no OpenBao/Vault address',
      `pass ${addressFlag} https://vault.example.com or set BAO_ADDR`,
    );
  }
  if (!/^https?:\/\/[^\s/]+/.test(address)) {
    throw new UserError(`vault address "${address}" must be an http:// or https:// URL`);
  }
  checkScheme(address, flags.allowInsecure ?? false);
  let token = flags.token ?? env.BAO_TOKEN ?? env.VAULT_TOKEN;
  if (!token) {
    try {
      token = readFileSync(join(home, '.vault-token'), 'utf8').trim() || undefined;
    } catch {
      token = undefined;
    }
  }
  if (!token) {
    throw new UserError(
      'no vault token',
      'set BAO_TOKEN (preferred: a flag lands in shell history and ps) or pass --token',
    );
  }
  const caPath = flags.caCert ?? env.BAO_CACERT ?? env.VAULT_CACERT;
  let caCert: string | undefined;
  if (caPath) {
    try {
      caCert = readFileSync(caPath, 'utf8');
    } catch (e) {
      throw new UserError(
        `cannot read CA certificate ${caPath}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
  }
  return {
    address: address.replace(/\/+$/, ''),
    token,
    caCert,
    skipVerify: flags.skipVerify ?? (truthy(env.BAO_SKIP_VERIFY) || truthy(env.VAULT_SKIP_VERIFY)),
    namespace: flags.namespace ?? env.BAO_NAMESPACE ?? env.VAULT_NAMESPACE,
  };
}

export interface VaultClientOptions {
  /** Retries after the first attempt, for 429/5xx and dropped connections. */
  retries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Limit for one attempt of one request, in ms; 0 for none (`--request-timeout`). */
  timeoutMs?: number;
  maxSockets?: number;
  /** Ctrl-C: cuts the requests in flight and the waits between retries. */
  signal?: AbortSignal | undefined;
  /** Debug lines: method, path, status and timing; never headers or bodies. */
  debug?: (line: string) => void;
}

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'LIST';

export interface VaultResponse<T> {
  status: number;
  body: T | undefined;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRYABLE_ERRNO = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);
/** A path that needs no percent-encoding or normalisation (no dot segments, no `%`). */
const PLAIN_PATH =
  /^(?:\/(?!\.{1,2}(?:\/|\?|$))[A-Za-z0-9_.~-]*)+(?:\?(?![^]*\blist=)[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*(?:&[A-Za-z0-9_.~-]+=[A-Za-z0-9_.~-]*)*)?$/;
/**
 * The request target for an API path under the address's own path prefix.
 * Paths this tool builds are plain; anything else is normalised (and
 * percent-encoded) exactly as a URL would be.
 */
export function requestPath(prefix: string, method: Method, path: string): string {
  // LIST is sent as GET ?list=true: the API accepts both, and many HTTP
  // proxies (and Node's own HTTP parser) reject the LIST method.
  const full = `${prefix}/v1/${path}`;
  if (PLAIN_PATH.test(full)) {
    if (method !== 'LIST') return full;
    return `${full}${full.includes('?') ? '&' : '?'}list=true`;
  }
  const u = new URL(full, 'http://x');
  if (method === 'LIST') u.searchParams.set('list', 'true');
  return u.pathname + u.search;
}

// EPROTO: a plain-HTTP server answering a TLS client, or a broken handshake.
const TLS_ERRNO = new Set([...TLS_VERIFY_CODES, 'EPROTO']);

/** A failed vault call; `status` is the HTTP status when the server answered. */
export class VaultError extends ServerError {
  constructor(
    message: string,
    readonly status: number | undefined,
    hint?: string,
  ) {
    super(message, hint);
  }
}

function capability(method: Method): string {
  switch (method) {
    case 'GET':
      return 'read';
    case 'LIST':
      return 'list';
    case 'DELETE':
      return 'delete';
    default:
      return 'update';
  }
}

/** The server's `errors`, on one line: Go's multierror wrapping removed. */
export function serverErrors(body: unknown): string {
  if (typeof body !== 'object' || body === null || !('errors' in body)) return '';
  const errors = (body as { errors?: unknown }).errors;
  if (!Array.isArray(errors)) return '';
  return errors
    .filter((e): e is string => typeof e === 'string')
    .flatMap((e) => e.split('\n'))
    .map((l) => l.trim().replace(/^\* /, ''))
    .filter((l) => l && !/^\d+ errors? occurred:$/.test(l))
    .join('; ');
}

class TransportError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class VaultClient {
  readonly address: string;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly opts: Required<Omit<VaultClientOptions, 'debug' | 'signal'>> &
    Pick<VaultClientOptions, 'debug' | 'signal'>;

  constructor(
    private readonly config: VaultConfig,
    opts: VaultClientOptions = {},
  ) {
    this.address = config.address;
    this.opts = {
      retries: opts.retries ?? 6,
      baseDelayMs: opts.baseDelayMs ?? 100,
      maxDelayMs: opts.maxDelayMs ?? 2000,
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxSockets: opts.maxSockets ?? 32,
      debug: opts.debug,
      signal: opts.signal,
    };
    const base = new URL(config.address);
    this.target = {
      protocol: base.protocol,
      // An IPv6 literal without its brackets, as http.request expects it.
      hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: base.port,
      prefix: base.pathname.replace(/\/+$/, ''),
    };
    this.readHeaders = {
      'x-vault-token': config.token,
      ...(config.namespace ? { 'x-vault-namespace': config.namespace } : {}),
    };
    const https = config.address.startsWith('https:');
    this.agent = https
      ? new HttpsAgent({
          keepAlive: true,
          maxSockets: this.opts.maxSockets,
          ...(config.caCert ? { ca: config.caCert } : {}),
          rejectUnauthorized: !config.skipVerify,
        })
      : new HttpAgent({ keepAlive: true, maxSockets: this.opts.maxSockets });
  }

  private closed = false;

  /** Releases pooled connections so the process can exit promptly. */
  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  /**
   * Origin parts and headers shared by every request. A re-run of apply-plan
   * sends ~400 small GETs; building a URL object, a headers object and a
   * chunk list for each showed up in its profile, so the hot path reuses
   * these and accumulates the (small, JSON) reply as a string.
   */
  private readonly target: {
    protocol: string;
    hostname: string;
    port: string;
    /** Path prefix of the address (usually empty), without a trailing slash. */
    prefix: string;
  };
  private readonly readHeaders: Readonly<Record<string, string>>;

  private once(
    method: Method,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<VaultResponse<unknown>> {
    const wireMethod = method === 'LIST' ? 'GET' : method;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers =
      payload === undefined
        ? this.readHeaders
        : {
            ...this.readHeaders,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(payload)),
          };
    const requester = this.target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = requester(
        {
          protocol: this.target.protocol,
          hostname: this.target.hostname,
          port: this.target.port,
          path: requestPath(this.target.prefix, method, path),
          method: wireMethod,
          headers,
          agent: this.agent,
          ...(signal ? { signal } : {}),
        },
        (res: IncomingMessage) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('error', (e: NodeJS.ErrnoException) => {
            reject(new TransportError(e.code ?? 'ECONNRESET', e.message));
          });
          res.on('end', () => {
            let parsed: unknown;
            if (text) {
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = undefined;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('aborted', () => {
            reject(new TransportError('ECONNRESET', 'response aborted'));
          });
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        reject(
          e instanceof TransportError ? e : new TransportError(e.code ?? 'ECONNRESET', e.message),
        );
      });
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  private delay(attempt: number, retryAfter?: number): Promise<void> {
    const exp = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** attempt);
    const ms =
      retryAfter !== undefined
        ? Math.min(this.opts.maxDelayMs, retryAfter * 1000)
        : exp * (0.5 + Math.random() * 0.5);
    return pause(ms, this.opts.signal);
  }

  /**
   * One API call with bounded retries for 429, 5xx and dropped connections.
   * Returns 2xx and 404 responses; every other outcome throws a VaultError
   * whose message names the path and never the token.
   */
  async request<T>(method: Method, path: string, body?: unknown): Promise<VaultResponse<T>> {
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      let res: VaultResponse<unknown>;
      // Not AbortSignal.timeout: see core/deadline.ts.
      const limit =
        this.opts.timeoutMs > 0 ? deadline(this.opts.timeoutMs, this.opts.signal) : undefined;
      try {
        res = await this.once(method, path, body, limit?.signal ?? this.opts.signal);
        limit?.dispose();
      } catch (e) {
        limit?.dispose();
        if (limit?.timedOut()) {
          this.opts.debug?.(`vault ${method} /v1/${path} -> timeout (${Date.now() - started} ms)`);
          // Not retried: a server that holds a request this long is not
          // going to answer the next one faster, and a run should end.
          throw new VaultError(
            `OpenBao/Vault at ${this.address} did not answer within ${this.opts.timeoutMs / 1000} s (${method} ${path})`,
            undefined,
            'check that the server is up and unsealed, or raise --request-timeout',
          );
        }
        if (this.opts.signal?.aborted) {
          this.opts.debug?.(`vault ${method} /v1/${path} -> interrupted`);
          throw new VaultError(`interrupted during ${method} ${path}`, undefined);
        }
        const code = e instanceof TransportError ? e.code : 'ECONNRESET';
        this.opts.debug?.(`vault ${method} /v1/${path} -> ${code} (${Date.now() - started} ms)`);
        if (TLS_ERRNO.has(code)) {
          throw new VaultError(
            `TLS verification of ${this.address} failed (${code})`,
            undefined,
            'pass --ca-cert FILE or set BAO_CACERT to the CA that signed the server certificate',
          );
        }
        if (
          RETRYABLE_ERRNO.has(code) &&
          attempt < this.opts.retries &&
          !this.closed &&
          !this.opts.signal?.aborted
        ) {
          await this.delay(attempt);
          continue;
        }
        throw new VaultError(
          `cannot reach OpenBao/Vault at ${this.address} (${code})`,
          undefined,
          'check the address and that the server is up',
        );
      }
      this.opts.debug?.(
        `vault ${method} /v1/${path} -> ${res.status} (${Date.now() - started} ms)`,
      );
      if ((res.status >= 200 && res.status < 300) || res.status === 404) {
        return res as VaultResponse<T>;
      }
      if (
        RETRYABLE_STATUS.has(res.status) &&
        attempt < this.opts.retries &&
        !this.opts.signal?.aborted
      ) {
        await this.delay(attempt);
        continue;
      }
      const said = serverErrors(res.body);
      if (res.status === 403) {
        throw new VaultError(
          `the token cannot ${capability(method)} ${path} (403${said ? ` ${said}` : ''})`,
          403,
          `check the token's policies: bao token capabilities ${path}`,
        );
      }
      throw new VaultError(
        `OpenBao/Vault ${method} ${path} failed: ${res.status}${said ? ` ${said}` : ''}`,
        res.status,
      );
    }
  }

  /** GET; undefined when the path does not exist. */
  async read<T>(path: string): Promise<T | undefined> {
    const res = await this.request<T>('GET', path);
    return res.status === 404 ? undefined : res.body;
  }

  async write(path: string, body: unknown): Promise<void> {
    const res = await this.request('POST', path, body);
    if (res.status === 404) {
      throw new VaultError(`OpenBao/Vault POST ${path} failed: 404 (no such path)`, 404);
    }
  }
}
