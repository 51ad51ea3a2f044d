// An OpenBao with integrated (Raft) storage, the backend production
// deployments use, for the apply-plan rows: the sandbox's dev server keeps
// everything in memory, where a write costs no more than a read. Started
// and initialised here with the sandbox's `bao` binary; bench only.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/helpers/net.js';
import { httpCall, waitFor } from '../testenv/http.js';

export interface RaftOpenBao {
  addr: string;
  token: string;
  stop(): void;
}

export async function startRaftOpenBao(bao: string, dir: string): Promise<RaftOpenBao> {
  const [port, clusterPort] = [await freePort(), await freePort()];
  const addr = `http://127.0.0.1:${port}`;
  await mkdir(join(dir, 'raft'), { recursive: true });
  const config = join(dir, 'config.hcl');
  await writeFile(
    config,
    [
      `storage "raft" {\n  path = "${join(dir, 'raft')}"\n  node_id = "bench"\n}`,
      `listener "tcp" {\n  address = "127.0.0.1:${port}"\n  cluster_address = "127.0.0.1:${clusterPort}"\n  tls_disable = true\n}`,
      `api_addr = "${addr}"`,
      `cluster_addr = "http://127.0.0.1:${clusterPort}"`,
      'disable_mlock = true',
      '',
    ].join('\n'),
  );
  const child = spawn(bao, ['server', `-config=${config}`, '-log-level=warn'], {
    stdio: 'ignore',
    detached: true,
  });
  let exited: string | undefined;
  child.on('exit', (code) => {
    exited = `code ${code ?? '-'}`;
  });
  child.unref();
  const stop = (): void => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGTERM');
    } catch {
      // gone
    }
  };
  try {
    await waitFor(
      'raft openbao',
      async () => (await httpCall(`${addr}/v1/sys/seal-status`)).status === 200,
      30_000,
      () => exited,
    );
    const init = await httpCall(`${addr}/v1/sys/init`, {
      method: 'POST',
      body: { secret_shares: 1, secret_threshold: 1 },
      timeoutMs: 60_000,
    });
    const { keys, root_token: token } = JSON.parse(init.body) as {
      keys: string[];
      root_token: string;
    };
    await httpCall(`${addr}/v1/sys/unseal`, {
      method: 'POST',
      body: { key: keys[0] },
      timeoutMs: 60_000,
    });
    // Writes are refused until this node has elected itself leader.
    await waitFor(
      'raft openbao leader',
      async () => {
        const r = await httpCall(`${addr}/v1/sys/leader`);
        return r.status === 200 && (JSON.parse(r.body) as { is_self?: boolean }).is_self === true;
      },
      30_000,
      () => exited,
    );
    await waitFor(
      'raft openbao active',
      async () => {
        const r = await httpCall(`${addr}/v1/sys/mounts`, { headers: { 'x-vault-token': token } });
        return r.status === 200;
      },
      30_000,
      () => exited,
    );
    return { addr, token, stop };
  } catch (e) {
    stop();
    throw e;
  }
}
