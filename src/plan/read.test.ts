// `plan validate` on bad input: every problem of a file in one run, and
// nothing that floods a terminal (binary files, huge files, control bytes).
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli/program.js';
import { captureContext } from '../testing/context.js';
import { parsePlan, PlanError } from './read.js';

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
        status: done
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            fields:
              username: DB_USER
          - source: k8s-secret/legacy
            vaultPath: secret/data/payments/legacy
            fields:
              user: DB_USER
`;

function issuesOf(text: string): string[] {
  try {
    parsePlan(text, 'plan.yaml');
  } catch (e) {
    if (e instanceof PlanError) return e.issues.map((i) => `${i.line}:${i.col}: ${i.message}`);
    throw e;
  }
  return [];
}

async function validate(
  content: string | Buffer,
): Promise<{ code: number; out: string; err: string; lines: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'ct-validate-'));
  await writeFile(join(dir, 'plan.yaml'), content);
  const ctx = captureContext({ cwd: dir });
  const code = await runCli(['plan', 'validate', 'plan.yaml'], ctx);
  const err = ctx.err();
  return { code, out: ctx.out(), err, lines: err.split('\n').filter((l) => l !== '') };
}

// Anything a terminal would act on: C0 controls but tab, DEL, C1 controls,
// and the Unicode line/paragraph separators and bidi overrides.
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\ufffd]/;

describe('plan validate reports every problem of a file at once', () => {
  it('reports an invalid status and an env var mapped twice in one run, each with its position', async () => {
    expect(issuesOf(PLAN)).toEqual([
      '11:17: tenants[0].workloads[0].status: status must be one of pending, migrated, skipped',
      '20:21: tenants[0].workloads[0].secrets[1].fields.user: env var DB_USER is already mapped from secret/data/payments/db-credentials:username in workload payment-api',
    ]);
    const run = await validate(PLAN);
    expect(run.code).toBe(2);
    expect(run.err).toContain('plan.yaml:11:17: tenants[0].workloads[0].status:');
    expect(run.err).toContain('plan.yaml:20:21: tenants[0].workloads[0].secrets[1].fields.user:');
  });

  it('reports duplicate workloads and tenants next to structural problems', () => {
    const text = PLAN.replace('status: done', 'status: pending\n        colour: blue').concat(
      `      - kind: Deployment
        name: payment-api
  - name: payments
    namespace: other
`,
    );
    expect(issuesOf(text)).toEqual([
      '12:9: unknown key "colour" in tenants[0].workloads[0]',
      '21:21: tenants[0].workloads[0].secrets[1].fields.user: env var DB_USER is already mapped from secret/data/payments/db-credentials:username in workload payment-api',
      '23:15: tenants[0].workloads[1].name: duplicate workload Deployment payments/payment-api (also in tenant "payments")',
      '24:11: tenants[1].name: duplicate tenant name "payments" (also tenant #1)',
    ]);
  });

  it('reports a duplicate YAML key together with the schema problems', () => {
    const text = PLAN.replace('name: migration-plan', 'name: migration-plan\n  name: again');
    const issues = issuesOf(text);
    expect(issues[0]).toMatch(/^5:3: invalid YAML: Map keys must be unique/);
    expect(issues.join('\n')).toMatch(/status must be one of/);
    expect(issues.join('\n')).toMatch(/env var DB_USER is already mapped/);
  });
});

describe('plan validate on binary or huge input', () => {
  it('says in one line that 2 MB of random bytes are not UTF-8 text', async () => {
    const run = await validate(randomBytes(2 * 1024 * 1024));
    expect(run.code).toBe(2);
    expect(run.lines.length).toBeLessThanOrEqual(40);
    // Whichever comes first in the random bytes: a NUL, or a byte that
    // cannot be UTF-8; both say plainly that the file is not text.
    expect(run.lines[0]).toMatch(
      /^error: plan\.yaml:\d+:\d+: not (UTF-8 text \(byte 0x[0-9a-f]{2}\)|a text file \(NUL byte\))/,
    );
    expect(run.err.length).toBeLessThan(1000);
    expect(run.err).not.toMatch(TERMINAL_CONTROL);
  });

  it('says what a UTF-16 file or a file with NUL bytes is', async () => {
    const utf16 = await validate(
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(PLAN, 'utf16le')]),
    );
    expect(utf16.code).toBe(2);
    expect(utf16.lines[0]).toMatch(/^error: plan\.yaml:1:1: not UTF-8 text: UTF-16/);
    const nul = await validate(
      Buffer.from('apiVersion: cloudtaser.io/v1\nkind: Migration\u0000Plan\n'),
    );
    expect(nul.code).toBe(2);
    expect(nul.lines[0]).toBe('error: plan.yaml:2:16: not a text file (NUL byte)');
  });

  it('caps the list, shortens long tokens and escapes control characters', async () => {
    const keys = Array.from(
      { length: 500 },
      (_, i) => `  "k${i}\\u001b[31m\\u0007${'x'.repeat(600)}": 1`,
    ).join('\n');
    const text = `apiVersion: cloudtaser.io/v1\nkind: MigrationPlan\nmetadata:\n  name: p\n${keys}\n`;
    const run = await validate(text);
    expect(run.code).toBe(2);
    expect(run.lines.length).toBeLessThanOrEqual(40);
    expect(run.err).toMatch(/and 4\d\d more problems \(500 in all\)/);
    expect(run.err).toContain('\\u001b[31m\\u0007');
    expect(run.err).not.toMatch(TERMINAL_CONTROL);
    for (const l of run.lines) expect(l.length).toBeLessThanOrEqual(300);
  }, 30_000);

  it('prints at most 40 short lines free of control characters for any text (property)', async () => {
    const printable = fc.string({
      unit: fc.integer({ min: 0, max: 0x2030 }).map((c) => String.fromCharCode(c)),
      minLength: 0,
      maxLength: 4000,
    });
    await fc.assert(
      fc.asyncProperty(printable, async (text) => {
        const run = await validate(text);
        expect(run.lines.length).toBeLessThanOrEqual(40);
        for (const l of run.lines) expect(l.length).toBeLessThanOrEqual(300);
        expect(run.err).not.toMatch(TERMINAL_CONTROL);
      }),
      { numRuns: 150 },
    );
  }, 60_000);

  it('prints at most 40 lines for 2 MB of random ASCII text', async () => {
    const bytes = Buffer.from(randomBytes(2 * 1024 * 1024).map((b) => b & 0x7f));
    const run = await validate(bytes);
    expect(run.code).toBe(2);
    expect(run.lines.length).toBeLessThanOrEqual(40);
    for (const l of run.lines) expect(l.length).toBeLessThanOrEqual(300);
    expect(run.err).not.toMatch(TERMINAL_CONTROL);
  }, 60_000);
});

describe('keys the schema library would drop', () => {
  it('reports a field named __proto__ instead of reading a plan without it', () => {
    const text = PLAN.replace('status: done', 'status: pending').replace(
      '              user: DB_USER',
      '              __proto__: DB_LOGIN',
    );
    expect(issuesOf(text)).toEqual([
      '20:15: key "__proto__" in tenants[0].workloads[0].secrets[1].fields cannot be used: it has a special meaning to the programs that read plans',
    ]);
  });
});
