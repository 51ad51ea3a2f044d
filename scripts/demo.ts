// `npm run demo`: the guide's Complete Example on the local sandbox, with the
// real CLI, kubectl and bao. Each command is printed before its output.
// Pass --keep to leave the sandbox running afterwards.
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { personalSandboxDir, projectRoot } from '../testenv/paths.js';
import { startSandbox } from '../testenv/sandbox.js';

const keep = process.argv.includes('--keep');
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

async function main(): Promise<number> {
  const sb = await startSandbox({
    log: (l) => {
      console.error(l);
    },
    // A kept sandbox lives where `npm run sandbox -- down` finds it.
    ...(keep ? { dir: personalSandboxDir, ownerPid: null } : {}),
  });
  const work = await mkdtemp(join(tmpdir(), 'cloudtaser-demo-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: sb.info.kubeconfig,
    BAO_ADDR: sb.info.baoAddr,
    BAO_TOKEN: sb.info.baoToken,
    PATH: `${join(sb.info.binaries.kubectl, '..')}:${join(sb.info.binaries.bao, '..')}:${process.env.PATH ?? ''}`,
  };
  const cli = join(projectRoot, 'dist', 'bin', 'cloudtaser.js');

  /** Runs a command as a person would type it, echoing it first. */
  const sh = (display: string, cmd: string, args: string[]): Promise<number> => {
    console.log(`\n${bold(`$ ${display}`)}`);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { cwd: work, env, stdio: 'inherit' });
      child.on('error', reject);
      child.on('close', (code) => {
        resolve(code ?? 1);
      });
    });
  };
  const expectOk = async (p: Promise<number>): Promise<void> => {
    const code = await p;
    if (code !== 0) throw new Error(`the step above exited ${code}`);
  };
  const kubectl = (args: string[]): Promise<number> =>
    sh(`kubectl ${args.join(' ')}`, 'kubectl', args);
  const bao = (args: string[]): Promise<number> => sh(`bao ${args.join(' ')}`, 'bao', args);
  const cloudtaser = (args: string[]): Promise<number> =>
    sh(`cloudtaser ${args.join(' ')}`, process.execPath, [cli, ...args]);

  try {
    console.log(bold('\n# 0. A cluster with workloads that read native Kubernetes Secrets'));
    await expectOk(
      kubectl(['apply', '-f', join(projectRoot, 'examples', 'sandbox', 'workloads.yaml')]),
    );
    await expectOk(kubectl(['get', 'deploy', '-A']));
    await expectOk(bao(['status', '-format=table']));
    await expectOk(cloudtaser(['--version']));
    console.log(`\n${bold('demo finished')}`);
    if (keep) {
      console.log(`sandbox kept: source ${sb.info.envFile}; stop it with: npm run sandbox -- down`);
    }
    return 0;
  } finally {
    if (!keep) await sb.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
