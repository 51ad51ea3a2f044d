// A real OCI registry on loopback (the CNCF distribution server, built from
// its Go module and cached with the sandbox's other binaries), and a minimal
// image pushed to it over the HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freePort } from './net.js';
import { eventually, sandbox } from './sandbox.js';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
}

export interface LocalRegistry {
  host: string;
  /**
   * Pushes an image and returns its manifest digest. `asIndex` pushes an
   * index instead: `true` puts `config` under linux/amd64 next to a linux/arm64
   * image with a different ENTRYPOINT (so each platform has its own digest);
   * a map gives each architecture's config, listed in the map's order.
   */
  push(
    repository: string,
    tag: string,
    config: ImageConfig,
    asIndex?: boolean | Record<string, ImageConfig>,
  ): Promise<string>;
  stop(): void;
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A user the registry accepts when started with `auth` (htpasswd, bcrypt of the password). */
export const REGISTRY_USER = {
  username: 'puller',
  password: 'pull-secret-password',
  htpasswd: 'puller:$2a$10$briUHdDVrdsR.sgQEpRiNO0t.GeYJG04Ey1NAJfIgp0edq8TFT0v2',
};

export async function startRegistry(
  dir: string,
  opts: { auth?: boolean; extraConfig?: string[] } = {},
): Promise<LocalRegistry> {
  // Built by the test run's global setup along with the other servers.
  const bin = sandbox().binaries.registry;
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  if (opts.auth) await writeFile(join(dir, 'htpasswd'), `${REGISTRY_USER.htpasswd}\n`);
  // Pushes (the helper's own requests) carry the user when auth is on.
  const pushAuth: Record<string, string> = opts.auth
    ? {
        authorization: `Basic ${Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString('base64')}`,
      }
    : {};
  await writeFile(
    join(dir, 'registry.yml'),
    [
      'version: 0.1',
      'log: {level: error}',
      'storage:',
      `  filesystem: {rootdirectory: ${join(dir, 'data')}}`,
      'http:',
      `  addr: ${host}`,
      ...(opts.auth
        ? ['auth:', `  htpasswd: {realm: cloudtaser-test, path: ${join(dir, 'htpasswd')}}`]
        : []),
      ...(opts.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(bin, ['serve', join(dir, 'registry.yml')], { stdio: 'ignore' });
  await eventually('the registry', async () => {
    const r = await fetch(`http://${host}/v2/`, { headers: pushAuth }).catch(() => undefined);
    // Up: it answers (401 when it wants a token the helper does not have).
    return r?.status === 200 || (r?.status === 401 && opts.extraConfig) ? true : undefined;
  });

  const blob = async (repo: string, data: Buffer): Promise<string> => {
    const digest = sha(data);
    const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      headers: pushAuth,
    });
    const location = new URL(start.headers.get('location') ?? '', `http://${host}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      body: data,
      headers: { 'content-type': 'application/octet-stream', ...pushAuth },
    });
    if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
    return digest;
  };
  const manifest = async (
    repo: string,
    ref: string,
    mediaType: string,
    body: unknown,
  ): Promise<string> => {
    const data = Buffer.from(JSON.stringify(body));
    const res = await fetch(`http://${host}/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      body: data,
      headers: { 'content-type': mediaType, ...pushAuth },
    });
    if (res.status !== 201) throw new Error(`manifest upload: ${res.status} ${await res.text()}`);
    return sha(data);
  };

  return {
    host,
    async push(repository, tag, config, asIndex = false) {
      const layer = gzipSync(Buffer.alloc(1024));
      const layerDigest = await blob(repository, layer);
      const mediaType = 'application/vnd.oci.image.manifest.v1+json';
      const image = async (
        architecture: string,
        c: ImageConfig,
      ): Promise<{ body: unknown; size: number }> => {
        const cfg = Buffer.from(
          JSON.stringify({
            architecture,
            os: 'linux',
            config: c,
            rootfs: { type: 'layers', diff_ids: [sha(Buffer.alloc(1024))] },
          }),
        );
        const cfgDigest = await blob(repository, cfg);
        const body = {
          schemaVersion: 2,
          mediaType,
          config: {
            mediaType: 'application/vnd.oci.image.config.v1+json',
            digest: cfgDigest,
            size: cfg.length,
          },
          layers: [
            {
              mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
              digest: layerDigest,
              size: layer.length,
            },
          ],
        };
        return { body, size: Buffer.byteLength(JSON.stringify(body)) };
      };
      if (asIndex === false) {
        return manifest(repository, tag, mediaType, (await image('amd64', config)).body);
      }
      const platforms: Record<string, ImageConfig> =
        asIndex === true
          ? { arm64: { Entrypoint: ['/wrong-platform/arm64'], Cmd: [] }, amd64: config }
          : asIndex;
      const manifests = [];
      for (const [architecture, c] of Object.entries(platforms)) {
        const m = await image(architecture, c);
        const digest = await manifest(repository, `${tag}-${architecture}`, mediaType, m.body);
        manifests.push({
          mediaType,
          digest,
          size: m.size,
          platform: { os: 'linux', architecture },
        });
      }
      return manifest(repository, tag, 'application/vnd.oci.image.index.v1+json', {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests,
      });
    },
    stop() {
      child.kill('SIGKILL');
    },
  };
}
