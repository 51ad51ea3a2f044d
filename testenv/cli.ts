// `npm run sandbox -- <up|down|status|build>`: the sandbox for a person.
// `up` leaves the servers running in the background (state in .sandbox/),
// `down` stops them and removes their data.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { BuildError, ensureBinaries } from './build.js';
import { personalSandboxDir, projectRoot } from './paths.js';
import { groupAlive, startSandbox, stopGroups, type SandboxInfo } from './sandbox.js';

const stateFile = join(personalSandboxDir, 'state.json');
const log = (line: string): void => {
  console.error(line);
};

async function readState(): Promise<SandboxInfo | undefined> {
  if (!existsSync(stateFile)) return undefined;
  return JSON.parse(await readFile(stateFile, 'utf8')) as SandboxInfo;
}

async function main(cmd: string | undefined): Promise<number> {
  switch (cmd) {
    case 'build': {
      const bins = await ensureBinaries(log);
      for (const [name, path] of Object.entries(bins)) console.log(`${name}\t${path}`);
      return 0;
    }
    case 'up': {
      const state = await readState();
      if (state?.pids.every(groupAlive)) {
        log(`sandbox already up; source ${relative(process.cwd(), state.envFile)}`);
        return 0;
      }
      if (state) await stopGroups(state.pids, state.dir);
      const sb = await startSandbox({ log, dir: personalSandboxDir, ownerPid: null });
      console.log(`API server: ${sb.info.apiServer}`);
      console.log(`OpenBao:    ${sb.info.baoAddr}`);
      console.log(`Use it:     source ${relative(process.cwd(), sb.info.envFile)}`);
      console.log('Stop it:    npm run sandbox -- down');
      return 0;
    }
    case 'down': {
      const state = await readState();
      if (!state) {
        log('sandbox is not up');
        return 0;
      }
      await stopGroups(state.pids, state.dir);
      log('sandbox stopped');
      return 0;
    }
    case 'status': {
      const state = await readState();
      const up = state?.pids.every(groupAlive) ?? false;
      console.log(up ? `up (${state?.apiServer ?? ''}, ${state?.baoAddr ?? ''})` : 'down');
      return up ? 0 : 1;
    }
    default:
      console.error('usage: npm run sandbox -- <up|down|status|build>');
      return 2;
  }
}

process.chdir(projectRoot);
main(process.argv[2]).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof BuildError || e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
