// ENTRYPOINT and CMD of an image, from its registry (OCI distribution API),
// for Pods whose spec leaves the command to the image. Honours the Pod's
// imagePullSecrets (Basic and Bearer token auth), picks the linux manifest
// for this architecture from an index, and caches configs by digest.
//
// Every lookup runs under the admission's deadline (an AbortSignal), reads
// at most `maxBodyBytes` of any answer, and the caches are bounded: the
// webhook has seconds per review and a small memory limit.
import { deadline } from '../core/deadline.js';
import { Lru } from './lru.js';
import type { ImageCommand } from './mutate.js';

export interface ImageRef {
  registry: string;
  repository: string;
  reference: string;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Registries (host[:port]) spoken to over plain HTTP, e.g. a local test registry. */
  insecure?: readonly string[];
  /**
   * Credentials for a registry host from the named pull secrets of a
   * namespace. Throws when a secret could not be read; the lookup then goes
   * on anonymously and a refusal by the registry carries that reason.
   */
  credentials?: (
    namespace: string,
    pullSecrets: readonly string[],
    registry: string,
  ) => Promise<Credentials | undefined>;
  /** Longest wait for one registry request, inside the caller's own deadline. */
  timeoutMs?: number;
  /** Tag → digest answers are reused this long; digests until evicted. */
  tagTtlMs?: number;
  /** Largest manifest, index, config or token answer read (default 4 MiB). */
  maxBodyBytes?: number;
  /** Images (and tags) remembered, least recently used evicted first (default 1000). */
  cacheEntries?: number;
  /** Bytes of image commands remembered (default 8 MiB). */
  cacheBytes?: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_MAX_BODY_BYTES = 4 * MiB;

function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/** The body of `res`, refusing (and dropping the connection's rest) past `limit` bytes. */
export async function readCapped(res: Response, limit: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${what} is larger than ${sizeText(limit)}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`${what} is larger than ${sizeText(limit)}`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new Error(`${what} is not JSON`);
  }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export function parseImageRef(image: string): ImageRef {
  let rest = image;
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    return { registry: first, repository: rest.slice(slash + 1), reference };
  }
  return {
    registry: 'registry-1.docker.io',
    repository: rest.includes('/') ? rest : `library/${rest}`,
    reference,
  };
}

/** Credentials for `registry` from a .dockerconfigjson document, if it has them. */
export function credentialsFromDockerConfig(
  json: string,
  registry: string,
): Credentials | undefined {
  let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    doc = JSON.parse(json) as typeof doc;
  } catch {
    return undefined;
  }
  const hub = registry === 'registry-1.docker.io';
  for (const [key, entry] of Object.entries(doc.auths ?? {})) {
    const host = key.replace(/^https?:\/\//, '').split('/')[0] ?? '';
    if (host !== registry && !(hub && (host === 'index.docker.io' || host === 'docker.io')))
      continue;
    if (entry.username !== undefined && entry.password !== undefined) {
      return { username: entry.username, password: entry.password };
    }
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    }
  }
  return undefined;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or Basic). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/(\w+)="([^"]*)"/g))
    params[m[1] ?? ''] = m[2] ?? '';
  return { scheme, params };
}

const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
};

export class RegistryClient {
  private readonly configs: Lru<string, ImageCommand>;
  private readonly tags: Lru<string, { digest: string; at: number }>;
  private readonly maxBody: number;

  constructor(private readonly o: RegistryOptions = {}) {
    const entries = o.cacheEntries ?? 1000;
    this.configs = new Lru(entries, o.cacheBytes ?? 8 * MiB, (c) =>
      // UTF-16 string lengths: close enough for a budget.
      [...c.entrypoint, ...c.cmd].reduce((n, a) => n + 2 * a.length + 16, 64),
    );
    this.tags = new Lru(entries);
    this.maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  private base(registry: string): string {
    return `${this.o.insecure?.includes(registry) ? 'http' : 'https'}://${registry}`;
  }

  /** fetch, under the caller's deadline and the per-request limit, with errors that say which. */
  private async fetch(
    url: string | URL,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const limitMs = this.o.timeoutMs ?? 10_000;
    // Not AbortSignal.any with AbortSignal.timeout: see core/deadline.ts.
    const own = deadline(limitMs, signal);
    try {
      // Not disposed on success: the limit also covers reading the body.
      return await fetch(url, { headers, signal: own.signal });
    } catch (e) {
      own.dispose();
      // The admission's deadline: its reason says so.
      if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : e;
      const host = new URL(url).host;
      if (own.timedOut()) throw new Error(`registry ${host} did not answer within ${limitMs} ms`);
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(
        `registry ${host} cannot be reached: ${cause?.code ?? cause?.message ?? message(e)}`,
      );
    }
  }

  private async get(
    url: string,
    accept: string,
    auth: { header?: string; creds?: Credentials },
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const headers: Record<string, string> = { accept };
    if (auth.header) headers.authorization = auth.header;
    const res = await this.fetch(url, headers, signal);
    if (res.status !== 401 || auth.header !== undefined) return res;
    await res.body?.cancel().catch(() => undefined);
    // One round of the registry's auth challenge.
    const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const basic = auth.creds
      ? `Basic ${Buffer.from(`${auth.creds.username}:${auth.creds.password}`).toString('base64')}`
      : undefined;
    if (challenge.scheme === 'basic') {
      if (!basic) return res;
      auth.header = basic;
      return this.get(url, accept, auth, signal);
    }
    if (challenge.scheme === 'bearer' && challenge.params.realm) {
      const tokenUrl = new URL(challenge.params.realm);
      for (const k of ['service', 'scope']) {
        const v = challenge.params[k];
        if (v) tokenUrl.searchParams.set(k, v);
      }
      const tokenRes = await this.fetch(tokenUrl, basic ? { authorization: basic } : {}, signal);
      if (!tokenRes.ok) {
        await tokenRes.body?.cancel().catch(() => undefined);
        throw new Error(`registry token request failed (${tokenRes.status})`);
      }
      const body = parseJson(
        await readCapped(tokenRes, this.maxBody, 'the registry token response'),
        'the registry token response',
      ) as { token?: string; access_token?: string };
      const token = body.token ?? body.access_token;
      if (!token) throw new Error('registry token response had no token');
      auth.header = `Bearer ${token}`;
      return this.get(url, accept, auth, signal);
    }
    return res;
  }

  async resolve(
    image: string,
    namespace: string,
    pullSecrets: readonly string[],
    signal?: AbortSignal,
  ): Promise<ImageCommand> {
    const ref = parseImageRef(image);
    const digestKey = (d: string): string => `${ref.registry}/${ref.repository}@${d}`;
    const tagKey = `${ref.registry}/${ref.repository}:${ref.reference}`;

    if (ref.reference.startsWith('sha256:')) {
      const hit = this.configs.get(digestKey(ref.reference));
      if (hit) return hit;
    } else {
      const tag = this.tags.get(tagKey);
      const hit =
        tag && Date.now() - tag.at < (this.o.tagTtlMs ?? 300_000)
          ? this.configs.get(digestKey(tag.digest))
          : undefined;
      if (hit) return hit;
    }

    // A pull secret that cannot be read is not fatal (the image may be
    // public), but a refusal by the registry must name it as the likely cause.
    let secretProblem: string | undefined;
    let creds: Credentials | undefined;
    try {
      creds = await this.o.credentials?.(namespace, pullSecrets, ref.registry);
    } catch (e) {
      secretProblem = message(e);
    }
    try {
      return await this.lookup(image, ref, creds, signal, digestKey, tagKey);
    } catch (e) {
      if (secretProblem && !signal?.aborted) throw new Error(`${message(e)}; ${secretProblem}`);
      throw e;
    }
  }

  private async lookup(
    image: string,
    ref: ImageRef,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
    digestKey: (d: string) => string,
    tagKey: string,
  ): Promise<ImageCommand> {
    const auth: { header?: string; creds?: Credentials } = creds ? { creds } : {};
    const repoUrl = `${this.base(ref.registry)}/v2/${ref.repository}`;
    const where = `registry ${ref.registry}:`;
    const refused = async (r: Response, what: string): Promise<Error> => {
      await r.body?.cancel().catch(() => undefined);
      return new Error(`registry ${ref.registry} answered ${r.status} for ${what}`);
    };

    let res = await this.get(`${repoUrl}/manifests/${ref.reference}`, ACCEPT, auth, signal);
    if (!res.ok) throw await refused(res, `${ref.repository}:${ref.reference}`);
    let digest = res.headers.get('docker-content-digest') ?? ref.reference;
    const manifestOf = `${where} the manifest of ${ref.repository}:${ref.reference}`;
    let manifest = parseJson(await readCapped(res, this.maxBody, manifestOf), manifestOf) as {
      mediaType?: string;
      manifests?: { digest: string; platform?: { os?: string; architecture?: string } }[];
      config?: { digest: string };
    };
    if (manifest.manifests) {
      const arch = GOARCH[process.arch] ?? process.arch;
      const pick =
        manifest.manifests.find(
          (m) => m.platform?.os === 'linux' && m.platform.architecture === arch,
        ) ?? manifest.manifests.find((m) => m.platform?.os === 'linux');
      if (!pick) throw new Error(`image ${image} has no linux manifest`);
      res = await this.get(`${repoUrl}/manifests/${pick.digest}`, ACCEPT, auth, signal);
      if (!res.ok) throw await refused(res, pick.digest);
      digest = pick.digest;
      const platformOf = `${where} the linux/${arch} manifest of ${ref.repository}:${ref.reference}`;
      manifest = parseJson(
        await readCapped(res, this.maxBody, platformOf),
        platformOf,
      ) as typeof manifest;
    }
    if (!manifest.config?.digest) throw new Error(`image ${image} has no config`);
    const blob = await this.get(`${repoUrl}/blobs/${manifest.config.digest}`, '*/*', auth, signal);
    if (!blob.ok) throw await refused(blob, `the config of ${image}`);
    const configOf = `${where} the config of ${ref.repository}:${ref.reference}`;
    const config = parseJson(await readCapped(blob, this.maxBody, configOf), configOf) as {
      config?: { Entrypoint?: string[] | null; Cmd?: string[] | null };
    };
    const command: ImageCommand = {
      entrypoint: config.config?.Entrypoint ?? [],
      cmd: config.config?.Cmd ?? [],
    };
    this.configs.set(digestKey(digest), command);
    if (!ref.reference.startsWith('sha256:')) {
      this.tags.set(tagKey, { digest, at: Date.now() });
    }
    return command;
  }
}
