import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../cli/program.js';
import { captureContext } from '../../testing/context.js';
import { parsePrivateKey } from './keys.js';

const PLAN = `apiVersion: cloudtaser.io/v1
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
              password: DB_PASS
`;

async function setup(allowedOptions = '') {
  const dir = await mkdtemp(join(tmpdir(), 'ct-sign-'));
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await writeFile(join(dir, 'key.pem'), pem);
  const blob = parsePrivateKey(pem).public.blob.toString('base64');
  await writeFile(
    join(dir, 'allowed_signers'),
    `sec@example.com ${allowedOptions}ssh-ed25519 ${blob}\n`,
  );
  await writeFile(join(dir, 'plan.yaml'), PLAN);
  const cli = async (...argv: string[]) => {
    const ctx = captureContext({ cwd: dir });
    const code = await runCli(argv, ctx);
    return { code, out: ctx.out(), err: ctx.err() };
  };
  return { dir, cli };
}

const VERIFY = ['plan', 'verify', 'plan.yaml', '--allowed-signers', 'allowed_signers'];

describe('plan sign / verify', () => {
  it('trusts the copy of the signed content only when the signature covers it', async () => {
    const { dir, cli } = await setup();
    expect((await cli('plan', 'sign', 'plan.yaml', '--key', 'key.pem')).code).toBe(0);
    const sig = join(dir, 'plan.yaml.sig');
    const original = await readFile(sig, 'utf8');
    expect(original).toContain('"password": "DB_PASS"');
    // Someone rewrites the copy to hide an edit they then make to the plan.
    await writeFile(sig, original.replace('"password": "DB_PASS"', '"password": "DB_PASSWORD"'));
    expect((await cli(...VERIFY)).code).toBe(0);
    await writeFile(join(dir, 'plan.yaml'), PLAN.replace('DB_PASS', 'DB_PASSWORD'));
    const r = await cli(...VERIFY);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^error: plan\.yaml does not match its signature by sec@example\.com \(ED25519 key SHA256:\S+\), and neither does the copy of the signed content in plan\.yaml\.sig \(edited after signing\?\)\n$/,
    );
  });

  it('refuses a key whose allowed_signers line has expired, saying so', async () => {
    const { cli } = await setup('valid-before="20260101Z" ');
    expect((await cli('plan', 'sign', 'plan.yaml', '--key', 'key.pem')).code).toBe(0);
    const r = await cli(...VERIFY);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(
      /^error: plan\.yaml\.sig is signed with ED25519 key SHA256:\S+, which allowed_signers does not accept now: line 1: expired 2026-01-01T00:00:00\.000Z\n$/,
    );
  });

  it('says when there is no signature, or it is not one', async () => {
    const { dir, cli } = await setup();
    const none = await cli(...VERIFY);
    expect(none.code).toBe(2);
    expect(none.err).toBe(
      'error: plan.yaml is not signed: there is no plan.yaml.sig\n' +
        '  a reviewer signs it with: cloudtaser plan sign plan.yaml --key ~/.ssh/id_ed25519\n',
    );
    await writeFile(join(dir, 'plan.yaml.sig'), '-----BEGIN PGP SIGNATURE-----\n');
    const pgp = await cli(...VERIFY);
    expect(pgp.code).toBe(2);
    expect(pgp.err).toBe(
      'error: plan.yaml.sig is not a valid SSH signature: it does not start with -----BEGIN SSH SIGNATURE-----\n',
    );
    await writeFile(join(dir, 'allowed_signers'), 'sec@example.com ssh-ed25519 ???\n');
    const bad = await cli(...VERIFY);
    expect(bad.err).toBe('error: allowed_signers:1: the key is not base64\n');
    const noKey = await cli('plan', 'sign', 'plan.yaml', '--key', 'missing');
    expect(noKey.err).toBe('error: cannot read key missing: no such file\n');
    expect(noKey.code).toBe(2);
  });

  it('lists at most 20 changes and counts the rest', async () => {
    const { dir, cli } = await setup();
    const workloads = Array.from(
      { length: 25 },
      (_, i) => `      - kind: Deployment
        name: w${String(i).padStart(2, '0')}
        secrets:
          - source: k8s-secret/db
            vaultPath: secret/data/payments/db
            fields: {password: DB_PASS}
`,
    ).join('');
    const plan = `apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata: {name: many}
tenants:
  - name: payments
    namespace: payments
    workloads:
${workloads}`;
    await writeFile(join(dir, 'plan.yaml'), plan);
    expect((await cli('plan', 'sign', 'plan.yaml', '--key', 'key.pem')).code).toBe(0);
    await writeFile(join(dir, 'plan.yaml'), plan.replaceAll('payments/db', 'payments/db2'));
    const r = await cli(...VERIFY);
    expect(r.code).toBe(2);
    const lines = r.err.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 20 + 1 + 1);
    expect(lines[1]).toBe(
      '  tenant payments, Deployment w00, secret k8s-secret/db: vaultPath "secret/data/payments/db" -> "secret/data/payments/db2"',
    );
    expect(lines[21]).toBe('  … and 5 more');
  });

  it('prints the signed content, which holds no status', async () => {
    const { cli } = await setup();
    const r = await cli('plan', 'signed-content', 'plan.yaml');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      format: 'cloudtaser.io/signed-plan-content/v1',
      plan: { metadata: { name: 'migration-plan' } },
    });
    expect(r.out).not.toContain('status');
  });
});
