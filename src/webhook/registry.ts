// ENTRYPOINT and CMD of an image, from its registry (OCI distribution API),
// for Pods whose spec leaves the command to the image. Honours the Pod's
// imagePullSecrets (Basic and Bearer token auth), picks the linux manifest
// for this architecture from an index, and caches configs by digest.
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
  /** Credentials for a registry host from the named pull secrets of a namespace. */
  credentials?: (
    namespace: string,
    pullSecrets: readonly string[],
    registry: string,
  ) => Promise<Credentials | undefined>;
  timeoutMs?: number;
  /** Tag → digest answers are reused this long; digests forever. */
  tagTtlMs?: number;
}

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
  private readonly configs = new Map<string, ImageCommand>();
  private readonly tags = new Map<string, { digest: string; at: number }>();

  constructor(private readonly o: RegistryOptions = {}) {}

  private base(registry: string): string {
    return `${this.o.insecure?.includes(registry) ? 'http' : 'https'}://${registry}`;
  }

  private async get(
    url: string,
    accept: string,
    auth: { header?: string; creds?: Credentials },
  ): Promise<Response> {
    const signal = AbortSignal.timeout(this.o.timeoutMs ?? 10_000);
    const headers: Record<string, string> = { accept };
    if (auth.header) headers.authorization = auth.header;
    const res = await fetch(url, { headers, signal });
    if (res.status !== 401 || auth.header !== undefined) return res;
    // One round of the registry's auth challenge.
    const challenge = parseChallenge(res.headers.get('www-authenticate') ?? '');
    const basic = auth.creds
      ? `Basic ${Buffer.from(`${auth.creds.username}:${auth.creds.password}`).toString('base64')}`
      : undefined;
    if (challenge.scheme === 'basic') {
      if (!basic) return res;
      auth.header = basic;
      return this.get(url, accept, auth);
    }
    if (challenge.scheme === 'bearer' && challenge.params.realm) {
      const tokenUrl = new URL(challenge.params.realm);
      for (const k of ['service', 'scope']) {
        const v = challenge.params[k];
        if (v) tokenUrl.searchParams.set(k, v);
      }
      const tokenRes = await fetch(tokenUrl, {
        headers: basic ? { authorization: basic } : {},
        signal,
      });
      if (!tokenRes.ok) throw new Error(`registry token request failed (${tokenRes.status})`);
      const body = (await tokenRes.json()) as { token?: string; access_token?: string };
      const token = body.token ?? body.access_token;
      if (!token) throw new Error('registry token response had no token');
      auth.header = `Bearer ${token}`;
      return this.get(url, accept, auth);
    }
    return res;
  }

  async resolve(
    image: string,
    namespace: string,
    pullSecrets: readonly string[],
  ): Promise<ImageCommand> {
    const ref = parseImageRef(image);
    const creds = await this.o.credentials?.(namespace, pullSecrets, ref.registry);
    const auth: { header?: string; creds?: Credentials } = creds ? { creds } : {};
    const repoUrl = `${this.base(ref.registry)}/v2/${ref.repository}`;
    const digestKey = (d: string): string => `${ref.registry}/${ref.repository}@${d}`;

    if (ref.reference.startsWith('sha256:')) {
      const hit = this.configs.get(digestKey(ref.reference));
      if (hit) return hit;
    } else {
      const tag = this.tags.get(`${ref.registry}/${ref.repository}:${ref.reference}`);
      const hit =
        tag && Date.now() - tag.at < (this.o.tagTtlMs ?? 300_000)
          ? this.configs.get(digestKey(tag.digest))
          : undefined;
      if (hit) return hit;
    }

    let res = await this.get(`${repoUrl}/manifests/${ref.reference}`, ACCEPT, auth);
    if (!res.ok)
      throw new Error(
        `registry ${ref.registry} answered ${res.status} for ${ref.repository}:${ref.reference}`,
      );
    let digest = res.headers.get('docker-content-digest') ?? ref.reference;
    let manifest = (await res.json()) as {
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
      res = await this.get(`${repoUrl}/manifests/${pick.digest}`, ACCEPT, auth);
      if (!res.ok)
        throw new Error(`registry ${ref.registry} answered ${res.status} for ${pick.digest}`);
      digest = pick.digest;
      manifest = (await res.json()) as typeof manifest;
    }
    if (!manifest.config?.digest) throw new Error(`image ${image} has no config`);
    const blob = await this.get(`${repoUrl}/blobs/${manifest.config.digest}`, '*/*', auth);
    if (!blob.ok)
      throw new Error(
        `registry ${ref.registry} answered ${blob.status} for the config of ${image}`,
      );
    const config = (await blob.json()) as {
      config?: { Entrypoint?: string[] | null; Cmd?: string[] | null };
    };
    const command: ImageCommand = {
      entrypoint: config.config?.Entrypoint ?? [],
      cmd: config.config?.Cmd ?? [],
    };
    this.configs.set(digestKey(digest), command);
    if (!ref.reference.startsWith('sha256:')) {
      this.tags.set(`${ref.registry}/${ref.repository}:${ref.reference}`, {
        digest,
        at: Date.now(),
      });
    }
    return command;
  }
}
