// The sandbox node's images come from the sandbox's own registry, the way a
// cluster's nodes get theirs: the cloudtaser-init image (the static wrapper,
// laid out as images/init.Dockerfile describes) and the busybox app image are
// pulled by containerd over HTTP, run in one pod, and the webhook's ENTRYPOINT
// lookup reads the same registry.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { RegistryClient } from '../src/webhook/registry.js';
import { WRAPPER_BINARY, NODE_TOLERATION } from '../testenv/node.js';
import { startSandbox } from '../testenv/sandbox.js';
import { withNodeTestLock } from './helpers/node.js';
import { eventually } from './helpers/sandbox.js';

const exec = promisify(execFile);

function run(
  cmd: string,
  args: string[],
  input = '',
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, out });
    });
    child.stdin.end(input);
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A manifest and config blob as the registry serves them (read independently of testenv). */
async function imageFromRegistry(
  host: string,
  repo: string,
  tag: string,
): Promise<{
  config: { User?: string; Entrypoint?: string[]; Cmd?: string[] };
  layers: { digest: string }[];
}> {
  const m = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  expect(m.status).toBe(200);
  const manifest = (await m.json()) as { config: { digest: string }; layers: { digest: string }[] };
  const c = await fetch(`http://${host}/v2/${repo}/blobs/${manifest.config.digest}`);
  expect(c.status).toBe(200);
  const blob = (await c.json()) as { config: { User?: string; Entrypoint?: string[] } };
  return { config: blob.config, layers: manifest.layers };
}

const log = (line: string): void => {
  console.error(line);
};

describe('sandbox node images', () => {
  it(
    'pulls the app and cloudtaser-init images from the sandbox registry and runs them in one pod',
    () =>
      withNodeTestLock(async () => {
        const sb = await startSandbox({ node: true, log });
        const work = await mkdtemp(join(tmpdir(), 'ct-images-node-'));
        try {
          const registry = sb.info.registry;
          expect(registry).toMatch(/^127\.0\.0\.1:\d+$/);
          const images = sb.info.node?.images;
          expect(images).toEqual({
            pause: `${registry}/cloudtaser/pause:1`,
            busybox: `${registry}/cloudtaser/busybox:1`,
            init: `${registry}/cloudtaser/init:1`,
          });

          // The init image as the Dockerfile describes it: one layer holding
          // only the wrapper `npm run build` made, USER 65532:65532, ENTRYPOINT.
          const init = await imageFromRegistry(registry, 'cloudtaser/init', '1');
          expect(init.config.User).toBe('65532:65532');
          expect(init.config.Entrypoint).toEqual(['/cloudtaser-wrapper']);
          expect(init.layers).toHaveLength(1);
          const layer = await fetch(
            `http://${registry}/v2/cloudtaser/init/blobs/${init.layers[0]?.digest ?? ''}`,
          );
          const layerTar = join(work, 'init-layer.tar');
          await writeFile(layerTar, Buffer.from(await layer.arrayBuffer()));
          const listing = (await exec('tar', ['-tvf', layerTar])).stdout.trim().split('\n');
          expect(listing.map((l) => l.split(/\s+/).pop())).toEqual(['./', './cloudtaser-wrapper']);
          await exec('tar', ['-xf', layerTar, '-C', work, './cloudtaser-wrapper']);
          expect(sha256(await readFile(join(work, 'cloudtaser-wrapper')))).toBe(
            sha256(await readFile(WRAPPER_BINARY)),
          );

          // The webhook's lookup reads the same registry and finds that ENTRYPOINT.
          const looked = await new RegistryClient({ insecure: [registry] }).resolve(
            images?.init ?? '',
            'default',
            [],
          );
          expect(looked.entrypoint).toEqual(['/cloudtaser-wrapper']);

          // A pod as the webhook shapes it: cloudtaser-init (no command: the
          // image's ENTRYPOINT, as the image's non-root USER) installs the
          // wrapper into an in-memory volume; the app image's shell reads it.
          const kubectl = (args: string[], input?: string) =>
            run(sb.info.binaries.kubectl, [`--kubeconfig=${sb.info.kubeconfig}`, ...args], input);
          const pod = {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: 'images-pod', namespace: 'default' },
            spec: {
              hostNetwork: true,
              tolerations: [NODE_TOLERATION],
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 1,
              volumes: [{ name: 'wrapper', emptyDir: { medium: 'Memory' } }],
              initContainers: [
                {
                  name: 'cloudtaser-init',
                  image: images?.init,
                  args: ['--install', '/wrapper/cloudtaser-wrapper'],
                  volumeMounts: [{ name: 'wrapper', mountPath: '/wrapper' }],
                  securityContext: {
                    runAsNonRoot: true,
                    readOnlyRootFilesystem: true,
                    allowPrivilegeEscalation: false,
                    capabilities: { drop: ['ALL'] },
                  },
                },
              ],
              containers: [
                {
                  name: 'app',
                  image: images?.busybox,
                  command: [
                    'sh',
                    '-c',
                    'ls -ln /wrapper/cloudtaser-wrapper && echo app-env: $(env | grep ^PATH=)',
                  ],
                  volumeMounts: [{ name: 'wrapper', mountPath: '/wrapper' }],
                },
              ],
            },
          };
          const applied = await kubectl(['apply', '-f', '-'], JSON.stringify(pod));
          expect(applied.code, applied.out).toBe(0);
          const phase = await eventually(
            'the pod to finish',
            async () => {
              const r = await kubectl([
                'get',
                'pod',
                'images-pod',
                '-o',
                'jsonpath={.status.phase}',
              ]);
              return r.out === 'Succeeded' || r.out === 'Failed' ? r.out : undefined;
            },
            120_000,
          );
          const described = await kubectl(['get', 'pod', 'images-pod', '-o', 'json']);
          expect(phase, described.out).toBe('Succeeded');
          // The file cloudtaser-init wrote is owned by the image's USER (65532).
          const logs = await kubectl(['logs', 'images-pod', '-c', 'app']);
          const [listed = '', path] = logs.out.trim().split('\n');
          const [mode, , uid] = listed.split(/\s+/);
          expect({ mode, uid, path }).toEqual({
            mode: '-r-xr-xr-x',
            uid: '65532',
            path: 'app-env: PATH=/bin',
          });

          // Pulled over HTTP from the sandbox registry, by containerd.
          const access = readFileSync(join(sb.info.dir, 'logs', 'registry.log'), 'utf8');
          for (const repo of ['pause', 'busybox', 'init']) {
            expect(access).toMatch(
              new RegExp(
                `"GET /v2/cloudtaser/${repo}/manifests/sha256:[0-9a-f]{64} HTTP/1\\.1" 200 .*"containerd/`,
              ),
            );
          }
          const ctr = await exec('ctr', [
            '--address',
            sb.info.node?.containerdSock ?? '',
            '-n',
            'k8s.io',
            'images',
            'ls',
            '-q',
          ]);
          // Each image by its tag (CRI also lists it by digest and by id).
          const refs = ctr.stdout
            .split('\n')
            .filter((l) => l !== '' && !l.includes('@') && !l.startsWith('sha256:'));
          expect(refs.sort()).toEqual([images?.busybox, images?.init, images?.pause].sort());
        } finally {
          await sb.stop();
          await rm(work, { recursive: true, force: true });
        }
      }),
    400_000,
  );
});
