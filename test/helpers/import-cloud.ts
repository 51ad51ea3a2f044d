// The bar every cloud source of `target import` is held to, run once per
// provider (test/import-aws.test.ts against moto's server, and the GCP and
// Azure files against the fakes in test/fakes/): a fresh vault filled and
// verify-plan passing, a second run writing nothing, an existing value kept
// without --overwrite, a missing or non-JSON provider secret reported by path
// with exit 1, a throttling reply retried, the name template, mapping file and
// plain-string field, and a planted value never in any output or file.
// The CLI runs as a separate process, as a user runs it: the providers'
// credential chains read the process environment.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../../src/plan/schema.js';
import { renderPlan } from '../../src/plan/write.js';
import { cliProcess, sandboxEnv, tempDir, type CliResult } from './cli.js';
import { bao, uniqueName } from './sandbox.js';

export interface CloudFixture {
  from: 'aws' | 'gcp' | 'azure';
  /** How the messages name a provider secret: `AWS secret`, `GCP secret`, `Azure secret`. */
  label: string;
  /** The provider secret name the default template gives. */
  defaultName(namespace: string, secret: string): string;
  /** Creates a provider secret holding `text`, through the provider's API. */
  put(name: string, text: string): Promise<void>;
  /** Environment and flags the CLI needs to reach the provider (credentials, endpoint). */
  env: NodeJS.ProcessEnv;
  args: string[];
  /** The next `n` reads of a secret value get the provider's throttling reply. */
  throttleNext(n: number): void;
  throttled(): number;
  /** Provider secret reads that reached the server (for "a re-run reads nothing"). */
  reads(): number;
  close(): Promise<void>;
}

type Secrets = MigrationPlan['tenants'][number]['workloads'][number]['secrets'];

export function cloudImportSuite(
  name: string,
  setup: () => Promise<CloudFixture>,
  setupTimeoutMs = 180_000,
): void {
  const PLANTED = `planted-${randomBytes(12).toString('hex')}`;
  const PLANTED_B64 = Buffer.from(PLANTED).toString('base64');
  const ns = uniqueName('imc');
  const mount = uniqueName('kvimc');
  const outputs: CliResult[] = [];
  const dirs: string[] = [];
  let f: CloudFixture;

  const path = (p: string): string => `${mount}/data/${ns}/${p}`;
  const ref = (secret: string, fields: Record<string, string>, p = secret) => ({
    source: `k8s-secret/${secret}`,
    vaultPath: path(p),
    fields,
  });
  const planFor = (workloads: { name: string; secrets: Secrets }[]): string =>
    renderPlan({
      apiVersion: 'cloudtaser.io/v1',
      kind: 'MigrationPlan',
      metadata: { name: 'import-cloud-test' },
      tenants: [
        {
          name: ns,
          namespace: ns,
          workloads: workloads.map((w) => ({
            kind: 'Deployment' as const,
            name: w.name,
            serviceAccount: 'default',
            status: 'pending' as const,
            secrets: w.secrets,
          })),
        },
      ],
    });

  async function writePlan(text: string): Promise<string> {
    const dir = await tempDir('ct-import-cloud-');
    dirs.push(dir);
    await writeFile(join(dir, 'plan.yaml'), text);
    return dir;
  }

  async function run(dir: string, args: string[] = [], pre: string[] = []): Promise<CliResult> {
    const r = await cliProcess(
      [...pre, 'target', 'import', '--plan', 'plan.yaml', '--from', f.from, ...f.args, ...args],
      { cwd: dir, env: sandboxEnv(f.env) },
    );
    outputs.push(r);
    return r;
  }

  async function kv(
    p: string,
  ): Promise<{ version: number; data: Record<string, string> } | undefined> {
    const r = await bao('GET', `${mount}/data/${p.slice(`${mount}/data/`.length)}`);
    if (r.status === 404) return undefined;
    const b = r.json as { data: { data: Record<string, string>; metadata: { version: number } } };
    return { version: b.data.metadata.version, data: b.data.data };
  }

  const main = () =>
    planFor([
      {
        name: 'api',
        secrets: [
          ref('db', { username: 'DB_USER', password: 'DB_PASS' }),
          ref('api-key', { key: 'API_KEY' }),
        ],
      },
      { name: 'worker', secrets: [ref('db', { password: 'PASSWORD' })] },
    ]);

  describe(name, () => {
    beforeAll(async () => {
      f = await setup();
      const m = await bao('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
      expect(m.status).toBe(204);
      await f.put(
        f.defaultName(ns, 'db'),
        JSON.stringify({ username: 'app', password: PLANTED, unmapped: 'x' }),
      );
      await f.put(f.defaultName(ns, 'api-key'), JSON.stringify({ key: 'ak-12345' }));
      await f.put(f.defaultName(ns, 'kept'), JSON.stringify({ token: 'new-token' }));
      await f.put(f.defaultName(ns, 'notjson'), 'just a string');
      await f.put(f.defaultName(ns, 'good'), JSON.stringify({ key: 'good-key', port: 5432 }));
      await f.put(`prod-${ns}-tmpl`, JSON.stringify({ key: 'from-template' }));
      await f.put('mapped-by-file', JSON.stringify({ key: 'from-map' }));
      await f.put(f.defaultName(ns, 'plain'), 'plain-value');
    }, setupTimeoutMs);

    afterAll(async () => {
      await bao('DELETE', `sys/mounts/${mount}`);
      await f.close();
    });

    it('fills a fresh vault with exactly the mapped fields, then verify-plan passes', async () => {
      const dir = await writePlan(main());
      const r = await run(dir);
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`  created ${path('db')} [password, username] -- new path`);
      expect(r.stdout).toContain(`  created ${path('api-key')} [key] -- new path`);
      expect(r.stdout).toContain(
        'Import: 2 created, 0 overwritten, 0 merged, 0 kept, 0 skipped, 0 failed (2 path(s)).',
      );
      expect(r.code).toBe(0);
      expect(await kv(path('db'))).toEqual({
        version: 1,
        data: { username: 'app', password: PLANTED },
      });
      expect((await kv(path('api-key')))?.data).toEqual({ key: 'ak-12345' });
      const v = await cliProcess(['source', 'verify-plan', 'plan.yaml'], { cwd: dir });
      outputs.push(v);
      expect(v.stdout).toContain('Result: 3/3 secrets ready.');
      expect(v.code).toBe(0);
    });

    it('a second run reads no provider secret and writes nothing', async () => {
      const dir = await writePlan(main());
      const before = f.reads();
      const r = await run(dir);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Import: 0 created, 0 overwritten, 0 merged, 2 kept');
      expect(f.reads()).toBe(before);
      expect((await kv(path('db')))?.version).toBe(1);
      expect((await kv(path('api-key')))?.version).toBe(1);
    });

    it('keeps an existing value without --overwrite; --overwrite writes a new version', async () => {
      const put = await bao('POST', `${mount}/data/${ns}/kept`, { data: { token: 'old-token' } });
      expect(put.status).toBe(200);
      const dir = await writePlan(planFor([{ name: 'k', secrets: [ref('kept', { token: 'T' })] }]));
      const kept = await run(dir);
      expect(kept.code).toBe(0);
      expect(kept.stdout).toContain(
        `  kept ${path('kept')} [token] -- exists (pass --overwrite to replace)`,
      );
      expect(await kv(path('kept'))).toEqual({ version: 1, data: { token: 'old-token' } });
      const over = await run(dir, ['--overwrite']);
      expect(over.code).toBe(0);
      expect(over.stdout).toContain(`  overwrote ${path('kept')} [token] -- new version v2`);
      expect(await kv(path('kept'))).toEqual({ version: 2, data: { token: 'new-token' } });
    });

    it('reports a missing and a non-JSON provider secret by path, exit 1, and writes the rest', async () => {
      const dir = await writePlan(
        planFor([
          {
            name: 'broken',
            secrets: [
              ref('nope', { a: 'A' }),
              ref('notjson', { b: 'B' }),
              ref('good', { absent: 'X' }, 'no-field'),
            ],
          },
          { name: 'fine', secrets: [ref('good', { key: 'K', port: 'P' })] },
        ]),
      );
      const r = await run(dir);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `  FAILED ${path('nope')} \\[a\\] -- ${f.label} ${f.defaultName(ns, 'nope')} not found`,
        ),
      );
      expect(r.stdout).toContain(
        `  FAILED ${path('notjson')} [b] -- ${f.label} ${f.defaultName(ns, 'notjson')} is not a JSON object (pass --string-field FIELD`,
      );
      expect(r.stdout).toContain(
        `  FAILED ${path('no-field')} [absent] -- ${f.label} ${f.defaultName(ns, 'good')} has no key absent (field absent)`,
      );
      expect(r.stdout).toContain(`  created ${path('good')} [key, port]`);
      expect(r.stderr).toContain('error: 3 of 4 path(s) could not be filled');
      expect(await kv(path('nope'))).toBeUndefined();
      expect((await kv(path('good')))?.data).toEqual({ key: 'good-key', port: '5432' });
    });

    it('finds secrets by --name-template and --name-map, and a plain string by --string-field', async () => {
      const map = join(await writePlan(''), 'names.yaml');
      await writeFile(map, `${path('mapped')}: mapped-by-file\n`);
      const dir = await writePlan(
        planFor([
          {
            name: 'n',
            secrets: [ref('tmpl', { key: 'K' }), ref('whatever', { key: 'K2' }, 'mapped')],
          },
        ]),
      );
      const r = await run(dir, ['--name-template', 'prod-{namespace}-{secret}', '--name-map', map]);
      expect(r.stdout).toContain(`  created ${path('tmpl')} [key]`);
      expect(r.stdout).toContain(`  created ${path('mapped')} [key]`);
      expect(r.code).toBe(0);
      expect((await kv(path('tmpl')))?.data).toEqual({ key: 'from-template' });
      expect((await kv(path('mapped')))?.data).toEqual({ key: 'from-map' });

      const plain = await writePlan(
        planFor([{ name: 'p', secrets: [ref('plain', { value: 'V' })] }]),
      );
      const s = await run(plain, ['--string-field', 'value']);
      expect(s.code).toBe(0);
      expect((await kv(path('plain')))?.data).toEqual({ value: 'plain-value' });
    });

    it('retries a throttling reply and still fills the path', async () => {
      const dir = await writePlan(
        planFor([{ name: 't', secrets: [ref('api-key', { key: 'K' }, 'throttled')] }]),
      );
      f.throttleNext(3);
      const before = f.throttled();
      const r = await run(dir, [], ['--debug']);
      expect(f.throttled() - before).toBe(3);
      expect(r.stdout).toContain(`  created ${path('throttled')} [key]`);
      expect(r.stderr).toContain('retrying');
      expect(r.code).toBe(0);
      expect((await kv(path('throttled')))?.data).toEqual({ key: 'ak-12345' });
    });

    it('never lets a value reach stdout, stderr (--debug), the plan or a temp file', async () => {
      const tmp = await tempDir('ct-import-cloud-tmp-');
      dirs.push(tmp);
      const text = planFor([
        { name: 'leak', secrets: [ref('db', { password: 'P', username: 'U' }, 'leak')] },
      ]);
      const dir = await writePlan(text);
      const env = { ...f.env, TMPDIR: tmp };
      const args = [
        '--debug',
        'target',
        'import',
        '--plan',
        'plan.yaml',
        '--from',
        f.from,
        ...f.args,
      ];
      const first = await cliProcess(args, { cwd: dir, env: sandboxEnv(env) });
      outputs.push(first);
      expect(first.code).toBe(0);
      expect(first.stderr).toContain(`debug: vault POST /v1/${mount}/data/${ns}/leak -> 200`);
      outputs.push(
        await cliProcess([...args, '--overwrite', '--merge'], { cwd: dir, env: sandboxEnv(env) }),
      );
      outputs.push(
        await cliProcess([...args, '--dry-run', '--overwrite'], { cwd: dir, env: sandboxEnv(env) }),
      );
      expect((await kv(path('leak')))?.data.password).toBe(PLANTED);
      for (const o of outputs) {
        for (const t of [o.stdout, o.stderr]) {
          expect(t).not.toContain(PLANTED);
          expect(t).not.toContain(PLANTED_B64);
        }
      }
      expect(await readFile(join(dir, 'plan.yaml'), 'utf8')).toBe(text);
      for (const d of dirs) {
        for (const n of await readdir(d, { recursive: true })) {
          const file = join(d, n);
          if (!(await stat(file)).isFile()) continue;
          const content = await readFile(file);
          expect(content.includes(PLANTED), file).toBe(false);
          expect(content.includes(PLANTED_B64), file).toBe(false);
        }
      }
    });
  });
}
