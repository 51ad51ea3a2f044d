// External Secrets Operator for the ESO migration tests: its controller built
// from the pinned Go module (cached with the sandbox's other binaries), its
// CRDs from the same module, and the controller run as a host process
// against a sandbox API server (outside the cluster, with a kubeconfig, as
// controller-runtime allows).
import { spawn } from 'node:child_process';
import { copyFile, open, rename } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensureGoTools, BuildError, type Log } from './build.js';
import { esoModuleDir } from './paths.js';

export const ESO_VERSION = 'v0.16.2';
const ESO_MODULE = 'github.com/external-secrets/external-secrets';

export interface EsoBinaries {
  /** The controller (`external-secrets`, the module's root package). */
  controller: string;
  /** deploy/crds/bundle.yaml of the same module version. */
  crds: string;
}

function goJson(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('go', args, {
      cwd,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else
        reject(
          new BuildError(
            'external-secrets CRDs',
            `go ${args[0] ?? ''} exited ${code}: ${err.trim().slice(-500)}`,
            'Check that the Go module proxy is reachable.',
          ),
        );
    });
  });
}

/**
 * Builds the controller once (about 5 min with the modules downloaded, more
 * than 8 cold on 2 cores, ~2.7 GB peak) and keeps the CRD bundle next to it,
 * so later runs need neither Go nor the module cache.
 */
export async function ensureEso(log: Log = () => undefined): Promise<EsoBinaries> {
  const bins = await ensureGoTools(log, {
    id: 'eso',
    label: 'external-secrets controller',
    moduleDir: esoModuleDir,
    version: ESO_VERSION,
    tools: [{ pkg: ESO_MODULE, out: 'external-secrets', name: 'external-secrets' }],
    ldflags: '-s -w',
    estimate: 'about 5 min on 2 cores, more than 8 with no module cache; peak ~2.7 GB',
  });
  const controller = bins['external-secrets'] ?? '';
  const crds = join(dirname(controller), 'bundle.yaml');
  if (!existsSync(crds)) {
    const info = JSON.parse(
      await goJson(['mod', 'download', '-json', `${ESO_MODULE}@${ESO_VERSION}`], esoModuleDir),
    ) as { Dir?: string };
    if (!info.Dir) {
      throw new BuildError(
        'external-secrets CRDs',
        'go mod download gave no module directory',
        'Check the Go module cache.',
      );
    }
    // Copied, then renamed: a reader never sees half a bundle.
    const tmp = `${crds}.tmp-${process.pid}`;
    await copyFile(join(info.Dir, 'deploy', 'crds', 'bundle.yaml'), tmp);
    await rename(tmp, crds);
  }
  return { controller, crds };
}

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, output });
    });
  });
}

/**
 * Creates ESO's CRDs in the API server (server-side apply: the store CRDs
 * are over the 256 KiB client-side apply annotation limit) and waits until
 * they are served. Idempotent: a second call changes nothing.
 */
export async function installEsoCrds(
  kubectl: string,
  kubeconfig: string,
  crds: string,
): Promise<void> {
  const env = { ...process.env, KUBECONFIG: kubeconfig };
  const apply = await run(
    kubectl,
    [
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager',
      'cloudtaser-testenv',
      '-f',
      crds,
    ],
    env,
  );
  if (apply.code !== 0)
    throw new Error(`kubectl apply of ESO's CRDs failed: ${apply.output.trim().slice(-800)}`);
  const wait = await run(
    kubectl,
    [
      'wait',
      '--for',
      'condition=Established',
      '--timeout',
      '60s',
      'crd/externalsecrets.external-secrets.io',
      'crd/secretstores.external-secrets.io',
      'crd/clustersecretstores.external-secrets.io',
    ],
    env,
  );
  if (wait.code !== 0)
    throw new Error(`ESO's CRDs were not established: ${wait.output.trim().slice(-800)}`);
}

export interface EsoController {
  pid: number;
  /** The controller's own log (stdout and stderr). */
  logFile: string;
  /** Stops the controller (its process group, by pid) and waits until it is gone. */
  stop(): Promise<void>;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Runs the controller against the API server of `kubeconfig`, metrics on a
 * loopback port, no leader election (there is one replica).
 */
export async function startEsoController(opts: {
  controller: string;
  kubeconfig: string;
  /** Watch only this namespace (ClusterSecretStores are still seen); default: all. */
  namespace?: string;
  metricsPort: number;
  logFile: string;
}): Promise<EsoController> {
  const log = await open(opts.logFile, 'a');
  const child = spawn(
    opts.controller,
    [
      `--metrics-addr=127.0.0.1:${opts.metricsPort}`,
      '--enable-leader-election=false',
      ...(opts.namespace === undefined ? [] : [`--namespace=${opts.namespace}`]),
      '--loglevel=info',
    ],
    {
      env: { ...process.env, KUBECONFIG: opts.kubeconfig },
      stdio: ['ignore', log.fd, log.fd],
      detached: true,
    },
  );
  await log.close();
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${opts.controller}`);
  child.unref();
  return {
    pid,
    logFile: opts.logFile,
    async stop() {
      const signal = (s: NodeJS.Signals): void => {
        try {
          process.kill(-pid, s);
        } catch {
          // Already gone.
        }
      };
      signal('SIGTERM');
      const deadline = Date.now() + 10_000;
      while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (alive(pid)) signal('SIGKILL');
      while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
    },
  };
}
