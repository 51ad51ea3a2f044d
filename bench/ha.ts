// The bench's `ha` step: apply-plan (first run) and verify-plan against a
// three-node OpenBao Raft cluster (testenv/ha-vault.ts: TLS, one active node,
// two standbys, BAO_ADDR naming all three) beside the same two runs against
// one Raft node, each server started fresh for the step.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mapLimit } from '../src/core/concurrency.js';
import { startHaVault } from '../testenv/ha-vault.js';
import { httpCall } from '../testenv/http.js';
import type { SandboxInfo } from '../testenv/sandbox.js';
import { startRaftOpenBao } from './raft-openbao.js';

interface Timed {
  seconds: number;
  rssMb: number;
  code: number;
}

export async function haBenchRows(o: {
  sandbox: SandboxInfo;
  work: string;
  planText: string;
  cli: string;
  env: NodeJS.ProcessEnv;
  timed: (cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string) => Promise<Timed>;
  log: (line: string) => void;
  /** Runs before each first apply-plan, so both start from the same state. */
  before: () => Promise<void>;
}): Promise<string[][]> {
  const paths = [
    ...new Set([...o.planText.matchAll(/vaultPath: (secret\/data\/\S+)/g)].map((m) => m[1] ?? '')),
  ];
  const tenants = new Set([...o.planText.matchAll(/^ {2}- name: (\S+)/gm)].map((m) => m[1])).size;
  const runs = async (
    env: NodeJS.ProcessEnv,
    write: (path: string) => Promise<void>,
  ): Promise<{ apply: Timed; verify: Timed }> => {
    await o.before();
    const apply = await o.timed(
      process.execPath,
      [o.cli, 'source', 'apply-plan', 'plan.yaml'],
      env,
      o.work,
    );
    if (apply.code !== 0) throw new Error(`bench: apply-plan exited ${apply.code}`);
    await mapLimit(paths, 32, write);
    const verify = await o.timed(
      process.execPath,
      [o.cli, 'source', 'verify-plan', 'plan.yaml'],
      env,
      o.work,
    );
    if (verify.code !== 0) throw new Error(`bench: verify-plan exited ${verify.code}`);
    return { apply, verify };
  };
  const value = { data: { username: 'u', password: 'p' } };

  const raft = await startRaftOpenBao(
    o.sandbox.binaries.bao,
    join(o.work, `raft-ha-${Date.now()}`),
  );
  let one: { apply: Timed; verify: Timed };
  try {
    one = await runs({ ...o.env, BAO_ADDR: raft.addr, BAO_TOKEN: raft.token }, async (p) => {
      const r = await httpCall(`${raft.addr}/v1/${p}`, {
        method: 'POST',
        headers: { 'x-vault-token': raft.token },
        body: value,
        timeoutMs: 30_000,
      });
      if (r.status !== 200) throw new Error(`bench: write ${p} → ${r.status}`);
    });
  } finally {
    raft.stop();
  }

  const ha = await startHaVault({
    sandbox: o.sandbox,
    dir: join(o.work, `ha-${Date.now()}`),
    ownerPid: process.pid,
    log: o.log,
  });
  let three: { apply: Timed; verify: Timed };
  try {
    const ca = await readFile(ha.info.caFile, 'utf8');
    const active = ha.info.addrs[await ha.active()] ?? '';
    three = await runs(
      {
        ...o.env,
        BAO_ADDR: ha.info.addrs.join(','),
        BAO_CACERT: ha.info.caFile,
        BAO_TOKEN: ha.info.token,
      },
      async (p) => {
        const r = await httpCall(`${active}/v1/${p}`, {
          method: 'POST',
          headers: { 'x-vault-token': ha.info.token },
          body: value,
          ca,
          timeoutMs: 30_000,
        });
        if (r.status !== 200) throw new Error(`bench: write ${p} → ${r.status}`);
      },
    );
  } finally {
    await ha.stop();
  }
  o.log(
    `ha: apply ${one.apply.seconds.toFixed(2)} s → ${three.apply.seconds.toFixed(2)} s, verify ${one.verify.seconds.toFixed(2)} s → ${three.verify.seconds.toFixed(2)} s`,
  );
  const ratio = (a: Timed, b: Timed): string => `${(a.seconds / b.seconds).toFixed(2)}×`;
  return [
    [
      `apply-plan ${tenants} tenants, three Raft nodes (TLS)`,
      `${three.apply.seconds.toFixed(2)} s`,
      `one Raft node: ${one.apply.seconds.toFixed(2)} s`,
      ratio(three.apply, one.apply),
      '—',
    ],
    [
      `verify-plan ${paths.length} paths, three Raft nodes (TLS)`,
      `${three.verify.seconds.toFixed(2)} s`,
      `one Raft node: ${one.verify.seconds.toFixed(2)} s`,
      ratio(three.verify, one.verify),
      '—',
    ],
  ];
}
