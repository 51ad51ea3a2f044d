// `npm run sandbox -- <up|down|status|build>`: the sandbox for a person.
// `up` leaves the servers running in the background (state in .sandbox/, or
// in $CLOUDTASER_SANDBOX_DIR), `down` stops them and removes their data.
import { relative } from 'node:path';
import { BuildError, ensureBinaries, KUBE_VERSION } from './build.js';
import { ensureNodeBinaries, NodeError } from './node.js';
import { personalSandboxDir, projectRoot } from './paths.js';
import { sandboxStatus, startSandbox, stopSandboxDir } from './sandbox.js';
import { haVaultFlag, upHaVault } from './ha-cli.js';

const log = (line: string): void => {
  console.error(line);
};

async function main(cmd: string | undefined, flags: readonly string[]): Promise<number> {
  const dir = personalSandboxDir();
  // The real node (kubelet, containerd, kube-scheduler; see README) comes up
  // with the rest unless `--no-node`; on a machine that cannot run containers
  // the sandbox says why in one line and runs without it. `--node` insists:
  // that machine then fails the command with that line.
  const node = flags.includes('--no-node') ? false : flags.includes('--node') ? true : 'auto';
  switch (cmd) {
    case 'build': {
      const bins: Record<string, string> = { ...(await ensureBinaries(log)) };
      if (node) {
        try {
          Object.assign(bins, await ensureNodeBinaries(log, KUBE_VERSION));
        } catch (e) {
          if (node !== 'auto' || !(e instanceof NodeError)) throw e;
          log(`${e.message} (built without the node's binaries)`);
        }
      }
      for (const [name, path] of Object.entries(bins)) console.log(`${name}\t${path}`);
      return 0;
    }
    case 'up': {
      const vault = haVaultFlag(flags);
      // A healthy sandbox already up is the one asked for; a broken one is replaced.
      const sb = await startSandbox({ log, dir, ownerPid: null, ifUp: 'reuse', node });
      // `--vault ha`: a three-node Raft OpenBao beside the dev server.
      if (vault === 'ha') await upHaVault(sb.info, log);
      if (sb.reused) {
        log(`sandbox already up; source ${relative(process.cwd(), sb.info.envFile)}`);
        return 0;
      }
      console.log(`API server: ${sb.info.apiServer}`);
      console.log(`OpenBao:    ${sb.info.baoAddr}`);
      console.log(`Registry:   ${sb.info.registry}`);
      if (sb.info.node) {
        console.log(
          `Node:       ${sb.info.node.name} (images ${Object.values(sb.info.node.images).join(', ')};` +
            ` pods need the toleration ${sb.info.node.toleration.key}:${sb.info.node.toleration.effect})`,
        );
      } else {
        console.log(`Node:       none${sb.info.nodeUnavailable ? ' (see above)' : ' (--no-node)'}`);
      }
      console.log(`Use it:     source ${relative(process.cwd(), sb.info.envFile)}`);
      console.log('Stop it:    npm run sandbox -- down');
      return 0;
    }
    case 'down': {
      const r = await stopSandboxDir(dir, log);
      if (r.hadState) {
        log(
          r.unrecorded > 0
            ? `sandbox stopped, and ${r.unrecorded} sandbox servers it had not recorded`
            : 'sandbox stopped',
        );
      } else if (r.recorded + r.unrecorded > 0) {
        log(
          `stopped ${r.recorded + r.unrecorded} sandbox servers left running without state ` +
            `(started for ${relative(process.cwd(), dir) || dir})`,
        );
      } else {
        log('sandbox is not up');
      }
      return 0;
    }
    case 'status': {
      const s = await sandboxStatus(dir);
      console.log(s.line);
      return s.state === 'up' ? 0 : 1;
    }
    default:
      console.error(
        'usage: npm run sandbox -- <up [--no-node|--node] [--vault dev|ha]|down|status|build [--no-node|--node]>',
      );
      return 2;
  }
}

process.chdir(projectRoot);
main(process.argv[2], process.argv.slice(3)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof BuildError || e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
