// The webhook's container image, built without a Docker engine, in the same
// layout as images/webhook.Dockerfile (keep the two in step):
//   /nodejs/bin/node           the Node.js binary (the Dockerfile's distroless
//                              nodejs20 base puts it there)
//   /lib…, /usr/lib…           the only shared libraries node links against:
//                              Debian 12's libc6, libgcc-s1, libstdc++6
//   /app/package.json, /app/node_modules (production only), /app/dist
//   /etc/passwd, /etc/group    nonroot 65532, as distroless's :nonroot
//   /tmp                       1777
// USER 65532:65532, no shell, ENTRYPOINT node dist/bin/cloudtaser.js webhook
// serve. Three layers (system, dependencies, app), each cached under the
// testenv cache root by the hash of what goes into it, so a change to dist/
// rebuilds only the small app layer.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import {
  chmod,
  cp,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Log } from './build.js';
import { MEDIA, registryClient, sha256, type Image, type Layer } from './images.js';
import { withLock } from './lock.js';
import { cacheRoot, projectRoot } from './paths.js';

const exec = promisify(execFile);
const gz = promisify(gzip);

/** Debian packages holding every library `ldd node` lists. */
export const WEBHOOK_IMAGE_DEBS = ['libc6', 'libgcc-s1', 'libstdc++6'] as const;

export const WEBHOOK_IMAGE_REPO = 'cloudtaser/webhook';

/** Where the image's files come from (overridable for tests). */
export interface WebhookImageInputs {
  node: string;
  projectRoot: string;
}

export interface BuiltWebhookImage {
  image: Image;
  /** Content key of the whole image; the tag it is pushed under. */
  tag: string;
  /** Bytes of the layers as pushed (gzip) and uncompressed. */
  size: { compressed: number; uncompressed: number };
  /** Milliseconds spent building layers (0 when all came from the cache). */
  buildMs: number;
}

async function hashFile(file: string, h = createHash('sha256')): Promise<void> {
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * The candidate version of each package, as apt would download it. A
 * machine whose package lists were never fetched gets them first (as root,
 * like the node's own packages).
 */
async function debVersions(): Promise<string[]> {
  const candidates = async (): Promise<(string | undefined)[]> =>
    Promise.all(
      WEBHOOK_IMAGE_DEBS.map(async (pkg) => {
        const r = await exec('apt-cache', ['policy', pkg]);
        const v = /Candidate:\s*(\S+)/.exec(r.stdout)?.[1];
        return v && v !== '(none)' ? `${pkg}=${v}` : undefined;
      }),
    );
  let found = await candidates();
  if (found.includes(undefined) && process.getuid?.() === 0) {
    await exec('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update', '-qq'], {
      maxBuffer: 64 << 20,
    });
    found = await candidates();
  }
  const missing = WEBHOOK_IMAGE_DEBS.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) {
    throw new Error(
      `testenv: apt has no ${missing.join(', ')} to build the webhook image from; run apt-get update`,
    );
  }
  return found.filter((v): v is string => v !== undefined);
}

/** A deterministic one-layer tar of `root`, gzipped, cached as `file`. */
async function layerOf(root: string, file: string): Promise<Layer> {
  const tar = `${file}.tar`;
  await exec('tar', [
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--sort=name',
    '--mtime=@0',
    '-C',
    root,
    '-cf',
    tar,
    '.',
  ]);
  const raw = await readFile(tar);
  const data = await gz(raw, { level: 6 });
  await rm(tar, { force: true });
  const layer = { mediaType: MEDIA.layerGzip, diffId: sha256(raw), size: raw.length };
  await writeFile(`${file}.gz`, data);
  await writeFile(`${file}.json`, JSON.stringify(layer));
  return { mediaType: layer.mediaType, data, diffId: layer.diffId };
}

async function cachedLayer(
  file: string,
): Promise<{ layer: Layer; uncompressed: number } | undefined> {
  if (!existsSync(`${file}.json`) || !existsSync(`${file}.gz`)) return undefined;
  const meta = JSON.parse(await readFile(`${file}.json`, 'utf8')) as {
    mediaType: string;
    diffId: string;
    size: number;
  };
  return {
    layer: { mediaType: meta.mediaType, diffId: meta.diffId, data: await readFile(`${file}.gz`) },
    uncompressed: meta.size,
  };
}

/**
 * Builds (or takes from the cache) the webhook image from this checkout's
 * dist/ (run `npm run build` first), its package-lock.json, the running
 * Node.js binary and Debian's libraries.
 */
export async function buildWebhookImage(
  log: Log = () => undefined,
  inputs: WebhookImageInputs = { node: process.execPath, projectRoot },
): Promise<BuiltWebhookImage> {
  const root = inputs.projectRoot;
  const dist = join(root, 'dist');
  if (!existsSync(join(dist, 'bin', 'cloudtaser.js'))) {
    throw new Error('testenv: the webhook image is built from dist/; run npm run build first');
  }
  const cache = join(cacheRoot(), 'webhook-image');
  await mkdir(cache, { recursive: true });

  // --- keys: what determines each layer's bytes
  const debs = await debVersions();
  const sysHash = createHash('sha256').update(debs.join('\n')).update('\0');
  await hashFile(inputs.node, sysHash);
  const sysKey = `system-${sysHash.digest('hex').slice(0, 16)}`;
  const pkgJson = await readFile(join(root, 'package.json'));
  const lock = await readFile(join(root, 'package-lock.json'));
  // The cloud SDKs are optional dependencies the webhook never loads (they
  // serve `target import --from aws|gcp|azure`): left out of the image.
  const npmArgs = ['ci', '--omit=dev', '--omit=optional', '--ignore-scripts'];
  const depsKey = `deps-${createHash('sha256').update(lock).update('\0').update(pkgJson).update('\0').update(npmArgs.join(' ')).digest('hex').slice(0, 16)}`;
  // The wrapper binary `npm run build` also writes into dist/ belongs to the
  // init image; the Dockerfile's dist holds only tsc's output.
  const appFiles = (await listFiles(dist)).filter((f) => !relative(dist, f).startsWith('wrapper/'));
  const appHash = createHash('sha256').update(pkgJson);
  for (const f of appFiles) {
    appHash.update(relative(dist, f)).update('\0');
    await hashFile(f, appHash);
  }
  const appKey = `app-${appHash.digest('hex').slice(0, 16)}`;

  return withLock(
    join(cache, '.lock'),
    {
      timeoutMs: 15 * 60_000,
      pollMs: 1000,
      waiting: (owner) => {
        log(`testenv: waiting for another webhook image build (pid ${owner})…`);
      },
      stuck: () => new Error(`testenv: gave up waiting for ${join(cache, '.lock')}`),
    },
    async () => {
      const started = Date.now();
      // Set by the layer builds below (a closure TypeScript cannot follow).
      const state = { built: false };
      const work = await mkdtemp(join(cache, 'work-'));
      try {
        const get = async (
          key: string,
          make: (dir: string) => Promise<void>,
        ): Promise<{ layer: Layer; uncompressed: number }> => {
          const file = join(cache, key);
          const hit = await cachedLayer(file);
          if (hit) return hit;
          state.built = true;
          const dir = join(work, key);
          await mkdir(dir, { recursive: true });
          await make(dir);
          const layer = await layerOf(dir, `${file}.tmp`);
          for (const ext of ['gz', 'json']) await rename(`${file}.tmp.${ext}`, `${file}.${ext}`);
          return (await cachedLayer(file)) ?? { layer, uncompressed: 0 };
        };

        const system = await get(sysKey, async (dir) => {
          const debDir = join(work, 'debs');
          await mkdir(debDir, { recursive: true });
          log(`testenv: webhook image: apt-get download ${debs.join(' ')}`);
          await exec('apt-get', ['download', ...debs], { cwd: debDir, maxBuffer: 16 << 20 });
          for (const deb of (await readdir(debDir)).filter((f) => f.endsWith('.deb'))) {
            await exec('dpkg-deb', ['-x', join(debDir, deb), dir]);
          }
          // Only the libraries: no docs, no locale converters, no programs.
          for (const p of [
            'usr/share',
            'usr/lib/x86_64-linux-gnu/gconv',
            'usr/bin',
            'usr/sbin',
            'sbin',
            'bin',
            'usr/libexec',
            'etc',
          ]) {
            await rm(join(dir, p), { recursive: true, force: true });
          }
          await mkdir(join(dir, 'nodejs', 'bin'), { recursive: true });
          await cp(inputs.node, join(dir, 'nodejs', 'bin', 'node'));
          await chmod(join(dir, 'nodejs', 'bin', 'node'), 0o755);
          await mkdir(join(dir, 'etc'), { recursive: true });
          await writeFile(
            join(dir, 'etc', 'passwd'),
            'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
          );
          await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnonroot:x:65532:\n');
          await mkdir(join(dir, 'tmp'));
          await chmod(join(dir, 'tmp'), 0o1777);
          await mkdir(join(dir, 'home', 'nonroot'), { recursive: true });
        });

        const deps = await get(depsKey, async (dir) => {
          const app = join(dir, 'app');
          await mkdir(app, { recursive: true });
          await writeFile(join(app, 'package.json'), pkgJson);
          await writeFile(join(app, 'package-lock.json'), lock);
          log(`testenv: webhook image: npm ${npmArgs.join(' ')}`);
          await exec('npm', [...npmArgs, '--no-audit', '--no-fund', '--prefer-offline'], {
            cwd: app,
            maxBuffer: 64 << 20,
            env: { ...process.env, NODE_ENV: 'production' },
          });
          // package.json comes with the app layer; the lock file is not in the image.
          await rm(join(app, 'package.json'));
          await rm(join(app, 'package-lock.json'));
        });

        const appLayer = await get(appKey, async (dir) => {
          const app = join(dir, 'app');
          await mkdir(app, { recursive: true });
          await writeFile(join(app, 'package.json'), pkgJson);
          for (const f of appFiles) {
            const to = join(app, 'dist', relative(dist, f));
            await mkdir(join(to, '..'), { recursive: true });
            await cp(f, to);
          }
        });

        const layers = [system, deps, appLayer];
        const image: Image = {
          architecture: 'amd64',
          config: {
            User: '65532:65532',
            WorkingDir: '/app',
            Entrypoint: ['/nodejs/bin/node', '/app/dist/bin/cloudtaser.js', 'webhook', 'serve'],
            Cmd: ['--tls-cert', '/tls/tls.crt', '--tls-key', '/tls/tls.key', '--port', '8443'],
          },
          layers: layers.map((l) => l.layer),
        };
        const tag = createHash('sha256')
          .update(layers.map((l) => l.layer.diffId).join('\n'))
          .digest('hex')
          .slice(0, 12);
        return {
          image,
          tag,
          size: {
            compressed: layers.reduce((n, l) => n + l.layer.data.length, 0),
            uncompressed: layers.reduce((n, l) => n + l.uncompressed, 0),
          },
          buildMs: state.built ? Date.now() - started : 0,
        };
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    },
  );
}

/** Builds (or reuses) the webhook image and pushes it; returns its ref in `registry`. */
export async function pushWebhookImage(
  registry: string,
  log: Log = () => undefined,
): Promise<{ ref: string; built: BuiltWebhookImage }> {
  const built = await buildWebhookImage(log);
  if (built.buildMs > 0) {
    log(
      `testenv: built the webhook image in ${(built.buildMs / 1000).toFixed(1)} s ` +
        `(${(built.size.compressed / 1e6).toFixed(0)} MB gzipped, ${(built.size.uncompressed / 1e6).toFixed(0)} MB unpacked)`,
    );
  }
  await registryClient(registry).pushImage(WEBHOOK_IMAGE_REPO, built.tag, built.image);
  return { ref: `${registry}/${WEBHOOK_IMAGE_REPO}:${built.tag}`, built };
}
