// A real OCI registry on loopback (the CNCF distribution server, built from
// its Go module and cached with the sandbox's other binaries), and a minimal
// image pushed to it over the HTTP API (testenv/images.ts, shared with the
// sandbox's own registry).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  MEDIA,
  registryClient,
  registryConfig,
  sha256,
  type ImageConfig,
  type Layer,
} from '../../testenv/images.js';
import { freePort } from './net.js';
import { eventually, sandbox } from './sandbox.js';

export type { ImageConfig } from '../../testenv/images.js';

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
    registryConfig({
      host,
      storage: join(dir, 'data'),
      extra: [
        ...(opts.auth
          ? ['auth:', `  htpasswd: {realm: cloudtaser-test, path: ${join(dir, 'htpasswd')}}`]
          : []),
        ...(opts.extraConfig ?? []),
      ],
    }),
  );
  const child: ChildProcess = spawn(bin, ['serve', join(dir, 'registry.yml')], { stdio: 'ignore' });
  await eventually('the registry', async () => {
    const r = await fetch(`http://${host}/v2/`, { headers: pushAuth }).catch(() => undefined);
    // Up: it answers (401 when it wants a token the helper does not have).
    return r?.status === 200 || (r?.status === 401 && opts.extraConfig) ? true : undefined;
  });

  const client = registryClient(host, pushAuth);
  // The same 1 KiB layer of zeros in every image: only the configs differ.
  const zeros = Buffer.alloc(1024);
  const layer: Layer = { mediaType: MEDIA.layerGzip, data: gzipSync(zeros), diffId: sha256(zeros) };
  const image = (architecture: string, config: ImageConfig) => ({
    architecture,
    config,
    layers: [layer],
  });

  return {
    host,
    async push(repository, tag, config, asIndex = false) {
      if (asIndex === false) {
        return (await client.pushImage(repository, tag, image('amd64', config))).digest;
      }
      const platforms: Record<string, ImageConfig> =
        asIndex === true
          ? { arm64: { Entrypoint: ['/wrong-platform/arm64'], Cmd: [] }, amd64: config }
          : asIndex;
      const manifests = [];
      for (const [architecture, c] of Object.entries(platforms)) {
        const m = await client.pushImage(
          repository,
          `${tag}-${architecture}`,
          image(architecture, c),
        );
        manifests.push({ ...m, platform: { os: 'linux', architecture } });
      }
      return (
        await client.manifest(repository, tag, MEDIA.index, {
          schemaVersion: 2,
          mediaType: MEDIA.index,
          manifests,
        })
      ).digest;
    },
    stop() {
      child.kill('SIGKILL');
    },
  };
}
