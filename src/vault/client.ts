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
  // Several nodes of one cluster may be given comma-separated; each is
  // checked as one address would be, and all share one scheme (one TLS setup).
  const addresses = splitAddresses(address);
  for (const a of addresses.length > 0 ? addresses : [address]) {
    if (!/^https?:\/\/[^\s/]+/.test(a)) {
      throw new UserError(`vault address "${a}" must be an http:// or https:// URL`);
    }
    checkScheme(a, flags.allowInsecure ?? false);
  }
  if (new Set(addresses.map((a) => a.slice(0, a.indexOf(':')).toLowerCase())).size > 1) {
    throw new UserError(`the vault addresses "${address}" mix http and https; give one scheme`);
  }
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
    address: addresses.join(','),
    token,
    caCert,
    skipVerify: flags.skipVerify ?? (truthy(env.BAO_SKIP_VERIFY) || truthy(env.VAULT_SKIP_VERIFY)),
    namespace: flags.namespace ?? env.BAO_NAMESPACE ?? env.VAULT_NAMESPACE,
  };
}

export interface VaultClientOptions {
  /** Retries after the first attempt, for 429/5xx and dropped connections (at least). */
  retries?: number;
  /**
   * Keep retrying what may pass (an election, a node restarting) until this
   * long after a request's first attempt (`CLOUDTASER_VAULT_RETRY`).
   */
  retryWindowMs?: number;
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
/** Long enough for a Raft election (a few seconds) and a restarted node's unseal. */
export const DEFAULT_RETRY_WINDOW_MS = 15_000;
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

/** One node (or load-balanced address) of BAO_ADDR, split for node:http. */
interface Target {
  /** As the user gave it, for messages. */
  address: string;
  protocol: string;
  hostname: string;
  port: string;
  /** Path prefix of the address (usually empty), without a trailing slash. */
  prefix: string;
}

function targetOf(address: string): Target {
  const base = new URL(address);
  return {
    address,
    protocol: base.protocol,
    // An IPv6 literal without its brackets, as http.request expects it.
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: base.port,
    prefix: base.pathname.replace(/\/+$/, ''),
  };
}

/** The addresses of a BAO_ADDR that names several nodes, comma-separated. */
export function splitAddresses(address: string): string[] {
  return address
    .split(',')
    .map((a) => a.trim().replace(/\/+$/, ''))
    .filter(Boolean);
}

/** One answer, with the headers the cluster logic needs. */
interface Answer {
  status: number;
  body: unknown;
  /** A standby's redirect to the active node (307/308). */
  location?: string | undefined;
  /** X-Vault-Index: the storage index the answer reflects (Raft). */
  index?: string | undefined;
}

/**
 * The storage index inside an X-Vault-Index value (base64 JSON with a
 * numeric `value`), to keep the newest of several; undefined when opaque.
 */
function indexValue(header: string): number | undefined {
  try {
    const v = (JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { value?: unknown })
      .value;
    const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Why a node could not take a request, for the retry loop and its last message. */
type NodeTrouble =
  | { kind: 'transport'; code: string; target: Target }
  | { kind: 'sealed'; target: Target }
  | { kind: 'status'; status: number; said: string; target: Target };

/** Answers of a cluster without a usable active node: an election, a standby that cannot forward. */
function noActiveNode(said: string): boolean {
  return /local node not active|active cluster node not found|no active|not currently active|standby/i.test(
    said,
  );
}

/**
 * `CLOUDTASER_VAULT_RETRY`: how long one request keeps retrying what may
 * pass (an election, a restarting node): `20s`, `2m`, `500ms`, `0`.
 */
export function retryWindowFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.CLOUDTASER_VAULT_RETRY?.trim();
  if (v === undefined || v === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) {
    throw new UserError(`CLOUDTASER_VAULT_RETRY must be a duration such as 20s or 2m, not "${v}"`);
  }
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

export class VaultClient {
  readonly address: string;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly opts: Required<Omit<VaultClientOptions, 'debug' | 'signal'>> &
    Pick<VaultClientOptions, 'debug' | 'signal'>;
  /** Every node BAO_ADDR names; requests go to `current` until it fails. */
  private readonly targets: Target[];
  private current = 0;
  /** The first address: what `current` indexes when the list has one entry. */
  private readonly primary: Target;
  /** Newest X-Vault-Index a write of this run returned (read-your-writes on standbys). */
  private lastIndex: { header: string; value: number | undefined } | undefined;

  constructor(
    private readonly config: VaultConfig,
    opts: VaultClientOptions = {},
  ) {
    this.address = config.address;
    this.opts = {
      retries: opts.retries ?? 6,
      retryWindowMs: opts.retryWindowMs ?? DEFAULT_RETRY_WINDOW_MS,
      baseDelayMs: opts.baseDelayMs ?? 100,
      maxDelayMs: opts.maxDelayMs ?? 2000,
      timeoutMs: opts.timeoutMs ?? 30_000,
      maxSockets: opts.maxSockets ?? 32,
      debug: opts.debug,
      signal: opts.signal,
    };
    this.primary = targetOf(splitAddresses(config.address)[0] ?? config.address);
    this.targets = splitAddresses(config.address).map(targetOf);
    if (this.targets.length === 0) this.targets.push(this.primary);
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
   * Headers shared by every request. A re-run of apply-plan sends ~400
   * small GETs; building a URL object, a headers object and a chunk list for
   * each showed up in its profile, so the hot path reuses these and
   * accumulates the (small, JSON) reply as a string.
   */
  private readonly readHeaders: Readonly<Record<string, string>>;

  private once(
    target: Target,
    method: Method,
    requestTarget: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    const wireMethod = method === 'LIST' ? 'GET' : method;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let headers: Record<string, string> | Readonly<Record<string, string>> =
      payload === undefined
        ? this.readHeaders
        : {
            ...this.readHeaders,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(payload)),
          };
    // A standby that has not yet applied this run's last write answers 429
    // (retried) instead of a stale read.
    if (this.lastIndex) headers = { ...headers, 'x-vault-index': this.lastIndex.header };
    const requester = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = requester(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          path: requestTarget,
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
            const index = res.headers['x-vault-index'];
            resolve({
              status: res.statusCode ?? 0,
              body: parsed,
              location: res.headers.location,
              index: typeof index === 'string' ? index : undefined,
            });
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

  private delay(attempt: number): Promise<void> {
    const exp = Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** attempt);
    return pause(exp * (0.5 + Math.random() * 0.5), this.opts.signal);
  }

  private remember(index: string | undefined, method: Method): void {
    if (index === undefined || method === 'GET' || method === 'LIST') return;
    const value = indexValue(index);
    const last = this.lastIndex;
    if (!last || value === undefined || last.value === undefined || value > last.value) {
      this.lastIndex = { header: index, value };
    }
  }

  /**
   * One attempt at one node, following a standby's redirect to the active
   * node once (same scheme only: the token goes along).
   */
  private async attempt(
    target: Target,
    method: Method,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<{ res: Answer; at: Target }> {
    const res = await this.once(
      target,
      method,
      requestPath(target.prefix, method, path),
      body,
      signal,
    );
    if ((res.status !== 307 && res.status !== 308) || !res.location) return { res, at: target };
    let to: URL;
    try {
      to = new URL(res.location, `${target.protocol}//${target.hostname}:${target.port}`);
    } catch {
      return { res, at: target };
    }
    if (to.protocol !== target.protocol) return { res, at: target };
    // An origin has no path: the redirect's target has no prefix.
    const at = targetOf(to.origin);
    this.opts.debug?.(`vault ${method} /v1/${path} -> ${res.status} to ${to.origin}`);
    return { res: await this.once(at, method, to.pathname + to.search, body, signal), at };
  }

  /** Moves on to the next node after `failed`, unless another request already did. */
  private rotate(failed: Target): void {
    if (this.targets.length > 1 && this.targets[this.current] === failed) {
      this.current = (this.current + 1) % this.targets.length;
      // The active node may have changed: ask again before the next request.
      this.leaderFound = undefined;
    }
  }

  /** Set while (or once) the active node among the addresses has been looked up. */
  private leaderFound: Promise<void> | undefined;

  /**
   * With several addresses, requests go to the active node when it is one
   * of them: a standby answers reads from its own replica, which lags (a
   * node restarted a moment ago can miss whole minutes of writes), and a
   * run that decides what to write from stale reads would write again what
   * is already there. `sys/leader` needs no token; any failure leaves the
   * choice as it is.
   */
  private findLeader(): Promise<void> {
    // Every node is asked, and only the active node's own word counts
    // (`is_self`): a node restarted a moment ago may not know the leader yet.
    this.leaderFound ??= (async () => {
      const limit = deadline(Math.min(5000, this.opts.timeoutMs || 5000), this.opts.signal);
      try {
        const answers = await Promise.all(
          this.targets.map((t) =>
            this.once(t, 'GET', requestPath(t.prefix, 'GET', 'sys/leader'), undefined, limit.signal)
              .then(
                (res) =>
                  res.status === 200 &&
                  (res.body as { is_self?: unknown } | undefined)?.is_self === true,
              )
              .catch(() => false),
          ),
        );
        const at = answers.indexOf(true);
        if (at >= 0 && at !== this.current) {
          this.opts.debug?.(`vault: active node is ${this.targets[at]?.address ?? '?'}`);
          this.current = at;
        }
      } finally {
        limit.dispose();
      }
    })();
    return this.leaderFound;
  }

  /**
   * One API call. Returns 2xx and 404 responses; every other outcome throws
   * a VaultError whose message names the path and the node, never the token.
   *
   * What may pass is retried, with backoff, for `retryWindowMs` from the
   * first attempt (and at least `retries` times): 429 (also a standby that
   * has not caught up with this run's writes), 5xx, a redirect to an active
   * node that is gone, refused or dropped connections. A sealed node, or one
   * that cannot be reached, is left for the next address when BAO_ADDR names
   * several. A request that ran into --request-timeout is not retried.
   */
  async request<T>(method: Method, path: string, body?: unknown): Promise<VaultResponse<T>> {
    if (this.targets.length > 1) await this.findLeader();
    const first = Date.now();
    let trouble: NodeTrouble | undefined;
    /** Nodes tried since the last pause: a pause comes once every node failed. */
    let triedRound = 0;
    const round = { pauses: 0 };
    const mayRetry = (): boolean =>
      !this.closed &&
      !this.opts.signal?.aborted &&
      (round.pauses < this.opts.retries || Date.now() - first < this.opts.retryWindowMs);
    for (;;) {
      const target = this.targets[this.current] ?? this.primary;
      const started = Date.now();
      let got: { res: Answer; at: Target };
      // Not AbortSignal.timeout: see core/deadline.ts.
      const limit =
        this.opts.timeoutMs > 0 ? deadline(this.opts.timeoutMs, this.opts.signal) : undefined;
      try {
        got = await this.attempt(target, method, path, body, limit?.signal ?? this.opts.signal);
        limit?.dispose();
      } catch (e) {
        limit?.dispose();
        if (limit?.timedOut()) {
          this.opts.debug?.(`vault ${method} /v1/${path} -> timeout (${Date.now() - started} ms)`);
          // Not retried: a server that holds a request this long is not
          // going to answer the next one faster, and a run should end.
          throw new VaultError(
            `OpenBao/Vault at ${target.address} did not answer within ${this.opts.timeoutMs / 1000} s (${method} ${path})`,
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
            `TLS verification of ${target.address} failed (${code})`,
            undefined,
            'pass --ca-cert FILE or set BAO_CACERT to the CA that signed the server certificate',
          );
        }
        if (!RETRYABLE_ERRNO.has(code)) {
          throw new VaultError(
            `cannot reach OpenBao/Vault at ${target.address} (${code})`,
            undefined,
            'check the address and that the server is up',
          );
        }
        trouble = { kind: 'transport', code, target };
        this.rotate(target);
        if (await this.next(++triedRound, mayRetry, round)) {
          if (triedRound >= this.targets.length) triedRound = 0;
          continue;
        }
        throw this.giveUp(trouble, method, path, first);
      }
      const { res, at } = got;
      this.opts.debug?.(
        `vault ${method} /v1/${path} -> ${res.status} (${Date.now() - started} ms)`,
      );
      if ((res.status >= 200 && res.status < 300) || res.status === 404) {
        this.remember(res.index, method);
        return { status: res.status, body: res.body as T };
      }
      const said = serverErrors(res.body);
      if (res.status === 503 && /\bsealed\b/i.test(said)) {
        // A sealed node stays sealed until someone unseals it: only another
        // node of BAO_ADDR can help.
        trouble = { kind: 'sealed', target: at };
        this.rotate(target);
        if (this.targets.length > 1 && (await this.next(++triedRound, mayRetry, round))) {
          if (triedRound >= this.targets.length) triedRound = 0;
          continue;
        }
        throw this.giveUp(trouble, method, path, first);
      }
      if (
        RETRYABLE_STATUS.has(res.status) ||
        res.status === 307 ||
        res.status === 308 ||
        // A standby's KV v2 engine just after the mount was created: it
        // answers 400 until the active node has set the mount up.
        (res.status === 400 && /waiting for the primary to upgrade/i.test(said))
      ) {
        trouble = { kind: 'status', status: res.status, said, target: at };
        if (res.status !== 429 && res.status !== 307 && res.status !== 308) this.rotate(target);
        if (mayRetry()) {
          triedRound = 0;
          await this.delay(round.pauses++);
          continue;
        }
        throw this.giveUp(trouble, method, path, first);
      }
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

  /**
   * After a node failed: go straight to the next one while this round has
   * nodes left, pause once every node has failed; false when out of retries.
   */
  private async next(
    triedRound: number,
    mayRetry: () => boolean,
    round: { pauses: number },
  ): Promise<boolean> {
    if (triedRound < this.targets.length) return !this.closed && !this.opts.signal?.aborted;
    if (!mayRetry()) return false;
    await this.delay(round.pauses++);
    return true;
  }

  /** The error a request ends with once retrying is over: what failed, where, and what to do. */
  private giveUp(t: NodeTrouble, method: Method, path: string, first: number): VaultError {
    const spent = ((Date.now() - first) / 1000).toFixed(1);
    const where = t.target.address;
    const several = this.targets.length > 1;
    switch (t.kind) {
      case 'transport':
        return new VaultError(
          several
            ? `cannot reach any OpenBao/Vault node of ${this.address} (${t.code}; retried for ${spent} s)`
            : `cannot reach OpenBao/Vault at ${where} (${t.code})`,
          undefined,
          'check the address and that the server is up; re-running is safe once it answers',
        );
      case 'sealed':
        return new VaultError(
          several
            ? `no unsealed OpenBao/Vault node among ${this.address} (${where} is sealed; ${method} ${path})`
            : `OpenBao/Vault node ${where} is sealed (${method} ${path})`,
          // No status: the whole run's failure, not a finding about one path.
          undefined,
          several
            ? 'unseal the nodes (bao operator unseal), then re-run'
            : 'unseal it (bao operator unseal) or point BAO_ADDR at an unsealed node of the cluster, then re-run',
        );
      case 'status': {
        const detail = `${t.status}${t.said ? ` ${t.said}` : ''}`;
        if (t.status === 307 || t.status === 308 || noActiveNode(t.said)) {
          return new VaultError(
            `OpenBao/Vault cluster at ${this.address} has no active node (${method} ${path}: ${detail}; retried for ${spent} s)`,
            t.status,
            'the cluster is electing a leader or has lost its quorum; check bao operator raft list-peers, then re-run (every step is safe to repeat)',
          );
        }
        return new VaultError(
          `OpenBao/Vault ${method} ${path} failed: ${detail} (at ${where}; retried for ${spent} s)`,
          t.status,
        );
      }
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
