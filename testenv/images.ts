// Images without a Docker engine: one-layer images built from files the
// project and Debian provide, and a client that pushes them to an OCI
// registry over the distribution HTTP API (the sandbox's own registry, and
// the registries the webhook's image-lookup tests start).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const MEDIA = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** The `config` part of an image's config blob (the Dockerfile's USER, ENTRYPOINT…). */
export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
}

export interface Layer {
  mediaType: string;
  /** The blob as stored (compressed or not). */
  data: Buffer;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

export interface Image {
  architecture: string;
  config: ImageConfig;
  layers: Layer[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export const sha256 = (b: Buffer): string =>
  `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes blobs and manifests to the registry at `host` (plain HTTP). */
export interface RegistryClient {
  blob(repo: string, data: Buffer): Promise<Descriptor>;
  manifest(repo: string, ref: string, mediaType: string, body: unknown): Promise<Descriptor>;
  /** Pushes the image's layers, config and manifest; returns the manifest's descriptor. */
  pushImage(repo: string, ref: string, image: Image): Promise<Descriptor>;
}

export function registryClient(host: string, headers: Record<string, string> = {}): RegistryClient {
  const base = `http://${host}/v2`;
  const blob = async (repo: string, data: Buffer): Promise<Descriptor> => {
    const digest = sha256(data);
    const start = await fetch(`${base}/${repo}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202) {
      throw new Error(
        `testenv: blob upload to ${host}/${repo}: ${start.status} ${await start.text()}`,
      );
    }
    const location = new URL(start.headers.get('location') ?? '', `http://${host}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      body: data,
      headers: { 'content-type': 'application/octet-stream', ...headers },
    });
    if (put.status !== 201) {
      throw new Error(`testenv: blob upload to ${host}/${repo}: ${put.status} ${await put.text()}`);
    }
    return { mediaType: 'application/octet-stream', digest, size: data.length };
  };
  const manifest = async (
    repo: string,
    ref: string,
    mediaType: string,
    body: unknown,
  ): Promise<Descriptor> => {
    const data = Buffer.from(JSON.stringify(body));
    const res = await fetch(`${base}/${repo}/manifests/${ref}`, {
      method: 'PUT',
      body: data,
      headers: { 'content-type': mediaType, ...headers },
    });
    if (res.status !== 201) {
      throw new Error(
        `testenv: manifest upload to ${host}/${repo}:${ref}: ${res.status} ${await res.text()}`,
      );
    }
    return { mediaType, digest: sha256(data), size: data.length };
  };
  return {
    blob,
    manifest,
    async pushImage(repo, ref, image) {
      const layers: Descriptor[] = [];
      for (const l of image.layers) {
        layers.push({ ...(await blob(repo, l.data)), mediaType: l.mediaType });
      }
      const cfg = await blob(
        repo,
        Buffer.from(
          JSON.stringify({
            architecture: image.architecture,
            os: 'linux',
            config: image.config,
            rootfs: { type: 'layers', diff_ids: image.layers.map((l) => l.diffId) },
          }),
        ),
      );
      return manifest(repo, ref, MEDIA.manifest, {
        schemaVersion: 2,
        mediaType: MEDIA.manifest,
        config: { ...cfg, mediaType: MEDIA.config },
        layers,
      });
    },
  };
}

/**
 * A registry config for distribution's `registry serve`: plain HTTP on
 * `host`, blobs under `storage`, plus any extra lines (auth, token…).
 * The access log (one line per request, on stdout) stays on: it shows
 * which images a node pulled.
 */
export function registryConfig(o: { host: string; storage: string; extra?: string[] }): string {
  return [
    'version: 0.1',
    'log: {level: error}',
    'storage:',
    `  filesystem: {rootdirectory: ${o.storage}}`,
    'http:',
    `  addr: ${o.host}`,
    ...(o.extra ?? []),
    '',
  ].join('\n');
}

// --- the sandbox node's images

/** Repository and tag of each image the sandbox node uses, in its registry. */
export const NODE_IMAGES = {
  pause: 'cloudtaser/pause:1',
  busybox: 'cloudtaser/busybox:1',
  init: 'cloudtaser/init:1',
} as const;

export type NodeImageName = keyof typeof NODE_IMAGES;

/** An uncompressed one-layer tar of `root`, owned by root (what a Dockerfile COPY gives). */
export async function tarLayer(root: string): Promise<Layer> {
  const out = `${root}.tar`;
  await exec('tar', [
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--sort=name',
    '-C',
    root,
    '-cf',
    out,
    '.',
  ]);
  const data = await readFile(out);
  return { mediaType: MEDIA.layerTar, data, diffId: sha256(data) };
}

/**
 * The node's images, each one layer: the pause image; a busybox app image
 * with sh, cat, tr, grep, sleep, env (Debian's static busybox); and the
 * cloudtaser-init image as images/init.Dockerfile describes it (only the
 * static wrapper, USER 65532:65532, ENTRYPOINT [/cloudtaser-wrapper]).
 */
export async function buildNodeImages(
  work: string,
  files: { pause: string; busybox: string; wrapper: string },
): Promise<Record<NodeImageName, Image>> {
  const pauseRoot = join(work, 'pause-root');
  await mkdir(pauseRoot, { recursive: true });
  await writeFile(join(pauseRoot, 'pause'), await readFile(files.pause), { mode: 0o755 });

  const bbRoot = join(work, 'busybox-root');
  await mkdir(join(bbRoot, 'bin'), { recursive: true });
  await mkdir(join(bbRoot, 'tmp'), { recursive: true });
  await writeFile(join(bbRoot, 'bin', 'busybox'), await readFile(files.busybox), { mode: 0o755 });
  for (const tool of ['sh', 'cat', 'tr', 'cut', 'grep', 'sleep', 'env', 'ls', 'echo', 'id']) {
    await symlink('busybox', join(bbRoot, 'bin', tool));
  }

  const initRoot = join(work, 'init-root');
  await mkdir(initRoot, { recursive: true });
  await writeFile(join(initRoot, 'cloudtaser-wrapper'), await readFile(files.wrapper), {
    mode: 0o755,
  });

  const image = async (root: string, config: ImageConfig): Promise<Image> => ({
    architecture: 'amd64',
    config,
    layers: [await tarLayer(root)],
  });
  return {
    pause: await image(pauseRoot, { Entrypoint: ['/pause'] }),
    busybox: await image(bbRoot, { Env: ['PATH=/bin'], Cmd: ['sh'] }),
    // The same image the Dockerfile builds: only the wrapper, non-root.
    init: await image(initRoot, { User: '65532:65532', Entrypoint: ['/cloudtaser-wrapper'] }),
  };
}

/** Pushes the node's images to the registry at `host`; returns their refs there. */
export async function pushNodeImages(
  host: string,
  images: Record<NodeImageName, Image>,
): Promise<Record<NodeImageName, string>> {
  const client = registryClient(host);
  const push = async (name: NodeImageName): Promise<string> => {
    const [repo = '', tag = ''] = NODE_IMAGES[name].split(':');
    await client.pushImage(repo, tag, images[name]);
    return `${host}/${NODE_IMAGES[name]}`;
  };
  return { pause: await push('pause'), busybox: await push('busybox'), init: await push('init') };
}
