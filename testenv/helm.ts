// Helm for the tests and the demo: built once from its pinned Go module
// (release binaries cannot be downloaded here) and cached beside the other
// servers, keyed by the version and the Go toolchain; and a runner that keeps
// Helm's own cache, config and data directories inside the sandbox's
// directory, so nothing lands in the user's home.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BuildError, type Log } from './build.js';
import { freePort } from './net.js';
import { withLock } from './lock.js';
import { cacheRoot, projectRoot } from './paths.js';
import type { SandboxInfo } from './sandbox.js';
import { pushWebhookImage } from './webhook-image.js';

const exec = promisify(execFile);

export const HELM_VERSION = 'v3.22.0';

/** Builds (first run only) and returns the path of the pinned helm binary. */
export async function ensureHelm(log: Log = () => undefined): Promise<string> {
  let goVersion: string;
  try {
    goVersion = (await exec('go', ['env', 'GOVERSION'])).stdout.trim();
  } catch {
    throw new BuildError('helm', '`go` is not on PATH', 'Install Go 1.24 or newer.');
  }
  const key = createHash('sha256')
    .update(`${HELM_VERSION}\0${goVersion}`)
    .digest('hex')
    .slice(0, 16);
  const dir = join(cacheRoot(), `helm-${HELM_VERSION}-${key}`);
  const bin = join(dir, 'helm');
  if (existsSync(join(dir, '.complete'))) return bin;
  await mkdir(cacheRoot(), { recursive: true });
  return withLock(
    `${dir}.lock`,
    {
      timeoutMs: 30 * 60_000,
      pollMs: 2000,
      waiting: (owner) => {
        log(`testenv: waiting for another helm build (pid ${owner}) to finish…`);
      },
      stuck: () => new Error(`testenv: gave up waiting for build lock ${dir}.lock`),
    },
    async () => {
      if (existsSync(join(dir, '.complete'))) return bin;
      const tmp = await mkdtemp(`${dir}.tmp-`);
      const logFile = join(cacheRoot(), `build-helm-${key}.log`);
      log(
        `testenv: building helm ${HELM_VERSION} with ${goVersion} (first run only; about 2 min on 2 cores; log: ${logFile})`,
      );
      const started = Date.now();
      try {
        const r = await exec(
          'go',
          ['install', '-trimpath', '-ldflags', '-s -w', `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`],
          {
            env: { ...process.env, CGO_ENABLED: '0', GOBIN: tmp, GOFLAGS: '-mod=mod' },
            maxBuffer: 64 << 20,
          },
        );
        await writeFile(logFile, r.stdout + r.stderr);
      } catch (e) {
        const err = e as { stderr?: string; message?: string };
        await writeFile(logFile, err.stderr ?? err.message ?? String(e));
        await rm(tmp, { recursive: true, force: true });
        throw new BuildError(
          'helm',
          `go install exited non-zero: ${(err.stderr ?? '').trim().split('\n').slice(-5).join('\n')}`,
          `Check that the Go module proxy is reachable; full log: ${logFile}`,
        );
      }
      await writeFile(join(tmp, '.complete'), new Date().toISOString());
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
      log(`testenv: built helm in ${Math.round((Date.now() - started) / 1000)} s → ${dir}`);
      return bin;
    },
  );
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Helm's environment: the kubeconfig, and its cache, config and data dirs under `home`. */
export function helmEnv(o: { kubeconfig?: string; home: string }): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: o.home,
    HELM_CACHE_HOME: join(o.home, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(o.home, 'helm', 'config'),
    HELM_DATA_HOME: join(o.home, 'helm', 'data'),
    ...(o.kubeconfig ? { KUBECONFIG: o.kubeconfig } : {}),
  };
}

/**
 * Runs helm against a kubeconfig, with HELM_CACHE_HOME, HELM_CONFIG_HOME and
 * HELM_DATA_HOME under `home` (the sandbox's dir). Never throws on a non-zero
 * exit: the caller asserts on the result.
 */
export async function runHelm(
  helm: string,
  o: { kubeconfig?: string; home: string },
  args: readonly string[],
  input?: string,
): Promise<HelmResult> {
  const env = helmEnv(o);
  return new Promise((resolve) => {
    const child = execFile(helm, [...args], { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The chart in this checkout. */
export const CHART_DIR = join(projectRoot, 'charts', 'cloudtaser');

export interface SandboxChart {
  helm: string;
  namespace: string;
  /** The values file the release is installed with (JSON). */
  valuesFile: string;
  /** Webhook image ref in the sandbox registry. */
  image: string;
  /** The two host ports the webhook moves between on upgrades. */
  ports: [number, number];
  /** `helm install` arguments for this release (what the demo prints and runs). */
  installArgs: string[];
  /** The environment helm runs with (kubeconfig, Helm's dirs in the sandbox dir). */
  env: NodeJS.ProcessEnv;
  /** Runs helm with the sandbox's kubeconfig and Helm dirs. */
  run(args: readonly string[]): Promise<HelmResult>;
}

/**
 * Everything to install the chart into a sandbox whose node runs pods, the
 * sandbox way (`sandbox.loopback`: host network, ExternalName Service to
 * 127.0.0.1, in-cluster clients pointed at the API server on loopback): helm
 * built, the webhook image built here and pushed to the sandbox registry,
 * two free host ports, and the values file. `namespaceLabels` limits the
 * webhook to namespaces carrying them (tests sharing a sandbox).
 */
export async function prepareSandboxChart(
  info: SandboxInfo,
  o: {
    namespace: string;
    dir: string;
    namespaceLabels?: Record<string, string>;
    log?: Log;
  },
): Promise<SandboxChart> {
  const node = info.node;
  if (!node) throw new Error('testenv: the webhook chart runs in pods; this sandbox has no node');
  const log = o.log ?? (() => undefined);
  const [helm, pushed] = await Promise.all([ensureHelm(log), pushWebhookImage(info.registry, log)]);
  const ports: [number, number] = [await freePort(), await freePort()];
  while (ports[1] === ports[0]) ports[1] = await freePort();
  const [repository, tag] = splitRef(pushed.ref);
  const values = {
    image: { repository, tag },
    initImage: node.images.init,
    authMountPath: `auth/${info.baoKubeAuthPath}`,
    replicaCount: 1,
    tolerations: [node.toleration],
    webhook: {
      port: ports[0],
      insecureRegistries: [info.registry],
      namespaceLabels: o.namespaceLabels ?? {},
    },
    sandbox: {
      loopback: true,
      secondPort: ports[1],
      apiServerPort: Number(new URL(info.apiServer).port),
    },
  };
  const valuesFile = join(o.dir, 'cloudtaser-values.json');
  await writeFile(valuesFile, JSON.stringify(values, null, 2));
  const home = { kubeconfig: info.kubeconfig, home: info.dir };
  return {
    helm,
    namespace: o.namespace,
    valuesFile,
    image: pushed.ref,
    ports,
    installArgs: [
      'install',
      'cloudtaser',
      CHART_DIR,
      '-n',
      o.namespace,
      '--create-namespace',
      '-f',
      valuesFile,
      '--wait',
      '--timeout',
      '5m',
    ],
    env: helmEnv(home),
    run: (args) => runHelm(helm, home, args),
  };
}

/** prepareSandboxChart, then `helm install --wait`: the webhook pod is Ready when it returns. */
export async function installSandboxChart(
  info: SandboxInfo,
  o: Parameters<typeof prepareSandboxChart>[1],
): Promise<SandboxChart> {
  const chart = await prepareSandboxChart(info, o);
  const started = Date.now();
  const r = await chart.run(chart.installArgs);
  if (r.code !== 0) {
    throw new Error(`testenv: helm install failed: ${(r.stderr || r.stdout).trim()}`);
  }
  o.log?.(
    `testenv: helm install of the webhook chart took ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  return chart;
}

/** `host:port/repo:tag` → [`host:port/repo`, `tag`]. */
function splitRef(ref: string): [string, string] {
  const i = ref.lastIndexOf(':');
  return [ref.slice(0, i), ref.slice(i + 1)];
}
