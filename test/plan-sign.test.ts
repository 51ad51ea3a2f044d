// Signed plans: interoperability with the real ssh-keygen both ways, named
// changes, and --require-signature on apply-plan, import and protect against
// the sandbox's API server and OpenBao — including a protect run killed with
// SIGKILL and resumed, whose status updates must leave the signature valid.
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePlan } from '../src/plan/read.js';
import { ensureDebianPackages } from '../testenv/node.js';
import { projectRoot } from '../testenv/paths.js';
import { cli, cliProcess, sandboxEnv, tempDir } from './helpers/cli.js';
import { bao, kubeConfig, uniqueName } from './helpers/sandbox.js';

const run = promisify(execFile);
const VAULT = 'https://vault.eu.example.com';

beforeAll(async () => {
  // ssh-keygen is the other side of every interoperability check.
  await ensureDebianPackages(['openssh-client'], (l) => {
    console.log(l);
  });
}, 600_000);

/** `ssh-keygen` with stdin, as a person runs it; resolves its exit code and output. */
function sshKeygen(
  args: string[],
  input: Buffer | string = '',
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh-keygen', args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** A key pair made by ssh-keygen (OpenSSH private key format) and an allowed_signers line for it. */
async function keyPair(
  dir: string,
  name: string,
  type: string[],
  principal: string,
): Promise<{ key: string; line: string }> {
  const key = join(dir, name);
  await run('ssh-keygen', ['-q', ...type, '-N', '', '-C', principal, '-f', key]);
  const pub = (await readFile(`${key}.pub`, 'utf8')).trim().split(' ');
  return { key, line: `${principal} ${pub[0] ?? ''} ${pub[1] ?? ''}` };
}

const PLAN = `# reviewed: SEC-42
apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata:
  name: migration-plan
tenants:
  - name: payments
    namespace: payments
    workloads:
      - kind: Deployment
        name: payment-api
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            fields:
              username: DB_USER
              password: DB_PASS
        status: pending
      - kind: Deployment
        name: ledger
        secrets:
          - source: k8s-secret/ledger
            vaultPath: secret/data/payments/ledger
            fields:
              token: LEDGER_TOKEN
        status: pending
`;

describe('plan sign / plan verify with ssh-keygen', () => {
  it.each([
    ['ed25519', ['-t', 'ed25519']],
    ['rsa', ['-t', 'rsa', '-b', '3072']],
    ['ecdsa p256', ['-t', 'ecdsa', '-b', '256']],
    ['ecdsa p384', ['-t', 'ecdsa', '-b', '384']],
    ['ecdsa p521', ['-t', 'ecdsa', '-b', '521']],
  ])(
    '%s: ssh-keygen verifies what plan sign signed, and plan verify what ssh-keygen signed',
    async (_name, type) => {
      const dir = await tempDir();
      await writeFile(join(dir, 'plan.yaml'), PLAN);
      const { key, line } = await keyPair(dir, 'id', type, 'security@example.com');
      await writeFile(join(dir, 'allowed_signers'), `${line}\n`);

      const signed = await cli(['plan', 'sign', 'plan.yaml', '--key', key], { cwd: dir });
      expect(signed.stderr).toBe('');
      expect(signed.code).toBe(0);
      expect(signed.stdout).toMatch(
        /^plan\.yaml\.sig: signed plan\.yaml \(1 tenant\(s\), 2 workload\(s\)\) with (ED25519|RSA|ECDSA) key SHA256:\S+, namespace cloudtaser-plan\n$/,
      );
      const content = await cli(['plan', 'signed-content', 'plan.yaml'], { cwd: dir });
      expect(content.code).toBe(0);
      // ssh-keygen accepts cloudtaser's .sig as it is, copy of the content included.
      const theirs = await sshKeygen(
        [
          '-Y',
          'verify',
          '-f',
          'allowed_signers',
          '-I',
          'security@example.com',
          '-n',
          'cloudtaser-plan',
          '-s',
          'plan.yaml.sig',
        ],
        content.stdout,
        dir,
      );
      expect(theirs.stdout + theirs.stderr).toContain(
        'Good "cloudtaser-plan" signature for security@example.com',
      );
      expect(theirs.code).toBe(0);
      // And refuses it for other bytes: the signature is over the content, not the file.
      const notTheFile = await sshKeygen(
        ['-Y', 'verify', '-f', 'allowed_signers', '-I', 'security@example.com'].concat([
          '-n',
          'cloudtaser-plan',
          '-s',
          'plan.yaml.sig',
        ]),
        PLAN,
        dir,
      );
      expect(notTheFile.code).not.toBe(0);

      // The other way round: ssh-keygen signs the signed content; plan verify accepts it.
      const byKeygen = await sshKeygen(
        ['-Y', 'sign', '-n', 'cloudtaser-plan', '-f', key],
        content.stdout,
        dir,
      );
      expect(byKeygen.code).toBe(0);
      await writeFile(join(dir, 'plan.yaml.sig'), byKeygen.stdout);
      const ok = await cli(
        ['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'],
        {
          cwd: dir,
        },
      );
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toMatch(
        /^plan\.yaml: good signature by security@example\.com \((ED25519|RSA|ECDSA) key SHA256:\S+\); workload status is not covered\n$/,
      );
      expect(ok.code).toBe(0);
      // Without cloudtaser's copy of the content a change is caught but cannot be named.
      await writeFile(join(dir, 'plan.yaml'), PLAN.replace('DB_PASS', 'DB_PASSWORD'));
      const changed = await cli(
        ['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'],
        { cwd: dir },
      );
      expect(changed.code).toBe(2);
      expect(changed.stderr).toContain(
        'plan.yaml does not match its signature by security@example.com',
      );
      expect(changed.stderr).toContain('so what changed cannot be named');
    },
  );

  it('names what changed: one vault path, one env name, one workload', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'plan.yaml'), PLAN);
    const { key, line } = await keyPair(dir, 'id', ['-t', 'ed25519'], 'security@example.com');
    await writeFile(join(dir, 'allowed_signers'), `${line}\n`);
    expect((await cli(['plan', 'sign', 'plan.yaml', '--key', key], { cwd: dir })).code).toBe(0);
    const verify = () =>
      cliProcess(['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'], {
        cwd: dir,
        env: {},
      });
    const cases: [string, string, string[]][] = [
      [
        'secret/data/payments/ledger',
        'secret/data/payments/ledger-v2',
        [
          '  tenant payments, Deployment ledger, secret k8s-secret/ledger: vaultPath "secret/data/payments/ledger" -> "secret/data/payments/ledger-v2"',
        ],
      ],
      [
        'password: DB_PASS',
        'password: DB_PASSWORD',
        [
          '  tenant payments, Deployment payment-api, secret k8s-secret/db-credentials: fields.password "DB_PASS" -> "DB_PASSWORD"',
        ],
      ],
      [
        'name: ledger',
        'name: ledger-admin',
        [
          '  tenant payments: Deployment ledger removed',
          '  tenant payments: Deployment ledger-admin added',
        ],
      ],
    ];
    for (const [from, to, lines] of cases) {
      await writeFile(join(dir, 'plan.yaml'), PLAN.replace(from, to));
      const r = await verify();
      expect(r.code, to).toBe(2);
      const err = r.stderr.split('\n');
      expect(err[0]).toMatch(
        /^error: plan\.yaml changed since security@example\.com \(ED25519 key SHA256:\S+\) signed it:$/,
      );
      expect(err.slice(1, 1 + lines.length)).toEqual(lines);
      expect(err[1 + lines.length]).toBe(
        '  review the change, then sign again: cloudtaser plan sign plan.yaml --key KEY',
      );
      expect(r.stdout).toBe('');
    }
    // Edits that are not reviewed content keep it valid: comments, layout, statuses.
    await writeFile(
      join(dir, 'plan.yaml'),
      `# approved 2026-04-01\n${PLAN.replace(/status: pending/g, 'status: migrated')
        .replace(
          '              username: DB_USER\n              password: DB_PASS\n',
          '              {password: DB_PASS, username: "DB_USER"}\n',
        )
        .replace('fields:\n              {', 'fields: {')}`,
    );
    const same = await verify();
    expect(same.stderr).toBe('');
    expect(same.code).toBe(0);
  });

  it('refuses a key the allowed signers do not list, another namespace, and an encrypted key', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'plan.yaml'), PLAN);
    const alice = await keyPair(dir, 'alice', ['-t', 'ed25519'], 'alice@example.com');
    const mallory = await keyPair(dir, 'mallory', ['-t', 'ed25519'], 'mallory@example.com');
    await writeFile(join(dir, 'allowed_signers'), `${alice.line}\n`);
    await cli(['plan', 'sign', 'plan.yaml', '--key', mallory.key], { cwd: dir });
    const r = await cli(['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'], {
      cwd: dir,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: plan\.yaml\.sig is signed with ED25519 key SHA256:\S+, which allowed_signers does not list\n$/,
    );

    // ssh-keygen run on the file itself: refused, saying what to sign instead.
    await writeFile(join(dir, 'allowed_signers'), `${alice.line}\n`);
    const onFile = await sshKeygen(
      ['-Y', 'sign', '-n', 'cloudtaser-plan', '-f', alice.key],
      PLAN,
      dir,
    );
    await writeFile(join(dir, 'plan.yaml.sig'), onFile.stdout);
    const fileBytes = await cli(
      ['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'],
      { cwd: dir },
    );
    expect(fileBytes.code).toBe(2);
    expect(fileBytes.stderr).toBe(
      'error: plan.yaml.sig signs the bytes of plan.yaml itself, not its signed content\n' +
        '  sign the content instead: cloudtaser plan signed-content plan.yaml | ssh-keygen -Y sign -n cloudtaser-plan -f KEY > plan.yaml.sig\n',
    );

    // A git commit signature by an allowed key is not a plan signature.
    const content = await cli(['plan', 'signed-content', 'plan.yaml'], { cwd: dir });
    const git = await sshKeygen(['-Y', 'sign', '-n', 'git', '-f', alice.key], content.stdout, dir);
    await writeFile(join(dir, 'plan.yaml.sig'), git.stdout);
    const ns = await cli(['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'], {
      cwd: dir,
    });
    expect(ns.code).toBe(2);
    expect(ns.stderr).toContain('plan.yaml.sig was made for namespace "git", not cloudtaser-plan');

    await run('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      'secret-pass',
      '-f',
      join(dir, 'locked'),
    ]);
    const enc = await cli(['plan', 'sign', 'plan.yaml', '--key', 'locked'], { cwd: dir });
    expect(enc.code).toBe(2);
    expect(enc.stderr).toBe(
      'error: key locked: the key is passphrase-protected; cloudtaser reads only unencrypted private keys\n' +
        '  sign with ssh-keygen instead (it asks for the passphrase or uses ssh-agent): cloudtaser plan signed-content plan.yaml | ssh-keygen -Y sign -n cloudtaser-plan -f locked > plan.yaml.sig\n',
    );
  });
});

function clients() {
  const kc = kubeConfig();
  return { apps: kc.makeApiClient(AppsV1Api), core: kc.makeApiClient(CoreV1Api) };
}

/** A namespace with a Secret and `count` Deployments reading it, and a discovered plan of it. */
async function discovered(
  prefix: string,
  count: number,
): Promise<{ ns: string; dir: string; file: string }> {
  const { apps, core } = clients();
  const ns = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { username: 'u', password: 'p' } },
  });
  for (let i = 0; i < count; i++) {
    const name = `w${String(i).padStart(3, '0')}`;
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'app:1',
                  env: [
                    {
                      name: 'DB_PASS',
                      valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
                    },
                  ],
                },
              ],
            },
          },
        },
      },
    });
  }
  const dir = await tempDir();
  const r = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd: dir });
  expect(r.code).toBe(0);
  return { ns, dir, file: join(dir, 'plan.yaml') };
}

async function annotated(ns: string): Promise<number> {
  const { apps } = clients();
  const list = await apps.listNamespacedDeployment({ namespace: ns });
  return list.items.filter(
    (d) => d.spec?.template.metadata?.annotations?.['cloudtaser.io/inject'] === 'true',
  ).length;
}

async function statuses(file: string): Promise<string[]> {
  const { plan } = parsePlan(await readFile(file, 'utf8'), 'plan.yaml');
  return plan.tenants.flatMap((t) => t.workloads.map((w) => w.status));
}

describe('--require-signature', () => {
  it('stops apply-plan, import and protect on an unsigned plan, and on a changed one, before they change anything', async () => {
    const { ns, dir, file } = await discovered('sigreq', 1);
    const { key, line } = await keyPair(dir, 'id', ['-t', 'ed25519'], 'security@example.com');
    await writeFile(join(dir, 'allowed_signers'), `${line}\n`);
    const req = ['--require-signature', 'allowed_signers'];

    const apply = await cli(['source', 'apply-plan', 'plan.yaml', ...req], { cwd: dir });
    expect(apply.code).toBe(2);
    expect(apply.stderr).toContain('error: plan.yaml is not signed: there is no plan.yaml.sig');
    // Nothing was written to vault: the tenant's policy does not exist.
    expect((await bao('GET', `sys/policies/acl/${ns}-read`)).status).toBe(404);

    const imp = await cli(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes', ...req],
      { cwd: dir },
    );
    expect(imp.code).toBe(2);
    expect(imp.stderr).toContain('error: plan.yaml is not signed');
    expect((await bao('GET', `secret/data/${ns}/db`)).status).toBe(404);

    const protect = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes', ...req],
      { cwd: dir },
    );
    expect(protect.code).toBe(2);
    expect(protect.stderr).toContain('error: plan.yaml is not signed');
    expect(await annotated(ns)).toBe(0);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(await statuses(file)).toEqual(['pending']);

    // Signed, then one env name changed: refused, naming it.
    expect((await cli(['plan', 'sign', 'plan.yaml', '--key', key], { cwd: dir })).code).toBe(0);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('password: DB_PASS', 'password: DB_PASSWORD'));
    const changed = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes', ...req],
      { cwd: dir },
    );
    expect(changed.code).toBe(2);
    expect(changed.stderr).toContain(
      `  tenant ${ns}, Deployment w000, secret k8s-secret/db: fields.password "DB_PASS" -> "DB_PASSWORD"`,
    );
    expect(await annotated(ns)).toBe(0);

    // As signed: apply-plan and import go ahead, and say whose signature they checked.
    await writeFile(file, text);
    const good = await cli(['source', 'apply-plan', 'plan.yaml', ...req], { cwd: dir });
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(
      /^Signature: plan\.yaml signed by security@example\.com \(ED25519 key SHA256:\S+\)\n/,
    );
    expect((await bao('GET', `sys/policies/acl/${ns}-read`)).status).toBe(200);
    const imported = await cli(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes', ...req],
      { cwd: dir },
    );
    expect(imported.code).toBe(0);
    expect((await bao('GET', `secret/data/${ns}/db`)).status).toBe(200);
  });

  it('keeps a signed plan valid through protect status updates and a SIGKILL-resumed run', async () => {
    // Enough that the run is still going when its first status fold lands
    // (about a second in): 80 all finished within that second on a quiet machine.
    const count = 300;
    const { ns, dir, file } = await discovered('sigkill', count);
    const { key, line } = await keyPair(dir, 'id', ['-t', 'ed25519'], 'security@example.com');
    await writeFile(join(dir, 'allowed_signers'), `${line}\n`);
    expect((await cli(['plan', 'sign', 'plan.yaml', '--key', key], { cwd: dir })).code).toBe(0);
    const signedText = await readFile(file, 'utf8');
    const verify = () =>
      cliProcess(['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'], {
        cwd: dir,
        env: {},
      });
    const args = [
      join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
      'target',
      'protect',
      '--plan',
      'plan.yaml',
      '--vault-address',
      VAULT,
      '--yes',
      '--concurrency',
      '1',
      '--require-signature',
      'allowed_signers',
    ];
    // Killed once it has patched a few workloads and before it has patched all.
    const child = spawn(process.execPath, args, {
      cwd: dir,
      env: { PATH: process.env.PATH, ...sandboxEnv() },
      stdio: 'ignore',
    });
    const state = { exited: false };
    const done = new Promise<void>((resolve) =>
      child.on('exit', () => {
        state.exited = true;
        resolve();
      }),
    );
    // Killed once protect has written statuses into the plan file itself (it
    // folds its journal into the plan about once a second), so the plan
    // verified next carries the run's edits. Polled tightly: a run patches a
    // workload every few milliseconds.
    while (!state.exited && !(await readFile(file, 'utf8')).includes('status: migrated')) {
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await done;
    const partly = await annotated(ns);
    expect(partly).toBeGreaterThan(0);
    expect(partly).toBeLessThan(count);
    const midText = await readFile(file, 'utf8');
    expect(midText).not.toBe(signedText);
    expect(await statuses(file)).toContain('migrated');
    expect(await statuses(file)).toContain('pending');

    // The killed run's plan (statuses spliced in, some only in its journal) still verifies.
    const mid = await verify();
    expect(mid.stderr).toBe('');
    expect(mid.code).toBe(0);

    // The resumed run verifies the signature under its lock and finishes.
    const resumed = await cliProcess(args.slice(1), { cwd: dir });
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^Signature: plan\.yaml signed by security@example\.com /);
    expect(await annotated(ns)).toBe(count);
    const after = await readFile(file, 'utf8');
    expect(after).not.toBe(signedText);
    expect(await statuses(file)).toEqual(Array.from({ length: count }, () => 'migrated'));
    const final = await verify();
    expect(final.code).toBe(0);
    expect(final.stdout).toContain('plan.yaml: good signature by security@example.com');
  }, 180_000);
});
