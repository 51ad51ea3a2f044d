import fc from 'fast-check';
import { mkdtemp, readdir, readFile, writeFile, chmod, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { UserError } from '../core/errors.js';
import { parseAuthoritative, parsePlan, PlanError } from './read.js';
import { planJsonSchema, type MigrationPlan } from './schema.js';
import { writeFileAtomic } from '../core/files.js';
import { PlanEditor, provenSpans, renderPlan } from './write.js';

const GUIDE_PLAN = `apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata:
  name: migration-plan
  cluster: https://k8s.prod.example.com
  createdAt: "2026-04-01T10:00:00Z"
  createdBy: platform-team
tenants:
  - name: payments
    namespace: payments
    workloads:
      - kind: Deployment
        name: payment-api
        replicas: 3
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            fields:
              username: DB_USER
              password: DB_PASS
        status: pending
`;

// The guide's plan with a Secret delivered as files as well.
const FILES_PLAN = `${GUIDE_PLAN.replace('        status: pending\n', '')}          - source: k8s-secret/tls
            vaultPath: secret/data/payments/tls
            files:
              tls.key:
                path: /etc/tls/tls.key
                mountPath: /etc/tls
                mode: "0440"
              tls.crt: {path: /etc/tls/tls.crt, mountPath: /etc/tls}
        status: pending
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

describe('plan reader', () => {
  it("accepts the guide's plan and fills defaults", () => {
    const { plan } = parsePlan(GUIDE_PLAN, 'plan.yaml');
    const w = plan.tenants[0]?.workloads[0];
    expect(w?.serviceAccount).toBe('default');
    expect(w?.status).toBe('pending');
    expect(w?.secrets[0]?.fields).toEqual({ username: 'DB_USER', password: 'DB_PASS' });
  });

  it('reports every problem with its line and column, not just the first', () => {
    const bad = GUIDE_PLAN.replace('status: pending', 'status: done')
      .replace('secret/data/payments/db-credentials', 'secret/payments/db-credentials')
      .replace('password: DB_PASS', 'password: 9PASS')
      .replace('replicas: 3', 'replicas: 3\n        colour: blue');
    expect(issuesOf(bad)).toEqual([
      '15:9: unknown key "colour" in tenants[0].workloads[0]',
      '18:24: tenants[0].workloads[0].secrets[0].vaultPath: vaultPath must be a KV v2 data path "<mount>/data/<path>" (no globs, no "..")',
      '21:25: tenants[0].workloads[0].secrets[0].fields.password: not a valid environment variable name (letters, digits, "_"; not starting with a digit)',
      '22:17: tenants[0].workloads[0].status: status must be one of pending, migrated, skipped',
    ]);
  });

  it('rejects duplicate tenants, duplicate workloads and env vars mapped twice', () => {
    const text = `apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata: {name: p}
tenants:
  - name: a
    namespace: a
    workloads:
      - kind: Deployment
        name: web
        secrets:
          - source: k8s-secret/one
            vaultPath: secret/data/a/one
            fields: {user: DB_USER}
          - source: k8s-secret/two
            vaultPath: secret/data/a/two
            fields: {login: DB_USER}
      - kind: Deployment
        name: web
  - name: a
    namespace: b
`;
    expect(issuesOf(text)).toEqual([
      '16:29: tenants[0].workloads[0].secrets[1].fields.login: env var DB_USER is already mapped from secret/data/a/one:user in workload web',
      '18:15: tenants[0].workloads[1].name: duplicate workload Deployment a/web (also in tenant "a")',
      '19:11: tenants[1].name: duplicate tenant name "a" (also tenant #1)',
    ]);
  });

  it('names missing keys, wrong apiVersion/kind, YAML syntax errors and empty files', () => {
    expect(issuesOf('apiVersion: v1\nkind: Plan\n')).toEqual([
      '1:1: metadata: required key is missing',
      '1:13: apiVersion: apiVersion must be "cloudtaser.io/v1"',
      '2:7: kind: kind must be "MigrationPlan"',
    ]);
    expect(issuesOf('tenants: [\n')[0]).toMatch(/^2:1: invalid YAML: /);
    expect(issuesOf('')).toEqual(['1:1: the file is empty; expected a MigrationPlan']);
    expect(issuesOf('a: 1\na: 2\n')).toContainEqual(
      expect.stringMatching(/^2:1: invalid YAML: Map keys must be unique/),
    );
  });

  it('rejects vault paths that would widen a policy', () => {
    for (const p of [
      'secret/data/a/*',
      'secret/data/+/x',
      'secret/data/../x',
      '/secret/data/x',
      'secret/data/',
    ]) {
      const text = GUIDE_PLAN.replace('secret/data/payments/db-credentials', p);
      expect(issuesOf(text).join('\n'), p).toMatch(/vaultPath must be a KV v2 data path/);
    }
    expect(
      issuesOf(GUIDE_PLAN.replace('secret/data/payments/db-credentials', 'kv/prod/data/a/b')),
    ).toEqual([]);
  });

  it('reads file mappings: path, mountPath and an optional mode', () => {
    const refs = parsePlan(FILES_PLAN, 'p').plan.tenants[0]?.workloads[0]?.secrets;
    expect(refs?.[1]?.files).toEqual({
      'tls.key': { path: '/etc/tls/tls.key', mountPath: '/etc/tls', mode: '0440' },
      'tls.crt': { path: '/etc/tls/tls.crt', mountPath: '/etc/tls' },
    });
    expect(refs?.[0]?.files).toBeUndefined();
  });

  it('rejects file paths that are not absolute and normalised, with positions', () => {
    for (const bad of [
      'etc/tls/tls.key',
      '/etc/tls/../tls.key',
      '/etc/tls/./tls.key',
      '/etc/tls/',
      '/etc//tls.key',
      '/etc/tls/a,b',
    ]) {
      const text = FILES_PLAN.replace('path: /etc/tls/tls.key', `path: "${bad}"`);
      expect(issuesOf(text), bad).toEqual([
        '25:23: tenants[0].workloads[0].secrets[1].files["tls.key"].path: path must be an absolute, normalised path (no "." or ".." segments, no trailing "/"; letters, digits, "_", ".", "+", "@", "-")',
      ]);
    }
    expect(issuesOf(FILES_PLAN.replace('mode: "0440"', 'mode: 0440'))).toEqual([
      '27:23: tenants[0].workloads[0].secrets[1].files["tls.key"].mode: mode must be a string',
    ]);
  });

  it('rejects two fields on one path, a file outside its mount, overlapping mounts and cloudtaser paths (exit 2)', async () => {
    const twice = FILES_PLAN.replace('path: /etc/tls/tls.crt', 'path: /etc/tls/tls.key');
    expect(issuesOf(twice)).toEqual([
      '28:31: tenants[0].workloads[0].secrets[1].files["tls.crt"].path: file /etc/tls/tls.key is already mapped from secret/data/payments/tls:tls.key in workload payment-api',
    ]);
    const outside = FILES_PLAN.replace('path: /etc/tls/tls.key', 'path: /etc/other/tls.key');
    expect(issuesOf(outside)).toEqual([
      '25:23: tenants[0].workloads[0].secrets[1].files["tls.key"].path: file /etc/other/tls.key is outside its mountPath /etc/tls',
    ]);
    const nested = FILES_PLAN.replace(
      'tls.crt: {path: /etc/tls/tls.crt, mountPath: /etc/tls}',
      'tls.crt: {path: /etc/tls/sub/tls.crt, mountPath: /etc/tls/sub}',
    );
    expect(issuesOf(nested)).toEqual([
      '28:64: tenants[0].workloads[0].secrets[1].files["tls.crt"].mountPath: mountPath /etc/tls/sub overlaps the mount /etc/tls of another file in workload payment-api',
    ]);
    const reserved = FILES_PLAN.replace(
      'tls.crt: {path: /etc/tls/tls.crt, mountPath: /etc/tls}',
      'tls.crt: {path: /cloudtaser/bin/x, mountPath: /cloudtaser/bin}',
    );
    expect(issuesOf(reserved)).toEqual([
      '28:31: tenants[0].workloads[0].secrets[1].files["tls.crt"].path: file /cloudtaser/bin/x overlaps /cloudtaser, where cloudtaser mounts its own volumes',
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'ct-files-'));
    await writeFile(join(dir, 'plan.yaml'), twice);
    const { runCli } = await import('../cli/program.js');
    const { captureContext } = await import('../testing/context.js');
    const ctx = captureContext({ cwd: dir });
    expect(await runCli(['plan', 'validate', 'plan.yaml'], ctx)).toBe(2);
    expect(ctx.err()).toContain(
      'plan.yaml:28:31: tenants[0].workloads[0].secrets[1].files["tls.crt"].path: file /etc/tls/tls.key is already mapped',
    );
  });

  it('never throws anything but a positioned PlanError for random input (property)', () => {
    const yamlish = fc.oneof(
      fc.string(),
      fc.jsonValue().map((v) => stringify(v)),
      // Mutations of a valid plan: truncation, insertion, character swaps.
      fc
        .tuple(fc.nat(GUIDE_PLAN.length), fc.string({ maxLength: 8 }))
        .map(([i, s]) => GUIDE_PLAN.slice(0, i) + s + GUIDE_PLAN.slice(i)),
      fc.nat(GUIDE_PLAN.length).map((i) => GUIDE_PLAN.slice(0, i)),
      fc.constantFrom(
        '&a [*a]',
        '!!binary aGk=',
        '? [a]\n: b',
        '- - -',
        '%YAML 1.1\n---\na: b',
        '{a: 1}\n---\n{b: 2}',
      ),
    );
    fc.assert(
      fc.property(yamlish, (text) => {
        try {
          parsePlan(text, 'plan.yaml');
        } catch (e) {
          if (!(e instanceof PlanError)) return false;
          const lines = text.split('\n').length + 1;
          return (
            e.issues.length > 0 &&
            e.issues.every((i) => i.line >= 1 && i.line <= lines && i.col >= 1) &&
            e.message.split('\n').every((l) => /^plan\.yaml(?::\d+:\d+)?: /.test(l))
          );
        }
        return true;
      }),
      { numRuns: 2000 },
    );
    // Thousands of parses: seconds on a shared, loaded machine.
  }, 60_000);
});

describe('fast reader', () => {
  // Scalars on which YAML parsers (and YAML versions) are known to differ.
  const tricky = [
    '0b101',
    '0o17',
    '0x1F',
    '1_000',
    '017',
    '+3',
    '3.0',
    '1e3',
    '.inf',
    '~',
    'Null',
    'TRUE',
    'yes',
    'on',
    '2026-04-01',
    '"3"',
    "'x'",
    '!!str 3',
    '&a 3',
    '*a',
    'pending # note',
    '[]',
    '{}',
    '|\n          text',
  ];
  const valuesOf = (plan: string): { at: number; len: number }[] =>
    [...plan.matchAll(/: (\S[^\n]*)/g)].map((m) => ({ at: m.index + 2, len: m[1]?.length ?? 0 }));

  const outcome = (read: () => unknown): unknown => {
    try {
      return read();
    } catch (e) {
      return e instanceof PlanError ? 'PlanError' : e;
    }
  };

  it.each([
    ['the guide plan', GUIDE_PLAN],
    ['a plan with files', FILES_PLAN],
  ])(
    'means exactly what the authoritative reader means, for every value of %s swapped for a tricky scalar',
    (_, plan) => {
      for (const slot of valuesOf(plan)) {
        for (const v of tricky) {
          const text = plan.slice(0, slot.at) + v + plan.slice(slot.at + slot.len);
          expect([v, outcome(() => parsePlan(text, 'p').plan)]).toEqual([
            v,
            outcome(() => parseAuthoritative(text, 'p').plan),
          ]);
        }
      }
    },
    // Hundreds of parses each: seconds on a shared, loaded machine.
    60_000,
  );

  it('means exactly what the authoritative reader means, for random edits (property)', () => {
    // Edits of the guide plan and of one with files (paths, modes, flow maps).
    const mutated = fc
      .tuple(
        fc.constantFrom(GUIDE_PLAN, FILES_PLAN),
        fc.nat(FILES_PLAN.length),
        fc.string({ maxLength: 6 }),
      )
      .map(([plan, i, s]) => plan.slice(0, i) + s + plan.slice(i));
    fc.assert(
      fc.property(mutated, (text) => {
        expect(outcome(() => parsePlan(text, 'p').plan)).toEqual(
          outcome(() => parseAuthoritative(text, 'p').plan),
        );
      }),
      { numRuns: 1000 },
    );
  }, 60_000);

  it('agrees on a "#" right after a closing quote (found by the property below)', () => {
    const text = GUIDE_PLAN.replace('createdAt: "2026-04-01T10:00:00Z"', 'createdAt: ""#2026');
    expect(outcome(() => parsePlan(text, 'p').plan)).toEqual(
      outcome(() => parseAuthoritative(text, 'p').plan),
    );
  });

  it('is the path a plain plan takes, and a plan with a directive does not', () => {
    // A YAML 1.1 header makes `yes` a boolean: only the authoritative reader
    // knows, and it rejects the plan (createdBy must be a string).
    const yes = GUIDE_PLAN.replace('createdBy: platform-team', 'createdBy: yes');
    expect(parsePlan(yes, 'p').plan.metadata.createdBy).toBe('yes');
    expect(issuesOf(`%YAML 1.1\n---\n${yes}`)).toEqual([
      expect.stringMatching(/^9:14: metadata\.createdBy: /),
    ]);
  });
});

describe('plan writer', () => {
  const plan: MigrationPlan = parsePlan(GUIDE_PLAN, 'p').plan;

  it('renders a plan that reads back equal, with the schema modeline and notes as comments', () => {
    const text = renderPlan(plan, [
      { path: ['tenants', 0, 'workloads', 0, 'secrets', 0], text: 'read from files' },
    ]);
    expect(text.split('\n')[0]).toBe(
      '# yaml-language-server: $schema=https://cloudtaser.io/schemas/migration-plan-v1.json',
    );
    expect(text).toContain('createdAt: "2026-04-01T10:00:00Z"');
    expect(text).toMatch(/# read from files\n\s+- source: k8s-secret\/db-credentials/);
    expect(parsePlan(text, 'p').plan).toEqual(plan);
  });

  it('changes only the status value, keeping comments, order, quoting and layout', () => {
    const human = `# reviewed by security 2026-04-02
apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata:
  name: migration-plan   # keep this name
tenants:
- namespace: payments    # sequences not indented, keys reordered
  name: payments
  workloads:
  - status: "pending"    # quoted on purpose
    name: payment-api
    kind: Deployment
    secrets: []

  - {kind: StatefulSet, name: ledger, status: pending}
`;
    const editor = new PlanEditor(parsePlan(human, 'p'));
    expect(
      editor.setStatus(
        { namespace: 'payments', kind: 'Deployment', name: 'payment-api' },
        'migrated',
      ),
    ).toBe(true);
    expect(
      editor.setStatus({ namespace: 'payments', kind: 'StatefulSet', name: 'ledger' }, 'skipped'),
    ).toBe(true);
    expect(
      editor.setStatus({ namespace: 'payments', kind: 'DaemonSet', name: 'nope' }, 'skipped'),
    ).toBe(false);
    const expected = human
      .replace('status: "pending"', 'status: "migrated"')
      .replace('status: pending}', 'status: skipped}');
    expect(editor.toString()).toBe(expected);
    // Later edits still land in the right place after earlier ones moved text.
    editor.setStatus({ namespace: 'payments', kind: 'Deployment', name: 'payment-api' }, 'pending');
    editor.setStatus({ namespace: 'payments', kind: 'StatefulSet', name: 'ledger' }, 'migrated');
    const { plan: after } = parsePlan(editor.toString(), 'p');
    expect(after.tenants[0]?.workloads.map((w) => w.status)).toEqual(['pending', 'migrated']);
  });

  it('trusts a scanned status position only when it is proven, else asks the parser', () => {
    const two = GUIDE_PLAN.replace(
      '        status: pending\n',
      '        status: pending\n      - kind: StatefulSet\n        name: ledger\n        secrets: []\n        status: "skipped" # on purpose\n',
    );
    const spans = provenSpans(two, parsePlan(two, 'p').plan);
    expect(spans?.map((s) => two.slice(s.start, s.end))).toEqual(['pending', '"skipped"']);
    // A look-alike in a block scalar while a real status key is missing: the
    // count still matches, but the markers land in the wrong places.
    const fooled = two
      .replace('createdBy: platform-team', 'createdBy: |\n    status: pending')
      .replace('        status: pending\n', '');
    expect(provenSpans(fooled, parsePlan(fooled, 'p').plan)).toBeUndefined();
    const editor = new PlanEditor(parsePlan(fooled, 'p'));
    editor.setStatus({ namespace: 'payments', kind: 'StatefulSet', name: 'ledger' }, 'migrated');
    const after = parsePlan(editor.toString(), 'p').plan;
    expect(after.metadata.createdBy).toBe('status: pending\n');
    expect(after.tenants[0]?.workloads.map((w) => w.status)).toEqual(['pending', 'migrated']);
    expect(editor.toString()).toBe(fooled.replace('"skipped"', '"migrated"'));
    // A commented-out status line changes the count: also refused.
    const commented = two.replace('tenants:', '# status: pending\ntenants:');
    expect(provenSpans(commented, parsePlan(commented, 'p').plan)).toBeUndefined();
  });

  it('adds a status key where the human left it out', () => {
    const text = GUIDE_PLAN.replace('        status: pending\n', '').replace(
      '  - name: payments\n',
      '  # payments team signed off\n  - name: payments\n',
    );
    const editor = new PlanEditor(parsePlan(text, 'p'));
    editor.setStatus(
      { namespace: 'payments', kind: 'Deployment', name: 'payment-api' },
      'migrated',
    );
    expect(parsePlan(editor.toString(), 'p').plan.tenants[0]?.workloads[0]?.status).toBe(
      'migrated',
    );
    expect(editor.toString()).toContain('# payments team signed off\n');
  });
});

describe('atomic write', () => {
  it('replaces the file whole and leaves no temp file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-plan-'));
    const file = join(dir, 'plan.yaml');
    await writeFile(file, 'old');
    await chmod(file, 0o600);
    await writeFileAtomic(file, 'new content');
    expect(await readFile(file, 'utf8')).toBe('new content');
    expect(await readdir(dir)).toEqual(['plan.yaml']);
    // The replacement keeps the permissions the file had, not the default 0644.
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('fails with a user error naming the path when the directory is missing', async () => {
    const file = join(tmpdir(), 'no-such-dir-ct', 'plan.yaml');
    await expect(writeFileAtomic(file, 'x')).rejects.toThrow(UserError);
    await expect(writeFileAtomic(file, 'x')).rejects.toThrow(
      /cannot write .*plan\.yaml: its directory does not exist/,
    );
  });
});

describe('JSON Schema', () => {
  it('is derived from the same schema and describes the plan', () => {
    const schema = planJsonSchema();
    expect(schema.$id).toBe('https://cloudtaser.io/schemas/migration-plan-v1.json');
    expect(JSON.stringify(schema)).toContain('"enum":["pending","migrated","skipped"]');
    expect((schema.required as string[]).sort()).toEqual(['apiVersion', 'kind', 'metadata']);
  });
});
