// Starts a real local control plane (etcd, kube-apiserver,
// kube-controller-manager) and an OpenBao dev server on free loopback ports,
// wires OpenBao's Kubernetes auth to that API server, and tears it all down.
//
// Every server runs in its own process group so one signal stops it and its
// children, and records that group in the state dir before it execs the
// server. A watchdog shell process outlives a killed parent (SIGKILL,
// crashed test runner) just long enough to stop the servers and remove the
// temporary directory, so no orphan survives its owner.
//
// A named state dir (the long-lived sandbox of `npm run sandbox -- up`) is
// shared state: one process at a time starts or stops servers in it, under a
// lock next to it, and a second starter never starts a second set of servers
// on top of a running one.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { freePort } from './net.js';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { ensureBinaries, KUBE_VERSION, type Binaries, type Log } from './build.js';
import { httpCall, waitFor } from './http.js';
import {
  apiServerArgs,
  etcdArgs,
  waitForApiServer,
  waitForEtcd,
  writeAdminKubeconfig,
  writeApiServerFiles,
} from './kube-control.js';
import { withLock } from './lock.js';
import { cacheRoot, defaultSandboxDir } from './paths.js';
import {
  abandonNodeLock,
  acquireNodeLock,
  checkNodeSupport,
  ensureNodeBinaries,
  ensureNodePackages,
  kubeletClientPki,
  startNode,
  stopNode,
  NodeError,
  type KubeletClientPki,
  type NodeBinaries,
  type NodeToleration,
} from './node.js';
import { registryConfig } from './images.js';
import { loopbackPki } from './pki.js';

/** Everything a test or a person needs to reach the sandbox. */
export interface SandboxInfo {
  dir: string;
  kubeconfig: string;
  apiServer: string;
  /** CA that signed the API server's serving certificate (PEM file). */
  caFile: string;
  adminToken: string;
  baoAddr: string;
  /**
   * The same OpenBao server on a second listener, over TLS (certificate for
   * 127.0.0.1 signed by baoCaFile): for tests of the pod-side path, which
   * refuses plain http.
   */
  baoTlsAddr: string;
  baoCaFile: string;
  baoToken: string;
  /** Kubernetes auth mount configured against the API server. */
  baoKubeAuthPath: string;
  /**
   * The sandbox's OCI registry, `127.0.0.1:PORT` (plain HTTP). A node pulls
   * its images from it; refs look like `127.0.0.1:PORT/cloudtaser/init:1`.
   */
  registry: string;
  envFile: string;
  binaries: Binaries;
  /** Process-group leaders, for `down` and for leak checks. */
  pids: number[];
  /** The real node, when the sandbox has one (see StartOptions.node). */
  node?: SandboxNode;
  /**
   * Why the sandbox has no node although one was wanted (`node: 'auto'` on a
   * machine that cannot run containers): the preflight's one line.
   */
  nodeUnavailable?: string;
}

/** A node (kubelet + containerd) registered as `name`, pulling its images from the sandbox registry. */
export interface SandboxNode {
  name: string;
  containerdSock: string;
  /** Image refs on the node: pause, the busybox app image, the cloudtaser-init image. */
  images: { pause: string; busybox: string; init: string };
  /**
   * The node is tainted so that only pods tolerating this run on it: the
   * placeholder workloads most tests create (images that do not exist) stay
   * Pending, as they would with no node at all.
   */
  toleration: NodeToleration;
  binaries: NodeBinaries;
}

export interface Sandbox {
  info: SandboxInfo;
  /** True when `dir` already held a healthy sandbox and it was handed back. */
  reused: boolean;
  /** Stops what this call started (nothing, for a reused sandbox). */
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: Log;
  /** Directory to hold state; a fresh temp dir when omitted. */
  dir?: string;
  /**
   * Watch this pid and tear everything down when it disappears. Defaults to
   * the current process; `null` leaves the sandbox running on its own (the
   * `sandbox up` command, stopped later with `sandbox down`).
   */
  ownerPid?: number | null;
  /**
   * When `dir` already has servers running: `reuse` hands back a healthy
   * sandbox (for callers that only need one) and replaces a broken one;
   * `refuse` (the default) throws SandboxInUseError and touches nothing.
   */
  ifUp?: 'reuse' | 'refuse';
  /** Fixed ports instead of free ones (tests take one on purpose). */
  ports?: { apiServer?: number };
  /**
   * A real node (containerd, runc, kubelet, kube-scheduler) so pods really
   * run. Needs root; installs its Debian packages when missing. One node per
   * machine: a second node start waits for the first to stop. `true`: a
   * machine that cannot run containers fails the start in one line; `'auto'`:
   * such a machine gets the sandbox without a node, that line is logged and
   * kept in `info.nodeUnavailable`. Default: no node.
   */
  node?: boolean | 'auto';
}

/** A second starter met a sandbox that is up: one line, what is up and how to stop it. */
export class SandboxInUseError extends Error {
  constructor(dir: string, what: string) {
    super(
      `testenv: a sandbox is already up in ${dir} (${what}); stop it with: ${downCommand(dir)}`,
    );
    this.name = 'SandboxInUseError';
  }
}

/** The command that stops the long-lived sandbox kept in `dir`. */
export function downCommand(dir: string): string {
  return resolve(dir) === defaultSandboxDir
    ? 'npm run sandbox -- down'
    : `CLOUDTASER_SANDBOX_DIR=${dir} npm run sandbox -- down`;
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => {
      resolve(false);
    });
    srv.listen(port, '127.0.0.1', () => {
      srv.close(() => {
        resolve(true);
      });
    });
  });
}

export interface Proc {
  name: string;
  child: ChildProcess;
  logFile: string;
  exited?: string;
}

/**
 * Starts a server in its own process group. A tiny shell records the group
 * in `pidsFile` first and only then execs the server (same pid), so there is
 * no moment in which a server runs unrecorded; it gives up instead if the
 * owner died in between, because the watchdog may already have read the file.
 */
export function startProc(
  name: string,
  bin: string,
  args: string[],
  dir: string,
  pidsFile: string,
  ownerPid: number,
): Proc {
  const logFile = join(dir, 'logs', `${name}.log`);
  const fd = openSync(logFile, 'a');
  const record = 'echo $$ >> "$0" && kill -0 "$1" 2>/dev/null || exit 1; shift; exec "$@"';
  const child = spawn('sh', ['-c', record, pidsFile, String(ownerPid), bin, ...args], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
  });
  closeSync(fd);
  const proc: Proc = { name, child, logFile };
  child.on('exit', (code, signal) => {
    proc.exited = `code ${code ?? '-'} signal ${signal ?? '-'} (log: ${logFile})`;
  });
  // The child must not keep the owner's event loop alive.
  child.unref();
  return proc;
}

/**
 * True while any non-zombie process is in the group. `kill(-pgid, 0)` alone
 * also counts zombies, which an init that reaps slowly can leave around for
 * seconds after the servers have really stopped.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  return listProcs(false).some((p) => p.pgid === pgid);
}

/** A live (non-zombie) process, as /proc shows it. */
interface ProcEntry {
  pid: number;
  pgid: number;
  argv: string[];
  exe: string;
  cwd: string;
}

const deleted = (p: string): string => p.replace(/ \(deleted\)$/, '');

/** Live processes; `detail` also reads each one's argv, exe and cwd. */
function listProcs(detail = true): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command: state, ppid, pgrp, ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' || rest[0] === 'X') continue;
      if (!detail) {
        out.push({ pid: Number(entry), pgid: Number(rest[2]), argv: [], exe: '', cwd: '' });
        continue;
      }
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      let exe = '';
      let cwd = '';
      try {
        exe = deleted(readlinkSync(`/proc/${entry}/exe`));
        cwd = deleted(readlinkSync(`/proc/${entry}/cwd`));
      } catch {
        // a kernel thread, or a process not ours to inspect
      }
      out.push({ pid: Number(entry), pgid: Number(rest[2]), argv, exe, cwd });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** The process names it (an argument holds a path inside it) or runs in it. */
function referencesDir(p: ProcEntry, dir: string): boolean {
  return (
    p.cwd === dir ||
    p.cwd.startsWith(`${dir}/`) ||
    p.argv.some((a) => a === dir || a.includes(`${dir}/`))
  );
}

const SERVER_NAMES = new Set([
  'kubelet',
  'kube-scheduler',
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'bao',
  'registry',
]);

/**
 * One of the sandbox's own cached server binaries (of any cached version).
 * kubectl is not a server: a person's `kubectl get -w` is left alone.
 */
function isSandboxServer(p: ProcEntry, known: readonly string[]): boolean {
  const root = `${cacheRoot()}/`;
  return [p.exe, p.argv[0] ?? ''].some(
    (path) => SERVER_NAMES.has(basename(path)) && (known.includes(path) || path.startsWith(root)),
  );
}

function readState(dir: string): SandboxInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as SandboxInfo;
  } catch {
    return undefined;
  }
}

/** Groups the state dir recorded: the finished sandbox's, and every started one. */
function recordedGroups(dir: string): number[] {
  const fromFile = (() => {
    try {
      return readFileSync(join(dir, 'pids'), 'utf8').split('\n').map(Number);
    } catch {
      return [];
    }
  })();
  return [...new Set([...(readState(dir)?.pids ?? []), ...fromFile])].filter((p) => p > 0);
}

/**
 * The live processes started for `dir`: members of a recorded group whose
 * leader still references the dir (a recycled pid does not), and any process
 * of the sandbox's own binaries that references the dir, recorded or not. On
 * a shared machine nothing else ever matches.
 */
function serversOf(
  dir: string,
  recorded: readonly number[],
  known: readonly string[],
): ProcEntry[] {
  const procs = listProcs();
  const groups = new Set(
    recorded.filter((g) => procs.some((p) => p.pid === g && referencesDir(p, dir))),
  );
  return procs.filter(
    (p) =>
      p.pid !== process.pid &&
      (groups.has(p.pgid) || (referencesDir(p, dir) && isSandboxServer(p, known))),
  );
}

function signal(p: ProcEntry, sig: NodeJS.Signals): void {
  try {
    // Our servers lead their own group; anything else gets the signal alone.
    if (p.pgid === p.pid) process.kill(-p.pid, sig);
    else process.kill(p.pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

/**
 * Stops every process started for `dir` (see serversOf): SIGTERM, then
 * SIGKILL after `graceMs` (the data is thrown away, and the API server has
 * been seen ignoring SIGTERM for 20 s), then waits until they are gone.
 * Returns how many were recorded and how many only `ps` found; throws if any
 * survive, so the caller keeps the dir.
 */
export async function stopServers(
  dir: string,
  known: readonly string[],
  started: readonly number[] = [],
  graceMs = 2_000,
): Promise<{ recorded: number; unrecorded: number }> {
  const recorded = [...new Set([...recordedGroups(dir), ...started])];
  const found = serversOf(dir, recorded, known);
  const leaders = found.filter((p) => p.pgid === p.pid || !found.some((q) => q.pid === p.pgid));
  const counted = {
    recorded: leaders.filter((p) => recorded.includes(p.pgid)).length,
    unrecorded: leaders.filter((p) => !recorded.includes(p.pgid)).length,
  };
  if (found.length === 0) return counted;
  const alive = (): ProcEntry[] => {
    const now = new Set(listProcs(false).map((p) => p.pid));
    return found.filter((p) => now.has(p.pid));
  };
  for (const p of found) signal(p, 'SIGTERM');
  const termDeadline = Date.now() + graceMs;
  while (alive().length > 0 && Date.now() < termDeadline) await sleep(100);
  for (const p of alive()) signal(p, 'SIGKILL');
  const killDeadline = Date.now() + 10_000;
  while (alive().length > 0 && Date.now() < killDeadline) await sleep(100);
  const left = alive();
  if (left.length > 0) {
    throw new Error(
      `testenv: could not stop ${left.map((p) => `${basename(p.argv[0] ?? '?')} (pid ${p.pid})`).join(', ')}; kept ${dir}`,
    );
  }
  return counted;
}

/**
 * Removes a state dir, but only an empty one or one a sandbox start made
 * (every start writes `pids` first): never a mistyped $HOME.
 */
async function removeStateDir(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const entries = readdirSync(dir);
  if (entries.length > 0 && !entries.includes('pids') && !entries.includes('state.json')) {
    throw new Error(`testenv: ${dir} is not a sandbox state dir; not removing it`);
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Runs `fn` as the only process starting or stopping servers in `dir`. The
 * lock is a directory next to the state dir (the state dir itself comes and
 * goes), holding the owner's pid; a lock whose owner died is taken over.
 */
function withDirLock<T>(dir: string, log: Log, fn: () => Promise<T>): Promise<T> {
  const lock = `${dir}.lock`;
  return withLock(
    lock,
    {
      timeoutMs: 10 * 60_000,
      pollMs: 500,
      waiting: (owner) => {
        log(
          `testenv: waiting for pid ${owner}, which is starting or stopping the sandbox in ${dir}…`,
        );
      },
      stuck: (owner) =>
        new Error(`testenv: pid ${owner} has held ${lock} for over 10 min; is it stuck?`),
    },
    fn,
  );
}

/** What runs in a state dir, and whether it is a whole, answering sandbox. */
async function inspect(
  dir: string,
): Promise<{ info?: SandboxInfo; live: ProcEntry[]; healthy: boolean }> {
  const info = readState(dir);
  const known = info ? Object.values(info.binaries) : [];
  const live = serversOf(dir, recordedGroups(dir), known);
  let healthy = false;
  if (info && info.pids.length > 0 && info.pids.every((g) => live.some((p) => p.pgid === g))) {
    try {
      const ca = await readFile(info.caFile, 'utf8');
      const api = await httpCall(`${info.apiServer}/readyz`, {
        ca,
        headers: { authorization: `Bearer ${info.adminToken}` },
        timeoutMs: 3000,
      });
      const bao = await httpCall(`${info.baoAddr}/v1/sys/health`, { timeoutMs: 3000 });
      const registry = await httpCall(`http://${info.registry}/v2/`, { timeoutMs: 3000 });
      healthy = api.status === 200 && bao.status === 200 && registry.status === 200;
    } catch {
      healthy = false;
    }
  }
  return { info, live, healthy };
}

/** One line on what runs in a state dir, for messages. */
function describe(state: { info?: SandboxInfo; live: ProcEntry[]; healthy: boolean }): string {
  if (state.healthy && state.info) {
    const node = state.info.node
      ? `, node ${state.info.node.name}`
      : state.info.nodeUnavailable
        ? ', no node (this machine cannot run one)'
        : ', no node';
    return `API server ${state.info.apiServer}, OpenBao ${state.info.baoAddr}${node}`;
  }
  const names = [...new Set(state.live.map((p) => basename(p.argv[0] ?? '?')))].join(', ');
  return `not healthy; still running: ${names}`;
}

/**
 * The healthy sandbox kept in `dir`, for callers that use one without
 * starting it (`npm run bench -- --running`); one line if there is none.
 */
export async function runningSandbox(dir: string): Promise<SandboxInfo> {
  const state = await inspect(resolve(dir));
  if (state.healthy && state.info) return state.info;
  const up = `npm run sandbox -- up${resolve(dir) === defaultSandboxDir ? '' : ` (with CLOUDTASER_SANDBOX_DIR=${dir})`}`;
  throw new Error(
    state.live.length > 0
      ? `testenv: the sandbox in ${dir} is ${describe(state)}; stop it with ${downCommand(dir)}, then ${up}`
      : `testenv: no sandbox is up in ${dir}; start one with ${up}`,
  );
}

/** Whether `dir` holds a healthy sandbox, a broken one, or nothing. */
export async function sandboxStatus(
  dir: string,
): Promise<{ state: 'up' | 'broken' | 'down'; line: string }> {
  const state = await inspect(resolve(dir));
  if (state.healthy) return { state: 'up', line: `up (${describe(state)})` };
  if (state.live.length > 0) return { state: 'broken', line: describe(state) };
  return { state: 'down', line: 'down' };
}

/**
 * `npm run sandbox -- down`: stops every server started for `dir` — those
 * its state recorded and, when the state is gone, those `ps` finds running
 * the sandbox's binaries for that dir — then removes the dir.
 */
export async function stopSandboxDir(
  dir: string,
  log: Log = () => undefined,
): Promise<{ hadState: boolean; recorded: number; unrecorded: number }> {
  const abs = resolve(dir);
  return withDirLock(abs, log, async () => {
    const info = readState(abs);
    // The node first: its containers go through containerd while it still runs.
    await stopNode(abs, log);
    const counts = await stopServers(abs, info ? Object.values(info.binaries) : []);
    await removeStateDir(abs);
    return { hadState: info !== undefined, ...counts };
  });
}

/**
 * A POSIX sh process, independent of Node, that outlives the owner: once the
 * owner is gone it stops every group listed in `pidsFile` (each server
 * records itself there before it starts, so a kill during start-up is
 * covered too), waits for them to go, and removes `dir`.
 */
export function startWatchdog(ownerPid: number, pidsFile: string, dir: string): ChildProcess {
  const script = [
    `while kill -0 ${ownerPid} 2>/dev/null; do sleep 0.5; done`,
    // A node's lock first, so no new node starts while this one is cleaned.
    `[ -f '${dir}/node/take-lock.sh' ] && . '${dir}/node/take-lock.sh'`,
    `groups=$(sed 's/^/-/' '${pidsFile}' 2>/dev/null)`,
    // True while any recorded group still has a process.
    `alive() { for g in $groups; do kill -0 $g 2>/dev/null && return 0; done; return 1; }`,
    `[ -n "$groups" ] && kill -TERM $groups 2>/dev/null`,
    `i=0; while [ $i -lt 4 ] && alive; do sleep 0.5; i=$((i+1)); done`,
    `[ -n "$groups" ] && kill -KILL $groups 2>/dev/null`,
    `i=0; while [ $i -lt 20 ] && alive; do sleep 0.5; i=$((i+1)); done`,
    // A node's containers, cgroups and mount points (see node.ts).
    `[ -f '${dir}/node/cleanup.sh' ] && . '${dir}/node/cleanup.sh'`,
    `rm -rf '${dir}'`,
  ].join('\n');
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

/**
 * Brings up the whole sandbox; throws (after stopping everything it started)
 * if any part fails. With `dir`, first takes that dir's lock and looks at
 * what already runs there (see StartOptions.ifUp).
 */
export async function startSandbox(opts: StartOptions = {}): Promise<Sandbox> {
  const log = opts.log ?? (() => undefined);
  // A node that cannot run here is known before anything is built or started.
  let nodeUnavailable: string | undefined;
  if (opts.node) {
    try {
      await checkNodeSupport();
    } catch (e) {
      if (opts.node !== 'auto' || !(e instanceof NodeError)) throw e;
      nodeUnavailable = e.message;
    }
  }
  const binaries = await ensureBinaries(log);
  let nodeBins: NodeBinaries | undefined;
  if (opts.node && nodeUnavailable === undefined) {
    try {
      await ensureNodePackages(log);
      nodeBins = await ensureNodeBinaries(log, KUBE_VERSION);
    } catch (e) {
      // Packages that cannot be installed here (no root, no apt): the same as no support.
      if (opts.node !== 'auto' || !(e instanceof NodeError)) throw e;
      nodeUnavailable = e.message;
    }
  }
  const startOpts = { ...opts, nodeUnavailable };
  if (opts.dir === undefined) {
    return startIn(
      await mkdtemp(join(tmpdir(), 'cloudtaser-sandbox-')),
      binaries,
      nodeBins,
      startOpts,
      log,
    );
  }
  const dir = resolve(opts.dir);
  return withDirLock(dir, log, async () => {
    const state = await inspect(dir);
    if (state.live.length > 0) {
      if (state.healthy && state.info && opts.ifUp === 'reuse') {
        // Without a node is what was asked for only if no node can run here.
        if (opts.node && !state.info.node && nodeUnavailable === undefined) {
          throw new SandboxInUseError(dir, `${describe(state)}, without a node`);
        }
        return { info: state.info, reused: true, stop: () => Promise.resolve() };
      }
      if (opts.ifUp !== 'reuse') throw new SandboxInUseError(dir, describe(state));
      // The owner command of this dir asked for a sandbox: replace the broken one.
      const { recorded, unrecorded } = await stopServers(dir, Object.values(binaries));
      log(
        `testenv: stopped ${recorded + unrecorded} servers of a broken sandbox in ${dir} ` +
          `(${describe(state)})`,
      );
    }
    // Leftovers of a sandbox that is gone (an etcd data dir, old certificates).
    await removeStateDir(dir);
    return startIn(dir, binaries, nodeBins, startOpts, log);
  });
}

async function startIn(
  dir: string,
  binaries: Binaries,
  nodeBins: NodeBinaries | undefined,
  opts: StartOptions & { nodeUnavailable?: string },
  log: Log,
): Promise<Sandbox> {
  const started = Date.now();
  // One line, once, and only for a sandbox that really starts: the control plane still comes up.
  if (opts.nodeUnavailable !== undefined) {
    log(`${opts.nodeUnavailable} (the sandbox runs without a node)`);
  }
  await mkdir(join(dir, 'logs'), { recursive: true });
  await mkdir(join(dir, 'pki'), { recursive: true });
  const procs: Proc[] = [];
  const pidsFile = join(dir, 'pids');
  await writeFile(pidsFile, '');
  // Guards start-up even for a detached sandbox: if this process dies before
  // the sandbox is up, nothing is left behind. A detached sandbox dismisses
  // it once up.
  const guardPid = opts.ownerPid ?? process.pid;
  const watchdog = startWatchdog(guardPid, pidsFile, dir);
  const start = (name: string, bin: string, args: string[]): Proc => {
    const proc = startProc(name, bin, args, dir, pidsFile, guardPid);
    procs.push(proc);
    return proc;
  };

  let nodeLocked = false;
  const cleanup = async (): Promise<void> => {
    if (nodeLocked) {
      await stopNode(dir, log);
      await abandonNodeLock();
    }
    // The children's own pids too: a shell that has not yet written its
    // record is still this process's child.
    const own = procs.map((p) => p.child.pid ?? 0).filter((p) => p > 0);
    await stopServers(dir, Object.values(binaries), own);
    await rm(dir, { recursive: true, force: true });
    watchdog.kill('SIGKILL');
  };

  try {
    const used = new Set<number>();
    const etcdPort = await freePort(used, true);
    const etcdPeer = await freePort(used, true);
    const apiPort = opts.ports?.apiServer ?? (await freePort(used, true));
    let baoPort = await freePort(used, true);
    while (!(await portIsFree(baoPort + 1))) baoPort = await freePort(used, true);
    const baoTlsPort = await freePort(used, true);
    const baoTlsClusterPort = await freePort(used, true);
    const registryPort = await freePort(used, true);

    const adminToken = randomBytes(24).toString('hex');
    const baoToken = `root-${randomBytes(16).toString('hex')}`;
    const files = await writeApiServerFiles(dir, adminToken);
    const { saKey } = files;

    // --- etcd
    const etcd = start('etcd', binaries.etcd, etcdArgs('sandbox', dir, etcdPort, etcdPeer));

    // --- OpenBao (independent of Kubernetes, so it boots in parallel)
    const baoAddr = `http://127.0.0.1:${baoPort}`;
    const baoTlsAddr = `https://127.0.0.1:${baoTlsPort}`;
    // A second, TLS listener on the same dev server: the dev flags set up the
    // plain one, and OpenBao merges the listeners of a -config file with them.
    const baoPki = join(dir, 'pki', 'openbao');
    await mkdir(baoPki, { recursive: true });
    const tls = await loopbackPki(baoPki);
    const baoCaFile = join(baoPki, 'ca.crt');
    const baoConfig = join(baoPki, 'tls-listener.hcl');
    await writeFile(
      baoConfig,
      [
        'listener "tcp" {',
        `  address = "127.0.0.1:${baoTlsPort}"`,
        `  cluster_address = "127.0.0.1:${baoTlsClusterPort}"`,
        `  tls_cert_file = "${tls.certFile}"`,
        `  tls_key_file = "${tls.keyFile}"`,
        '}',
        '',
      ].join('\n'),
    );
    const bao = start('openbao', binaries.bao, [
      'server',
      '-dev',
      `-dev-root-token-id=${baoToken}`,
      `-dev-listen-address=127.0.0.1:${baoPort}`,
      '-dev-no-store-token',
      `-config=${baoConfig}`,
      '-log-level=warn',
    ]);

    // --- the OCI registry (plain HTTP on loopback; its access log is logs/registry.log)
    const registry = `127.0.0.1:${registryPort}`;
    await mkdir(join(dir, 'registry'), { recursive: true });
    const registryYml = join(dir, 'registry', 'config.yml');
    await writeFile(
      registryYml,
      registryConfig({ host: registry, storage: join(dir, 'registry', 'data') }),
    );
    const registryProc = start('registry', binaries.registry, ['serve', registryYml]);

    await waitForEtcd(etcdPort, () => etcd.exited);

    // --- kube-apiserver
    const certDir = join(dir, 'pki', 'apiserver');
    // With a node, the API server reaches the kubelet (exec, logs) with a
    // client certificate the kubelet trusts.
    let clientPki: KubeletClientPki | undefined;
    const nodeFlags: string[] = [];
    if (nodeBins) {
      clientPki = await kubeletClientPki(join(dir, 'pki', 'kubelet-client'));
      nodeFlags.push(
        `--kubelet-client-certificate=${clientPki.certFile}`,
        `--kubelet-client-key=${clientPki.keyFile}`,
        '--kubelet-preferred-address-types=InternalIP',
      );
    }
    const apiServer = `https://127.0.0.1:${apiPort}`;
    const apiserver = start(
      'kube-apiserver',
      binaries.kubeApiserver,
      apiServerArgs({ etcdPort, apiPort, apiServer, certDir, files, extra: nodeFlags }),
    );
    const { caFile, ca } = await waitForApiServer(
      apiServer,
      certDir,
      adminToken,
      () => apiserver.exited,
    );
    const auth = { authorization: `Bearer ${adminToken}` };

    const kubeconfig = join(dir, 'kubeconfig');
    await writeAdminKubeconfig(kubeconfig, 'sandbox', apiServer, ca, adminToken);

    // --- kube-controller-manager (Deployments → ReplicaSets → Pods, service accounts, GC)
    const kcm = start('kube-controller-manager', binaries.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      `--root-ca-file=${caFile}`,
      `--service-account-private-key-file=${saKey}`,
      '--controllers=*',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
      '--kube-api-qps=500',
      '--kube-api-burst=1000',
      '--v=0',
    ]);

    await waitFor(
      'OpenBao',
      async () =>
        (await httpCall(`${baoAddr}/v1/sys/health`)).status === 200 &&
        (await httpCall(`${baoTlsAddr}/v1/sys/health`, { ca: tls.ca })).status === 200,
      60_000,
      () => bao.exited,
    );

    // The service-account controller creating `default` proves the
    // controller-manager is up and talking to the API server.
    await waitFor(
      'kube-controller-manager',
      async () =>
        (
          await httpCall(`${apiServer}/api/v1/namespaces/default/serviceaccounts/default`, {
            ca,
            headers: auth,
          })
        ).status === 200,
      120_000,
      () => kcm.exited,
    );

    await waitFor(
      'the registry',
      async () => (await httpCall(`http://${registry}/v2/`)).status === 200,
      30_000,
      () => registryProc.exited,
    );

    const baoKubeAuthPath = 'kubernetes';
    await configureKubernetesAuth({ apiServer, ca, auth, baoAddr, baoToken, baoKubeAuthPath });

    let node: SandboxNode | undefined;
    if (nodeBins && clientPki) {
      nodeLocked = true;
      await acquireNodeLock(log);
      const started = Date.now();
      const pki = clientPki;
      const bins = nodeBins;
      const s = await startNode({
        dir,
        log,
        kubeconfig,
        apiServer,
        ca,
        auth,
        binaries: bins,
        clientPki: pki,
        registry,
        freePort: () => freePort(used, true),
        start,
        waitFor,
        httpGet: (path) => httpCall(`${apiServer}${path}`, { ca, headers: auth }),
      });
      node = {
        name: s.name,
        containerdSock: s.containerdSock,
        images: s.images,
        toleration: s.toleration,
        binaries: bins,
      };
      log(`testenv: node ${s.name} Ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }

    const envFile = join(dir, 'env');
    const binDirs = [...new Set([dirname(binaries.kubectl), dirname(binaries.bao)])].join(':');
    await writeFile(
      envFile,
      [
        '# source this file to use the cloudtaser sandbox',
        `export KUBECONFIG='${kubeconfig}'`,
        `export BAO_ADDR='${baoAddr}'`,
        `export BAO_TOKEN='${baoToken}'`,
        `# the same server over TLS: BAO_ADDR='${baoTlsAddr}' BAO_CACERT='${baoCaFile}'`,
        `export PATH='${binDirs}':"$PATH"`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );

    const pids = procs.map((p) => p.child.pid ?? 0);
    if (opts.ownerPid === null) watchdog.kill('SIGKILL');
    const info: SandboxInfo = {
      dir,
      kubeconfig,
      apiServer,
      caFile,
      adminToken,
      baoAddr,
      baoTlsAddr,
      baoCaFile,
      baoToken,
      baoKubeAuthPath,
      registry,
      envFile,
      binaries,
      pids,
      ...(node ? { node } : {}),
      ...(opts.nodeUnavailable === undefined ? {} : { nodeUnavailable: opts.nodeUnavailable }),
    };
    await writeFile(join(dir, 'state.json'), JSON.stringify(info, null, 2), { mode: 0o600 });
    log(`testenv: sandbox up in ${((Date.now() - started) / 1000).toFixed(1)} s (${dir})`);
    return { info, reused: false, stop: cleanup };
  } catch (e) {
    // The start's own error is the one to report; a failed clean-up says
    // what it kept and why.
    await cleanup().catch((c: unknown) => {
      log(c instanceof Error ? c.message : String(c));
    });
    throw e;
  }
}

export async function configureKubernetesAuth(a: {
  apiServer: string;
  ca: string;
  auth: Record<string, string>;
  baoAddr: string;
  baoToken: string;
  baoKubeAuthPath: string;
  /** CA of an https baoAddr (the HA cluster). */
  baoCa?: string;
}): Promise<void> {
  const kube = async (method: string, path: string, body: unknown): Promise<string> => {
    const r = await httpCall(`${a.apiServer}${path}`, { method, ca: a.ca, headers: a.auth, body });
    if (r.status >= 300 && r.status !== 409) {
      throw new Error(`testenv: ${method} ${path} → ${r.status}: ${r.body.slice(0, 300)}`);
    }
    return r.body;
  };
  await kube('POST', '/api/v1/namespaces/kube-system/serviceaccounts', {
    metadata: { name: 'openbao-reviewer' },
  });
  await kube('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
    metadata: { name: 'openbao-reviewer-auth-delegator' },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'system:auth-delegator',
    },
    subjects: [{ kind: 'ServiceAccount', name: 'openbao-reviewer', namespace: 'kube-system' }],
  });
  const tr = JSON.parse(
    await kube('POST', '/api/v1/namespaces/kube-system/serviceaccounts/openbao-reviewer/token', {
      spec: { expirationSeconds: 7 * 24 * 3600 },
    }),
  ) as { status?: { token?: string } };
  const reviewerJwt = tr.status?.token;
  if (!reviewerJwt) throw new Error('testenv: TokenRequest for the reviewer returned no token');

  const bao = async (path: string, body: unknown): Promise<void> => {
    const r = await httpCall(`${a.baoAddr}/v1/${path}`, {
      method: 'POST',
      headers: { 'x-vault-token': a.baoToken },
      body,
      ...(a.baoCa ? { ca: a.baoCa } : {}),
    });
    if (r.status >= 300) throw new Error(`testenv: OpenBao ${path} → ${r.status}: ${r.body}`);
  };
  await bao(`sys/auth/${a.baoKubeAuthPath}`, { type: 'kubernetes' });
  await bao(`auth/${a.baoKubeAuthPath}/config`, {
    kubernetes_host: a.apiServer,
    kubernetes_ca_cert: a.ca,
    token_reviewer_jwt: reviewerJwt,
    disable_local_ca_jwt: true,
  });
}
