// The three-node Raft OpenBao (testenv/ha-vault.ts) beside the global test
// sandbox, for the tests that need failover, standbys and sealed nodes. Each
// file that calls it gets a cluster of its own, torn down when the test
// process ends even if it is killed (the testenv watchdog).
import { readFile } from 'node:fs/promises';
import { startHaVault, type HaVault } from '../../testenv/ha-vault.js';
import { httpCall } from '../../testenv/http.js';
import { tempDir } from './cli.js';
import { sandbox } from './sandbox.js';

export async function startHaVaultForTest(): Promise<HaVault> {
  const dir = await tempDir('ct-ha-vault-');
  return startHaVault({
    sandbox: sandbox(),
    dir,
    ownerPid: process.pid,
    log: (line) => {
      console.error(line);
    },
  });
}

/**
 * Calls the cluster's API as root through its active node (assertions and
 * set-up only: a standby may answer reads from a replica that lags).
 */
export async function haBao(
  ha: HaVault,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const ca = await readFile(ha.info.caFile, 'utf8');
  const addr = ha.info.addrs[await ha.active()] ?? '';
  const r = await httpCall(`${addr}/v1/${path}`, {
    method,
    ca,
    headers: { 'x-vault-token': ha.info.token },
    ...(body === undefined ? {} : { body }),
    timeoutMs: 30_000,
  });
  return { status: r.status, json: r.body ? (JSON.parse(r.body) as unknown) : undefined };
}
