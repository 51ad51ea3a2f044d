// `npm run sandbox -- up --vault ha`: the three-node Raft OpenBao (see
// ha-vault.ts) beside the long-lived sandbox, for a person. It runs on its
// own once up; its servers are recorded with the sandbox's, so
// `npm run sandbox -- down` stops them too.
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { httpCall } from './http.js';
import { startHaVault, type HaVaultInfo } from './ha-vault.js';
import type { SandboxInfo } from './sandbox.js';
import type { Log } from './build.js';

/** `--vault dev` (the default) or `--vault ha`; anything else is refused. */
export function haVaultFlag(flags: readonly string[]): 'dev' | 'ha' {
  const i = flags.findIndex((f) => f === '--vault' || f.startsWith('--vault='));
  if (i < 0) return 'dev';
  const flag = flags[i] ?? '';
  const v = flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : flags[i + 1];
  if (v === 'dev' || v === 'ha') return v;
  throw new Error(`--vault must be dev or ha, not "${v ?? ''}"`);
}

async function running(info: HaVaultInfo): Promise<boolean> {
  const ca = readFileSync(info.caFile, 'utf8');
  for (const a of info.addrs) {
    try {
      if ((await httpCall(`${a}/v1/sys/health`, { ca, timeoutMs: 3000 })).status === 200)
        return true;
    } catch {
      // this node is down; another may be active
    }
  }
  return false;
}

export async function upHaVault(sb: SandboxInfo, log: Log): Promise<HaVaultInfo> {
  const dir = join(sb.dir, 'ha-vault');
  const stateFile = join(dir, 'state.json');
  if (existsSync(stateFile)) {
    const info = JSON.parse(readFileSync(stateFile, 'utf8')) as HaVaultInfo;
    if (await running(info)) {
      log(`three-node OpenBao already up (${info.addrs.join(', ')})`);
      return info;
    }
    throw new Error(
      `a three-node OpenBao was started in ${dir} but has no active node; stop the sandbox (npm run sandbox -- down) and start it again`,
    );
  }
  const ha = await startHaVault({
    sandbox: sb,
    dir,
    ownerPid: null,
    pidsFile: join(sb.dir, 'pids'),
    log,
  });
  await writeFile(stateFile, JSON.stringify(ha.info, null, 2), { mode: 0o600 });
  const envFile = join(sb.dir, 'env-ha');
  await writeFile(
    envFile,
    [
      '# source this file to use the three-node OpenBao (Raft) of the cloudtaser sandbox',
      `export KUBECONFIG='${sb.kubeconfig}'`,
      // One node for the bao CLI (a standby forwards); cloudtaser also takes
      // every node, comma-separated, and fails over between them.
      `export BAO_ADDR='${ha.info.addrs[0] ?? ''}'`,
      `export BAO_CACERT='${ha.info.caFile}'`,
      `export BAO_TOKEN='${ha.info.token}'`,
      `# cloudtaser with failover between the nodes: BAO_ADDR='${ha.info.addrs.join(',')}'`,
      `# unseal keys and root token: ${ha.info.keysFile}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  console.log(`OpenBao HA: ${ha.info.addrs.join(' ')} (Raft, TLS; CA ${ha.info.caFile})`);
  console.log(`Use it:     source ${relative(process.cwd(), envFile)}`);
  return ha.info;
}
