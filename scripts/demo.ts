// `npm run demo`: the guide's Complete Example on the local sandbox, with the
// real CLI, kubectl and bao. Each command is printed before its output.
// Pass --keep to leave the sandbox running afterwards.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
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

  /**
   * Runs a command as a person would type it, echoing it first. `shown` is
   * what is printed: secrets appear there as "$BAO_TOKEN", never as values.
   */
  const sh = (shown: string, cmd: string, args: string[], input?: string): Promise<number> => {
    console.log(`\n${bold(`$ ${shown}`)}`);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        cwd: work,
        env,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'],
      });
      child.on('error', reject);
      child.on('close', (code) => {
        resolve(code ?? 1);
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  };
  const step = async (code: Promise<number>, allowed: number[] = [0]): Promise<void> => {
    const c = await code;
    if (!allowed.includes(c)) throw new Error(`the step above exited ${c}`);
  };
  const kubectl = (args: string[]): Promise<number> =>
    sh(`kubectl ${args.join(' ')}`, 'kubectl', args);
  const bao = (args: string[]): Promise<number> => sh(`bao ${args.join(' ')}`, 'bao', args);
  const cloudtaser = (args: string[], input?: string): Promise<number> =>
    sh(
      `cloudtaser ${args.map((a) => (a === sb.info.baoToken ? '"$BAO_TOKEN"' : a === sb.info.baoAddr ? '"$BAO_ADDR"' : a)).join(' ')}`,
      process.execPath,
      [cli, ...args],
      input,
    );
  const heading = (text: string): void => {
    console.log(bold(`\n# ${text}`));
  };
  const addr = sb.info.baoAddr;
  const token = sb.info.baoToken;

  try {
    heading('0. A cluster whose workloads read native Kubernetes Secrets');
    console.log(`(local sandbox: API server ${sb.info.apiServer}, OpenBao ${addr} as $BAO_ADDR)`);
    await step(
      kubectl(['apply', '-f', join(projectRoot, 'examples', 'sandbox', 'workloads.yaml')]),
    );
    await step(kubectl(['get', 'deployments', '-A']));

    heading('1. Discover');
    await step(cloudtaser(['target', 'discover', '-o', 'plan.yaml']));

    heading('2. Review and edit the plan');
    await step(sh('cat plan.yaml', 'cat', ['plan.yaml']));
    const planFile = join(work, 'plan.yaml');
    await writeFile(
      planFile,
      (await readFile(planFile, 'utf8')).replace(
        'tenants:\n',
        '# Reviewed by the security team: paths and mappings approved.\ntenants:\n',
      ),
    );
    console.log('(a reviewer added a comment to the plan; cloudtaser keeps it from here on)');
    await step(cloudtaser(['plan', 'validate', 'plan.yaml']));

    heading('3. Apply vault structure (dry run first)');
    await step(
      cloudtaser([
        'source',
        'apply-plan',
        'plan.yaml',
        '--openbao-addr',
        addr,
        '--token',
        token,
        '--dry-run',
      ]),
    );
    await step(
      cloudtaser(['source', 'apply-plan', 'plan.yaml', '--openbao-addr', addr, '--token', token]),
    );

    heading('4. Populate secrets');
    await step(
      bao(['kv', 'put', 'secret/payments/db-credentials', 'username=app', 'password=s3cret']),
    );
    await step(bao(['kv', 'put', 'secret/trading/api-key', 'key=ak-12345']));

    heading('5. Verify');
    await step(
      cloudtaser(['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr, '--token', token]),
    );

    heading('6. Migrate interactively (answers: y, y for each workload)');
    await step(
      cloudtaser(
        ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', addr, '--interactive'],
        'y\ny\ny\ny\n',
      ),
    );

    heading('7. Confirm');
    await step(cloudtaser(['target', 'status', '--plan', 'plan.yaml']));
    await step(cloudtaser(['target', 'validate', '--vault-address', addr]));
    await step(cloudtaser(['target', 'audit', '--vault-address', addr]));
    await step(
      kubectl([
        'get',
        'pod',
        '-l',
        'app=payment-api',
        '-n',
        'payments',
        '-o',
        'jsonpath={.items[*].spec.initContainers[*].name}',
      ]),
    );
    console.log('');
    await step(
      sh('grep -c "status: migrated" plan.yaml', 'grep', ['-c', 'status: migrated', 'plan.yaml']),
    );

    console.log(`\n${bold('demo finished')}: the plan is in ${work}/plan.yaml`);
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
