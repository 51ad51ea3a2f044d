// The sandbox's real node: containerd + runc (Debian packages),
// the kubelet and kube-scheduler (built from the pinned Kubernetes module),
// images built without Docker and pulled from the sandbox's registry, and a
// teardown that leaves the host as found.
//
// Why it is shaped like this (measured on these machines):
// - The kubelet rewrites host sysctls, and containerd 1.6 and the kubelet use
//   hard-coded host paths (/run/containerd, /var/lib/kubelet/device-plugins,
//   /var/log/containers, /var/log/pods). Both run in one private mount
//   namespace, held by a small process, in which plain files are bind-mounted
//   over those sysctls and sandbox dirs over those paths: the host sees
//   neither the writes nor a single container mount.
// - Every node process (containerd, its shims, the containers, the kubelet)
//   lives under one cgroup created beforehand in every hierarchy, so teardown
//   (and the watchdog, when the owner is killed) can find and kill all of them
//   and then remove those cgroups bottom-up.
// - The hard-coded paths make it one node per machine: a machine-wide lock,
//   held for as long as the node runs, makes a second node start wait.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ensureGoTools, type Log } from './build.js';
import { buildNodeImages, pushNodeImages } from './images.js';
import { cacheRoot, kubeModuleDir, projectRoot } from './paths.js';
import { acquireLock, lockOwner, pidAlive } from './lock.js';
import { issueFromNewCa } from './pki.js';

const exec = promisify(execFile);

/** The node cannot run here: one line saying why and what to do. */
export class NodeError extends Error {
  constructor(message: string) {
    super(`testenv: cannot start the sandbox node: ${message}`);
    this.name = 'NodeError';
  }
}

export interface NodeBinaries {
  kubelet: string;
  kubeScheduler: string;
  /** The pause binary for pod sandboxes (built with gcc -static). */
  pause: string;
  /** The static wrapper the cloudtaser-init image carries. */
  wrapper: string;
}

/** Debian packages the node needs, and a file each one installs. */
export const NODE_PACKAGES = [
  'containerd',
  'runc',
  'containernetworking-plugins',
  'busybox-static',
] as const;

export const CNI_BIN_DIR = '/usr/lib/cni';
const BUSYBOX = '/bin/busybox';

/** The cgroup (in every hierarchy) that holds every node process. */
export const NODE_CGROUP = 'cloudtaser-node';

/** Host paths the kubelet and containerd 1.6 use whatever they are told. */
export const HARD_CODED_PATHS = [
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/run/containerd',
] as const;

/**
 * Kernel tunables the kubelet sets when they differ from what it wants;
 * each is hidden behind a plain file inside the node's mount namespace.
 */
export const KUBELET_SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
] as const;

/** The static wrapper `npm run build` writes; the init image carries it. */
export const WRAPPER_BINARY = join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper');

/**
 * The static wrapper for the init image: the one `npm run build` made, or,
 * on a checkout never built, the same Go build into the same place (a temp
 * name first, so a concurrent reader never sees half a binary).
 */
export async function ensureWrapperBinary(log: Log): Promise<string> {
  if (existsSync(WRAPPER_BINARY)) return WRAPPER_BINARY;
  log('testenv: building the static wrapper for the cloudtaser-init image (npm run build:wrapper)');
  await mkdir(dirname(WRAPPER_BINARY), { recursive: true });
  const tmp = `${WRAPPER_BINARY}.tmp-${process.pid}`;
  try {
    await exec('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', tmp, '.'], {
      cwd: join(projectRoot, 'wrapper'),
      env: { ...process.env, CGO_ENABLED: '0' },
    });
    await rename(tmp, WRAPPER_BINARY);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new NodeError(
      `the static wrapper did not build (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); run npm run build`,
    );
  }
  return WRAPPER_BINARY;
}

/**
 * The taint the node registers with, and the toleration a pod needs to run
 * on it. Most tests create workloads whose images do not exist, and many of
 * them (120 in one test); on the node those would become pod sandboxes
 * failing their pulls, past the kubelet's pod limit, and a kubelet would
 * overwrite the pod status some tests set themselves. Tainted, the node
 * takes only the pods that ask for it; the rest stay Pending.
 */
export const NODE_TAINT = { key: 'cloudtaser.local/node', effect: 'NoSchedule' } as const;

export interface NodeToleration {
  key: string;
  operator: 'Exists';
  effect: 'NoSchedule';
}

export const NODE_TOLERATION: NodeToleration = { ...NODE_TAINT, operator: 'Exists' };

async function installed(pkg: string): Promise<boolean> {
  try {
    const r = await exec('dpkg-query', ['-W', '-f=${Status}', pkg]);
    return r.stdout.trim() === 'install ok installed';
  } catch {
    return false;
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Installs the missing Debian packages (as root), never leaving a
 * containerd service started: a temporary policy-rc.d refuses every service
 * start during the install, as Debian's maintainer scripts honour it.
 */
export async function ensureNodePackages(log: Log): Promise<void> {
  await ensureDebianPackages(NODE_PACKAGES, log);
}

/** The named Debian packages, installed when missing as ensureNodePackages describes. */
export async function ensureDebianPackages(packages: readonly string[], log: Log): Promise<void> {
  const missing: string[] = [];
  for (const p of packages) if (!(await installed(p))) missing.push(p);
  if (missing.length === 0) return;
  const names = missing.join(' ');
  if (!isRoot() || !existsSync('/usr/bin/apt-get')) {
    throw new NodeError(`missing packages ${names}; install them: apt-get install -y ${names}`);
  }
  log(`testenv: installing ${names} (apt-get install -y --no-install-recommends)`);
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) {
    await writeFile(
      policy,
      '#!/bin/sh\n# temporary: no service starts during an install\nexit 101\n',
    );
    await chmod(policy, 0o755);
  }
  try {
    // A fresh machine has no package lists yet.
    const lists = existsSync('/var/lib/apt/lists')
      ? readdirSync('/var/lib/apt/lists').filter((f) => f.endsWith('_Packages'))
      : [];
    if (lists.length === 0) {
      await exec('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update', '-qq'], {
        maxBuffer: 64 << 20,
      });
    }
    await exec(
      'apt-get',
      ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', ...missing],
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 },
    );
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n').slice(-3).join(' ') : String(e);
    throw new NodeError(`apt-get install ${names} failed (${msg.slice(0, 300)})`);
  } finally {
    if (ownPolicy) await rm(policy, { force: true });
  }
  for (const p of missing) {
    if (!(await installed(p))) throw new NodeError(`package ${p} is still not installed`);
  }
  // The package's own service must not have started: that would be a host change.
  const system = systemContainerd();
  if (system.length > 0) {
    throw new NodeError(
      `the containerd package started a system containerd (pid ${system.join(', ')}); stop it: systemctl stop containerd`,
    );
  }
}

/** containerd processes not started by a sandbox node (those always get `--config`). */
function systemContainerd(): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (/(^|\/)containerd$/.test(argv[0] ?? '') && !argv.includes('--config'))
        out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/**
 * Whether this machine can run containers at all: root, a private mount
 * namespace, cgroup v1 hierarchies. Returns the hierarchies' mount points.
 */
export async function checkNodeSupport(): Promise<string[]> {
  if (!isRoot()) throw new NodeError('it needs root (containers, cgroups, mounts)');
  try {
    await exec('unshare', ['--mount', '--propagation', 'private', 'true']);
  } catch {
    throw new NodeError('`unshare --mount` fails here (no mount namespaces)');
  }
  const hierarchies = cgroupHierarchies();
  if (!hierarchies.some((h) => !h.endsWith('/unified'))) {
    throw new NodeError(
      'no cgroup v1 hierarchies under /sys/fs/cgroup (only v1/hybrid is supported)',
    );
  }
  return hierarchies;
}

/** Mount points of every cgroup hierarchy (v1 and the hybrid unified one), deduplicated. */
export function cgroupHierarchies(): string[] {
  const seen = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const parts = line.split(' ');
    const sep = parts.indexOf('-');
    const mountPoint = parts[4];
    const fsType = parts[sep + 1];
    if (!mountPoint || sep < 0 || !mountPoint.startsWith('/sys/fs/cgroup')) continue;
    if (fsType !== 'cgroup' && fsType !== 'cgroup2') continue;
    let real = mountPoint;
    try {
      real = realpathSync(mountPoint);
    } catch {
      continue;
    }
    if (!seen.has(real)) seen.set(real, mountPoint);
  }
  return [...seen.values()].sort();
}

/**
 * kubelet and kube-scheduler from the same pinned module as the control
 * plane (their own cache entry, so a sandbox without a node never waits for
 * them), plus the pause binary from that module's source.
 */
export async function ensureNodeBinaries(log: Log, kubeVersion: string): Promise<NodeBinaries> {
  const ver = 'k8s.io/component-base/version';
  const b = await ensureGoTools(log, {
    id: 'kube-node',
    label: 'kubelet/kube-scheduler',
    moduleDir: kubeModuleDir,
    version: kubeVersion,
    tools: [
      { pkg: 'k8s.io/kubernetes/cmd/kubelet', out: 'kubelet', name: 'kubelet' },
      {
        pkg: 'k8s.io/kubernetes/cmd/kube-scheduler',
        out: 'kube-scheduler',
        name: 'kube-scheduler',
      },
    ],
    ldflags: [
      '-s',
      '-w',
      `-X ${ver}.gitVersion=${kubeVersion}`,
      `-X ${ver}.gitMajor=1`,
      `-X ${ver}.gitMinor=34`,
    ].join(' '),
    estimate: 'about 5-11 min on 2 cores with a cold Go cache',
  });
  const kubelet = b.kubelet ?? '';
  return {
    kubelet,
    kubeScheduler: b['kube-scheduler'] ?? '',
    pause: await ensurePause(log, kubeVersion),
    wrapper: await ensureWrapperBinary(log),
  };
}

async function ensurePause(log: Log, kubeVersion: string): Promise<string> {
  const dir = join(cacheRoot(), `pause-${kubeVersion}`);
  const bin = join(dir, 'pause');
  if (existsSync(bin)) return bin;
  let moduleDir: string;
  try {
    moduleDir = (
      await exec('go', ['list', '-m', '-f', '{{.Dir}}', 'k8s.io/kubernetes'], {
        cwd: kubeModuleDir,
        env: { ...process.env, GOFLAGS: '-mod=mod' },
      })
    ).stdout.trim();
  } catch {
    throw new NodeError('cannot locate the k8s.io/kubernetes module source (go list failed)');
  }
  const src = join(moduleDir, 'build', 'pause', 'linux', 'pause.c');
  // The static pause binary needs a C compiler and the static libc; a fresh
  // machine may have neither, and the README's commands must do all set-up.
  await ensureDebianPackages(['gcc', 'libc6-dev'], log);
  await mkdir(cacheRoot(), { recursive: true });
  const tmp = await mkdtemp(`${dir}.tmp-`);
  try {
    await exec('gcc', [
      '-Os',
      '-static',
      `-DVERSION=${kubeVersion}`,
      '-o',
      join(tmp, 'pause'),
      src,
    ]);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw new NodeError(
      `gcc -static could not build the pause binary (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); apt-get install gcc libc6-dev`,
    );
  }
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  log(`testenv: built pause → ${bin}`);
  return bin;
}

// --- machine-wide lock

export function nodeLockDir(): string {
  return join(cacheRoot(), 'node.lock');
}

/** The pid holding the node lock (the node's namespace holder once it runs), or 0. */
export function nodeLockOwner(): number {
  return lockOwner(nodeLockDir());
}

/**
 * Takes the machine-wide node lock, waiting for another node to go away. A
 * lock whose holder died is taken over, after cleaning what that node may
 * have left (its cgroups and mount points).
 */
export async function acquireNodeLock(log: Log, timeoutMs = 15 * 60_000): Promise<void> {
  const lock = nodeLockDir();
  await acquireLock(lock, {
    timeoutMs,
    pollMs: 1000,
    waiting: (owner) => {
      log(`testenv: waiting for another sandbox node on this machine (pid ${owner}) to stop…`);
    },
    stuck: (owner) =>
      new NodeError(`another sandbox node (pid ${owner}) has held ${lock} for too long`),
    stale: () => cleanHost(readCreated(lock)),
  });
}

/** Hands the lock to the process whose life is the node's (the namespace holder). */
export async function handNodeLock(pid: number): Promise<void> {
  const lock = nodeLockDir();
  await writeFile(join(lock, 'pid.new'), String(pid));
  await rename(join(lock, 'pid.new'), join(lock, 'pid'));
}

/**
 * After a node start that failed or was stopped: if this process still
 * holds the lock (the node never got as far as handing it on), cleans what
 * the start had created, then frees the lock.
 */
export async function abandonNodeLock(): Promise<void> {
  if (nodeLockOwner() === process.pid) await cleanHost(readCreated(nodeLockDir()));
  await releaseNodeLock();
}

export async function releaseNodeLock(): Promise<void> {
  const owner = nodeLockOwner();
  if (owner === process.pid || !pidAlive(owner)) {
    await rm(nodeLockDir(), { recursive: true, force: true });
  }
}

/** Host mount points the node created (so teardown removes exactly those). */
function readCreated(lock: string): string[] {
  try {
    return readFileSync(join(lock, 'created'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

// --- host preparation and cleaning

/** Every node cgroup dir, deepest first. */
export function nodeCgroupDirs(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e);
      try {
        if (statSync(p).isDirectory()) walk(p);
      } catch {
        // gone
      }
    }
    out.push(d);
  };
  for (const h of cgroupHierarchies()) {
    const root = join(h, NODE_CGROUP);
    if (existsSync(root)) walk(root);
  }
  return out;
}

/** Pids in any node cgroup. */
export function nodeCgroupPids(): number[] {
  const pids = new Set<number>();
  for (const d of nodeCgroupDirs()) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        if (l) pids.add(Number(l));
      }
    } catch {
      // gone
    }
  }
  return [...pids];
}

/**
 * Kills every process in the node cgroups, removes the cgroups bottom-up and
 * the host mount points the node created. Safe to repeat.
 */
export async function cleanHost(created: readonly string[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pids = nodeCgroupPids().filter((p) => p !== process.pid);
    if (pids.length === 0) break;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (Date.now() > deadline) {
      throw new NodeError(`processes ${pids.join(' ')} in the node cgroups would not die`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  for (;;) {
    const dirs = nodeCgroupDirs();
    if (dirs.length === 0) break;
    let failed = '';
    for (const d of dirs) {
      try {
        await rmdir(d);
      } catch (e) {
        failed = `${d}: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    if (Date.now() > deadline) throw new NodeError(`could not remove cgroup ${failed}`);
    if (failed) await new Promise((r) => setTimeout(r, 100));
  }
  for (const p of created) {
    // Empty on the host: everything went into the sandbox dir mounted over it.
    await rmdir(p).catch(() => undefined);
  }
}

/** Creates the node cgroup (and its `daemons` child) in every hierarchy. */
export async function createCgroups(hierarchies: readonly string[]): Promise<string[]> {
  const procsFiles: string[] = [];
  for (const h of hierarchies) {
    for (const rel of [NODE_CGROUP, join(NODE_CGROUP, 'daemons')]) {
      const d = join(h, rel);
      await mkdir(d, { recursive: true });
      // A new cpuset starts empty and takes no process until it is given cpus and mems.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const parent = join(d, '..', f);
        if (existsSync(parent)) {
          await writeFile(join(d, f), (await readFile(parent, 'utf8')).trim() || '\n');
        }
      }
    }
    procsFiles.push(join(h, NODE_CGROUP, 'daemons', 'cgroup.procs'));
  }
  return procsFiles;
}

/** Creates the missing hard-coded host paths, recording them in the lock first. */
export async function createMountPoints(): Promise<string[]> {
  const created: string[] = [];
  for (const p of HARD_CODED_PATHS) {
    if (existsSync(p)) continue;
    created.push(p);
    await writeFile(join(nodeLockDir(), 'created'), `${created.join('\n')}\n`);
    await mkdir(p);
  }
  return created;
}

// --- the API server's client certificate for the kubelet (exec, logs)

export interface KubeletClientPki {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** A CA the kubelet trusts, and a client certificate (group system:masters) the API server presents. */
export async function kubeletClientPki(dir: string): Promise<KubeletClientPki> {
  await mkdir(dir, { recursive: true });
  return issueFromNewCa(dir, {
    caSubject: '/CN=cloudtaser-sandbox-kubelet-client-ca',
    name: 'client',
    subject: '/O=system:masters/CN=kube-apiserver-kubelet-client',
    extension: 'extendedKeyUsage=clientAuth',
  });
}

// --- start and stop

/** What a started node recorded for its teardown (also read by the watchdog's script). */
export interface NodeState {
  name: string;
  containerdSock: string;
  holder: number;
  containerd: number;
  kubelet: number;
  scheduler: number;
  created: string[];
  images: { pause: string; busybox: string; init: string };
  toleration: NodeToleration;
}

export interface NodeStartContext {
  dir: string;
  log: Log;
  kubeconfig: string;
  apiServer: string;
  ca: string;
  auth: Record<string, string>;
  binaries: NodeBinaries;
  clientPki: KubeletClientPki;
  /** The sandbox's registry (`127.0.0.1:PORT`, plain HTTP): the node's images are pushed there and pulled from it. */
  registry: string;
  freePort: () => Promise<number>;
  /** Starts a recorded process group (see sandbox.ts startProc). */
  start: (
    name: string,
    bin: string,
    args: string[],
  ) => { child: { pid?: number }; exited?: string };
  waitFor: (
    what: string,
    ok: () => Promise<boolean>,
    ms: number,
    exited?: () => string | undefined,
  ) => Promise<void>;
  httpGet: (path: string) => Promise<{ status: number; body: string }>;
}

export const NODE_NAME = '127.0.0.1';

const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The watchdog's part, in plain sh, sourced by the watchdog (so `$$` is the
 * watchdog). `take-lock.sh` runs as soon as the owner is gone: it takes the
 * node lock over from the dead starter or the namespace holder it is about
 * to kill, so no new node starts while it cleans. `cleanup.sh` then, only if
 * it still holds the lock, kills what is left in the node cgroups, removes
 * them bottom-up and the mount points the node created, and frees the lock.
 */
function watchdogScripts(
  holder: number,
  created: readonly string[],
): { takeLock: string; cleanup: string } {
  // Word-split on purpose below: cgroup mount points hold no spaces.
  const roots = cgroupHierarchies()
    .map((h) => join(h, NODE_CGROUP))
    .filter((r) => /^[\w/.,=-]+$/.test(r))
    .join(' ');
  const lock = sh(nodeLockDir());
  const pidFile = sh(join(nodeLockDir(), 'pid'));
  const takeLock = [
    `lockpid=$(cat ${pidFile} 2>/dev/null)`,
    `if [ -n "$lockpid" ] && { [ "$lockpid" = "${holder}" ] || [ "$lockpid" = "${process.pid}" ]; }; then`,
    `  echo $$ > ${sh(join(nodeLockDir(), 'pid.new'))} && mv -f ${sh(join(nodeLockDir(), 'pid.new'))} ${pidFile}`,
    'fi',
    '',
  ].join('\n');
  const cleanup = [
    // Someone else holds the lock: they cleaned up (or a new node runs).
    `[ "$(cat ${pidFile} 2>/dev/null)" = "$$" ] || return 0`,
    `roots="${roots}"`,
    'i=0',
    'while [ $i -lt 80 ]; do',
    '  p=$(find $roots -name cgroup.procs -exec cat {} + 2>/dev/null)',
    '  [ -z "$p" ] && break',
    '  kill -9 $p 2>/dev/null; sleep 0.25; i=$((i+1))',
    'done',
    'i=0',
    'while [ $i -lt 40 ]; do',
    '  left=""',
    '  for r in $roots; do [ -d "$r" ] && { find "$r" -depth -type d -exec rmdir {} + 2>/dev/null; [ -d "$r" ] && left=1; }; done',
    '  [ -z "$left" ] && break',
    '  sleep 0.25; i=$((i+1))',
    'done',
    ...created.map((p) => `rmdir ${sh(p)} 2>/dev/null`),
    `rm -rf ${lock}`,
    '',
  ].join('\n');
  return { takeLock, cleanup };
}

/** The command line that runs `argv` inside the node cgroup (and optionally the node's mount namespace). */
function inNode(
  procsFiles: readonly string[],
  holder: number | undefined,
  argv: string[],
): [string, string[]] {
  const join1 = procsFiles.map((f) => `echo $$ > ${sh(f)}`).join(' && ');
  const enter = holder ? ['nsenter', `--mount=/proc/${holder}/ns/mnt`, '--'] : [];
  return ['sh', ['-c', `${join1} && exec "$@"`, 'sh', ...enter, ...argv]];
}

/**
 * Starts containerd, the kubelet and kube-scheduler against a running
 * control plane and waits for the node to be Ready. The caller has already
 * taken the node lock; on failure the caller runs stopNode.
 */
export async function startNode(c: NodeStartContext): Promise<NodeState> {
  const nodeDir = join(c.dir, 'node');
  await mkdir(nodeDir, { recursive: true });
  // The images first, while no node process exists: containerd pulls them
  // from the registry as a cluster's nodes would.
  const built = await buildNodeImages(await mkdtemp(join(nodeDir, 'images-')), {
    pause: c.binaries.pause,
    busybox: BUSYBOX,
    wrapper: c.binaries.wrapper,
  });
  const images = await pushNodeImages(c.registry, built);
  const hierarchies = cgroupHierarchies();
  await cleanHost([]);
  const procsFiles = await createCgroups(hierarchies);
  const created = await createMountPoints();
  // Written before any node process exists: the watchdog runs it if the owner dies.
  const partial: NodeState = {
    name: NODE_NAME,
    containerdSock: join(nodeDir, 'containerd.sock'),
    holder: 0,
    containerd: 0,
    kubelet: 0,
    scheduler: 0,
    created,
    images,
    toleration: NODE_TOLERATION,
  };
  const saveState = async (s: NodeState): Promise<void> => {
    const scripts = watchdogScripts(s.holder, s.created);
    await writeFile(join(nodeDir, 'take-lock.sh'), scripts.takeLock);
    await writeFile(join(nodeDir, 'cleanup.sh'), scripts.cleanup);
    await writeFile(join(nodeDir, 'state.json'), JSON.stringify(s, null, 2));
  };
  await saveState(partial);

  // Private mount namespace: sysctl stand-ins and the hard-coded host paths.
  const binds: [string, string][] = [];
  await mkdir(join(nodeDir, 'sysctl'), { recursive: true });
  for (const s of KUBELET_SYSCTLS) {
    const proc = `/proc/sys/${s}`;
    if (!existsSync(proc)) continue;
    const file = join(nodeDir, 'sysctl', s.replace(/\//g, '.'));
    await writeFile(file, await readFile(proc, 'utf8'));
    binds.push([file, proc]);
  }
  for (const p of HARD_CODED_PATHS) {
    const d = join(nodeDir, 'host', p.slice(1).replace(/\//g, '_'));
    await mkdir(d, { recursive: true });
    binds.push([d, p]);
  }
  const ready = join(nodeDir, 'ns-ready');
  const holderScript = [
    'set -e',
    ...binds.map(([from, to]) => `mount --bind ${sh(from)} ${sh(to)}`),
    `touch ${sh(ready)}`,
    'exec sleep infinity',
  ].join('\n');
  const [hBin, hArgs] = inNode(procsFiles, undefined, [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    holderScript,
  ]);
  const holder = c.start('node-namespace', hBin, hArgs);
  const holderPid = holder.child.pid ?? 0;
  partial.holder = holderPid;
  await saveState(partial);
  await c.waitFor(
    'node mount namespace',
    () => Promise.resolve(existsSync(ready)),
    20_000,
    () => holder.exited,
  );

  // --- containerd
  const cni = join(nodeDir, 'cni');
  await mkdir(cni, { recursive: true });
  await writeFile(
    join(cni, '10-loopback.conflist'),
    JSON.stringify({ cniVersion: '0.4.0', name: 'loopback', plugins: [{ type: 'loopback' }] }),
  );
  // Plain HTTP to the loopback registry, the way containerd 1.6 documents it
  // (a hosts.toml per registry host under the CRI's config_path).
  const certsDir = join(nodeDir, 'certs.d');
  await mkdir(join(certsDir, c.registry), { recursive: true });
  await writeFile(
    join(certsDir, c.registry, 'hosts.toml'),
    [
      `server = "http://${c.registry}"`,
      '',
      `[host."http://${c.registry}"]`,
      '  capabilities = ["pull", "resolve"]',
      '',
    ].join('\n'),
  );
  const cfg = join(nodeDir, 'containerd.toml');
  const q = (s: string): string => JSON.stringify(s);
  await writeFile(
    cfg,
    [
      'version = 2',
      `root = ${q(join(nodeDir, 'containerd', 'root'))}`,
      `state = ${q(join(nodeDir, 'containerd', 'state'))}`,
      // The opt plugin would create /opt/containerd on the host.
      'disabled_plugins = ["io.containerd.internal.v1.opt"]',
      '[grpc]',
      `  address = ${q(partial.containerdSock)}`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = ${q(images.pause)}`,
      // No CAP_SYS_RESOURCE here: without this every pod sandbox fails to start.
      '  restrict_oom_score_adj = true',
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '        SystemdCgroup = false',
      '  [plugins."io.containerd.grpc.v1.cri".registry]',
      `    config_path = ${q(certsDir)}`,
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      `    bin_dir = ${q(CNI_BIN_DIR)}`,
      `    conf_dir = ${q(cni)}`,
      '',
    ].join('\n'),
  );
  const [cBin, cArgs] = inNode(procsFiles, holderPid, ['containerd', '--config', cfg]);
  const containerd = c.start('containerd', cBin, cArgs);
  partial.containerd = containerd.child.pid ?? 0;
  await saveState(partial);
  const ctr = (args: string[], timeout = 30_000) =>
    exec('ctr', ['--address', partial.containerdSock, '-n', 'k8s.io', ...args], { timeout });
  await c.waitFor(
    'containerd',
    async () => {
      if (!existsSync(partial.containerdSock)) return false;
      try {
        await ctr(['version'], 5000);
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    () => containerd.exited,
  );

  // --- kubelet
  const kubeletPort = await c.freePort();
  const healthzPort = await c.freePort();
  const kcfg = join(nodeDir, 'kubelet.yaml');
  await writeFile(
    kcfg,
    JSON.stringify(
      {
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: '127.0.0.1',
        port: kubeletPort,
        healthzBindAddress: '127.0.0.1',
        healthzPort,
        readOnlyPort: 0,
        containerRuntimeEndpoint: `unix://${partial.containerdSock}`,
        imageServiceEndpoint: `unix://${partial.containerdSock}`,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: `/${NODE_CGROUP}`,
        failCgroupV1: false,
        failSwapOn: false,
        registerWithTaints: [NODE_TAINT],
        // The host's iptables stay untouched.
        makeIPTablesUtilChains: false,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: true },
          x509: { clientCAFile: c.clientPki.caFile },
        },
        authorization: { mode: 'Webhook' },
        evictionHard: {
          'memory.available': '1Mi',
          'nodefs.available': '1%',
          'nodefs.inodesFree': '1%',
          'imagefs.available': '1%',
        },
        imageGCHighThresholdPercent: 100,
        serializeImagePulls: false,
        resolvConf: '/etc/resolv.conf',
      },
      null,
      2,
    ),
  );
  const [kBin, kArgs] = inNode(procsFiles, holderPid, [
    c.binaries.kubelet,
    `--config=${kcfg}`,
    `--kubeconfig=${c.kubeconfig}`,
    `--hostname-override=${NODE_NAME}`,
    '--v=0',
  ]);
  const kubelet = c.start('kubelet', kBin, kArgs);
  partial.kubelet = kubelet.child.pid ?? 0;
  await saveState(partial);

  // --- kube-scheduler (a plain host process: nothing of it touches the host)
  const scheduler = c.start('kube-scheduler', c.binaries.kubeScheduler, [
    `--kubeconfig=${c.kubeconfig}`,
    `--authentication-kubeconfig=${c.kubeconfig}`,
    `--authorization-kubeconfig=${c.kubeconfig}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    '--secure-port=0',
    '--v=0',
  ]);
  partial.scheduler = scheduler.child.pid ?? 0;
  await saveState(partial);

  await c.waitFor(
    'node 127.0.0.1 Ready',
    async () => {
      const r = await c.httpGet(`/api/v1/nodes/${NODE_NAME}`);
      if (r.status !== 200) return false;
      const node = JSON.parse(r.body) as {
        status?: { conditions?: { type: string; status: string }[] };
      };
      return (node.status?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True');
    },
    120_000,
    () => kubelet.exited ?? containerd.exited ?? scheduler.exited,
  );
  await handNodeLock(holderPid);
  return partial;
}

export function readNodeState(dir: string): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'node', 'state.json'), 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

async function stopGroup(pid: number, graceMs: number): Promise<void> {
  if (!pid) return;
  const alive = (): boolean => {
    try {
      process.kill(-pid, 0);
      return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
    } catch {
      return false;
    }
  };
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/**
 * Stops the node of the sandbox in `dir`: the kubelet first (so it restarts
 * nothing), then every container through containerd, then containerd and
 * the scheduler, then whatever is left in the node cgroups; removes the
 * cgroups and created mount points and frees the machine-wide lock.
 */
export async function stopNode(dir: string, log: Log = () => undefined): Promise<void> {
  const s = readNodeState(dir);
  if (!s) return;
  await stopGroup(s.kubelet, 5000);
  if (s.containerd && existsSync(s.containerdSock)) {
    const ctr = (args: string[]) =>
      exec('ctr', ['--address', s.containerdSock, '-n', 'k8s.io', ...args], { timeout: 10_000 });
    try {
      const tasks = (await ctr(['tasks', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      for (const t of tasks)
        await ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', t]).catch(() => undefined);
      for (const t of tasks) await ctr(['tasks', 'delete', '-f', t]).catch(() => undefined);
      const containers = (await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      for (const k of containers) await ctr(['containers', 'delete', k]).catch(() => undefined);
    } catch (e) {
      log(
        `testenv: containerd did not list its containers (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); killing them by cgroup`,
      );
    }
  }
  await stopGroup(s.containerd, 5000);
  await stopGroup(s.scheduler, 5000);
  await stopGroup(s.holder, 1000);
  await cleanHost(s.created);
  if (nodeLockOwner() === s.holder || nodeLockOwner() === process.pid) {
    await rm(nodeLockDir(), { recursive: true, force: true });
  } else {
    await releaseNodeLock();
  }
}
