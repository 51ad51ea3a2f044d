// A three-node OpenBao cluster with integrated (Raft) storage on loopback:
// the shape production vaults have (one active node, standbys that forward,
// leader elections, sealed nodes after a restart), which the sandbox's
// dev-mode server never shows. Real `bao server` processes, each in its own
// process group with its own data dir, TLS on every listener (the sandbox's
// loopback certificate), joined by `retry_join`, initialised with Shamir
// keys that stay in this cluster's own dir, and Kubernetes auth configured
// against the sandbox's API server as the dev server has it.
//
// Nodes are killed and restarted only by the pid this module started them
// with; a restarted node keeps its data dir and comes back sealed until
// unseal() (or start()'s default) gives it the keys.
import { readFileSync } from 'node:fs';
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { freePort } from './net.js';
import { dirname, join } from 'node:path';
import { httpCall, waitFor, type HttpResponse } from './http.js';
import {
  configureKubernetesAuth,
  startProc,
  startWatchdog,
  type Proc,
  type SandboxInfo,
} from './sandbox.js';
import type { Log } from './build.js';

export const HA_NODES = 3;

/** What a test, the bench or a person needs to reach the cluster. */
export interface HaVaultInfo {
  dir: string;
  /** One https address per node, in node order. */
  addrs: string[];
  caFile: string;
  token: string;
  kubeAuthPath: string;
  /** Shamir unseal keys (threshold 2 of 3) and root token, mode 0600. */
  keysFile: string;
}

export interface HaVault {
  info: HaVaultInfo;
  /** The pid of node i's running server, if it runs. */
  pidOf(i: number): number | undefined;
  /** SIGKILL (or `sig`) to node i's server, by the pid it was started with; waits until it is gone. */
  kill(i: number, sig?: NodeJS.Signals): Promise<void>;
  /** Starts node i again on its data dir; unsealed unless `unseal: false` (it then stays sealed). */
  start(i: number, opts?: { unseal?: boolean }): Promise<void>;
  unseal(i: number): Promise<void>;
  /** Index of the active node, waiting (up to `timeoutMs`) until one is active and answers. */
  active(timeoutMs?: number): Promise<number>;
  /** Indexes of running, unsealed nodes that are not the active one. */
  standbys(): Promise<number[]>;
  stop(): Promise<void>;
}

interface NodeSpec {
  id: string;
  addr: string;
  config: string;
  proc?: Proc;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

/** Running and not a zombie (a killed server not yet reaped counts as gone). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Starts the cluster beside a running sandbox (its `bao` binary, its
 * loopback TLS certificate, its API server for Kubernetes auth). `ownerPid`
 * as in StartOptions: the cluster is torn down when that process dies;
 * `null` leaves it running (recorded in `pidsFile`, which `sandbox down`
 * reads).
 */
export async function startHaVault(o: {
  sandbox: SandboxInfo;
  dir: string;
  ownerPid: number | null;
  /** Where the servers' process groups are recorded; `dir/pids` by default. */
  pidsFile?: string;
  log?: Log;
}): Promise<HaVault> {
  const log = o.log ?? (() => undefined);
  const started = Date.now();
  const dir = o.dir;
  await mkdir(join(dir, 'logs'), { recursive: true });
  const pidsFile = o.pidsFile ?? join(dir, 'pids');
  if (!o.pidsFile) await writeFile(pidsFile, '');
  const guardPid = o.ownerPid ?? process.pid;
  // Until the cluster is up even a detached one is guarded (see sandbox.ts).
  const watchdog = o.pidsFile ? undefined : startWatchdog(guardPid, pidsFile, dir);

  const pkiDir = dirname(o.sandbox.baoCaFile);
  const caFile = o.sandbox.baoCaFile;
  const ca = await readFile(caFile, 'utf8');
  const certFile = join(pkiDir, 'tls.crt');
  const keyFile = join(pkiDir, 'tls.key');
  const used = new Set<number>();
  const ports: { api: number; cluster: number }[] = [];
  for (let i = 0; i < HA_NODES; i++) {
    ports.push({ api: await freePort(used), cluster: await freePort(used) });
  }
  const addrs = ports.map((p) => `https://127.0.0.1:${p.api}`);
  const nodes: NodeSpec[] = [];
  for (let i = 0; i < HA_NODES; i++) {
    const id = `node${i}`;
    const data = join(dir, id);
    await mkdir(data, { recursive: true });
    const config = join(dir, `${id}.hcl`);
    const port = ports[i] as { api: number; cluster: number };
    await writeFile(
      config,
      [
        'storage "raft" {',
        `  path = "${data}"`,
        `  node_id = "${id}"`,
        // Elections in about a second rather than five: the tests kill
        // the leader on purpose and wait for the next.
        '  performance_multiplier = 1',
        ...addrs.map((a) =>
          [
            '  retry_join {',
            `    leader_api_addr = "${a}"`,
            `    leader_ca_cert_file = "${caFile}"`,
            '  }',
          ].join('\n'),
        ),
        '}',
        'listener "tcp" {',
        `  address = "127.0.0.1:${port.api}"`,
        `  cluster_address = "127.0.0.1:${port.cluster}"`,
        `  tls_cert_file = "${certFile}"`,
        `  tls_key_file = "${keyFile}"`,
        '}',
        `api_addr = "${addrs[i] ?? ''}"`,
        `cluster_addr = "https://127.0.0.1:${port.cluster}"`,
        'disable_mlock = true',
        '',
      ].join('\n'),
    );
    nodes.push({ id, addr: addrs[i] ?? '', config });
  }

  const call = (
    i: number,
    path: string,
    opts: { method?: string; body?: unknown; token?: string } = {},
  ): Promise<HttpResponse> =>
    httpCall(`${addrs[i] ?? ''}/v1/${path}`, {
      ca,
      timeoutMs: 10_000,
      ...(opts.method ? { method: opts.method } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      ...(opts.token ? { headers: { 'x-vault-token': opts.token } } : {}),
    });

  const launch = async (i: number): Promise<void> => {
    const n = nodes[i] as NodeSpec;
    n.proc = startProc(
      `openbao-${n.id}`,
      o.sandbox.binaries.bao,
      ['server', `-config=${n.config}`, '-log-level=warn'],
      dir,
      pidsFile,
      guardPid,
    );
    const proc = n.proc;
    await waitFor(
      `OpenBao ${n.id}`,
      async () => (await call(i, 'sys/seal-status')).status === 200,
      60_000,
      () => proc.exited,
    );
  };

  const keysFile = join(dir, 'init.json');
  let keys: string[] = [];
  let token = '';

  const unseal = async (i: number): Promise<void> => {
    const n = nodes[i] as NodeSpec;
    await waitFor(
      `OpenBao ${n.id} unsealed`,
      async () => {
        const st = JSON.parse((await call(i, 'sys/seal-status')).body) as {
          sealed?: boolean;
          initialized?: boolean;
        };
        if (st.sealed === false) return true;
        // A joining node takes the keys once retry_join has reached the leader.
        for (const key of keys.slice(0, 2)) {
          const r = await call(i, 'sys/unseal', { method: 'POST', body: { key } });
          if (r.status === 200 && (JSON.parse(r.body) as { sealed?: boolean }).sealed === false) {
            return true;
          }
        }
        return false;
      },
      60_000,
      () => n.proc?.exited,
    );
  };

  const activeIndex = async (): Promise<number | undefined> => {
    for (let i = 0; i < HA_NODES; i++) {
      if (!nodes[i]?.proc || nodes[i]?.proc?.exited) continue;
      try {
        // sys/health: 200 active, 429 standby, 503 sealed, 501 not initialised.
        if ((await call(i, 'sys/health')).status === 200) return i;
      } catch {
        // down or starting
      }
    }
    return undefined;
  };

  const active = async (timeoutMs = 60_000): Promise<number> => {
    let found: number | undefined;
    await waitFor(
      'an active OpenBao node',
      async () => {
        found = await activeIndex();
        if (found === undefined) return false;
        return (await call(found, 'sys/mounts', { token })).status === 200;
      },
      timeoutMs,
    );
    return found as number;
  };

  const kill = async (i: number, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const n = nodes[i] as NodeSpec;
    const pid = n.proc?.child.pid;
    if (!pid || n.proc?.exited) return;
    try {
      // The server leads its own process group (startProc): the group is it.
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
    const deadline = Date.now() + 15_000;
    while (alive(pid) && Date.now() < deadline) await sleep(20);
    if (alive(pid)) throw new Error(`testenv: OpenBao ${n.id} (pid ${pid}) did not stop`);
  };

  const stopAll = async (): Promise<void> => {
    for (let i = 0; i < HA_NODES; i++) {
      await kill(i, 'SIGKILL').catch((e: unknown) => {
        log(e instanceof Error ? e.message : String(e));
      });
    }
    watchdog?.kill('SIGKILL');
  };

  try {
    await Promise.all(nodes.map((_, i) => launch(i)));
    const init = await call(0, 'sys/init', {
      method: 'POST',
      body: { secret_shares: 3, secret_threshold: 2 },
    });
    if (init.status !== 200) {
      throw new Error(`testenv: OpenBao init → ${init.status}: ${init.body.slice(0, 300)}`);
    }
    const parsed = JSON.parse(init.body) as { keys_base64: string[]; root_token: string };
    keys = parsed.keys_base64;
    token = parsed.root_token;
    await writeFile(keysFile, JSON.stringify(parsed, null, 2), { mode: 0o600 });
    await unseal(0);
    await active();
    await unseal(1);
    await unseal(2);
    // Every node a voter of the Raft configuration before anyone relies on failover.
    await waitFor(
      'three Raft voters',
      async () => {
        const r = await call(0, 'sys/storage/raft/configuration', { token });
        if (r.status !== 200) return false;
        const servers =
          (JSON.parse(r.body) as { data?: { config?: { servers?: { voter?: boolean }[] } } }).data
            ?.config?.servers ?? [];
        return servers.length === HA_NODES && servers.every((s) => s.voter === true);
      },
      60_000,
    );
    const kubeCa = await readFile(o.sandbox.caFile, 'utf8');
    await configureKubernetesAuth({
      apiServer: o.sandbox.apiServer,
      ca: kubeCa,
      auth: { authorization: `Bearer ${o.sandbox.adminToken}` },
      baoAddr: addrs[await active()] ?? '',
      baoToken: token,
      baoKubeAuthPath: o.sandbox.baoKubeAuthPath,
      baoCa: ca,
    });
    if (o.ownerPid === null) watchdog?.kill('SIGKILL');
    log(`testenv: three-node OpenBao (Raft) up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (e) {
    await stopAll();
    throw e;
  }

  return {
    info: {
      dir,
      addrs,
      caFile,
      token,
      kubeAuthPath: o.sandbox.baoKubeAuthPath,
      keysFile,
    },
    pidOf: (i) => {
      const p = nodes[i]?.proc;
      return p && !p.exited ? p.child.pid : undefined;
    },
    kill,
    start: async (i, opts = {}) => {
      await launch(i);
      if (opts.unseal !== false) await unseal(i);
    },
    unseal,
    active,
    standbys: async () => {
      const out: number[] = [];
      for (let i = 0; i < HA_NODES; i++) {
        if (!nodes[i]?.proc || nodes[i]?.proc?.exited) continue;
        try {
          if ((await call(i, 'sys/health')).status === 429) out.push(i);
        } catch {
          // down
        }
      }
      return out;
    },
    stop: stopAll,
  };
}
