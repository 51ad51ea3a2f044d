// `target import --from kubernetes` against the real API server and the real
// OpenBao: Secrets created in the sandbox, written into a fresh KV v2 mount.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import { cli, cliProcess, sandboxEnv, tempDir, type CliResult } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { bao, kubeClients, sandbox, uniqueName } from './helpers/sandbox.js';

/** A value that must never leave the Secret and vault: searched for in every output and file. */
const PLANTED = `planted-${randomBytes(12).toString('hex')}`;
const PLANTED_B64 = Buffer.from(PLANTED).toString('base64');

const ns = uniqueName('imp');
const mount = uniqueName('kvimp');
const outputs: CliResult[] = [];
const dirs: string[] = [];

type Secrets = MigrationPlan['tenants'][number]['workloads'][number]['secrets'];

function planFor(namespace: string, workloads: { name: string; secrets: Secrets }[]): string {
  const plan: MigrationPlan = {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'import-test' },
    tenants: [
      {
        name: namespace,
        namespace,
        workloads: workloads.map((w) => ({
          kind: 'Deployment' as const,
          name: w.name,
          serviceAccount: 'default',
          status: 'pending' as const,
          secrets: w.secrets,
        })),
      },
    ],
  };
  return renderPlan(plan);
}

const path = (p: string): string => `${mount}/data/${ns}/${p}`;
const ref = (secret: string, fields: Record<string, string>, p = secret) => ({
  source: `k8s-secret/${secret}`,
  vaultPath: path(p),
  fields,
});

async function writePlan(text: string): Promise<{ dir: string; file: string }> {
  const dir = await tempDir('ct-import-');
  dirs.push(dir);
  const file = join(dir, 'plan.yaml');
  await writeFile(file, text);
  return { dir, file };
}

async function run(args: string[], dir: string, env = sandboxEnv()): Promise<CliResult> {
  const r = await cli(
    ['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes', ...args],
    {
      cwd: dir,
      env,
    },
  );
  outputs.push(r);
  return r;
}

async function kv(
  p: string,
): Promise<{ version: number; data: Record<string, string> } | undefined> {
  const rel = p.slice(`${mount}/data/`.length);
  const r = await bao('GET', `${mount}/data/${rel}`);
  if (r.status === 404) return undefined;
  const body = r.json as { data: { data: Record<string, string>; metadata: { version: number } } };
  return { version: body.data.metadata.version, data: body.data.data };
}

async function put(p: string, data: Record<string, string>): Promise<void> {
  const rel = p.slice(`${mount}/data/`.length);
  const r = await bao('POST', `${mount}/data/${rel}`, { data });
  expect(r.status).toBe(200);
}

beforeAll(async () => {
  const { core } = kubeClients();
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const secret = (name: string, data: Record<string, string | Buffer>) =>
    core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name },
        type: 'Opaque',
        data: Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      },
    });
  await secret('db', { username: 'app', password: PLANTED, unmapped: 'not-in-plan' });
  await secret('api-key', { key: 'ak-12345' });
  await secret('partial', { user: 'from-secret', pass: 'p-from-secret' });
  await secret('kept', { token: 'new-token' });
  await secret('binary', { blob: Buffer.from([0xff, 0xfe, 0x00, 0x81]) });
  const m = await bao('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
  expect(m.status).toBe(204);
});

afterAll(async () => {
  const { core } = kubeClients();
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await bao('DELETE', `sys/mounts/${mount}`);
});

describe('target import --from kubernetes', () => {
  const main = () =>
    planFor(ns, [
      {
        name: 'api',
        secrets: [
          ref('db', { username: 'DB_USER', password: 'DB_PASS' }),
          ref('api-key', { key: 'API_KEY' }),
        ],
      },
      // A second workload mapping the same path from the same Secret: one write.
      { name: 'worker', secrets: [ref('db', { password: 'PASSWORD' })] },
    ]);

  it('--dry-run lists path, fields and action and writes nothing', async () => {
    const { dir } = await writePlan(main());
    const r = await run(['--dry-run'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('(dry-run mode -- no changes will be made)');
    expect(r.stdout).toContain(`  would create ${path('db')} [password, username] -- new path`);
    expect(r.stdout).toContain(`  would create ${path('api-key')} [key] -- new path`);
    expect(r.stdout).toContain('Would import: 2 created');
    expect(await kv(path('db'))).toBeUndefined();
  });

  it('fills a fresh vault with exactly the mapped fields, then verify-plan passes', async () => {
    const { dir } = await writePlan(main());
    const r = await run([], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`  created ${path('db')} [password, username] -- new path`);
    expect(r.stdout).toContain(
      'Import: 2 created, 0 overwritten, 0 merged, 0 kept, 0 skipped, 0 failed (2 path(s)).',
    );
    expect(r.stdout).toContain('Result: 3/3 secrets ready.');
    expect(await kv(path('db'))).toEqual({
      version: 1,
      data: { username: 'app', password: PLANTED },
    });
    expect((await kv(path('api-key')))?.data).toEqual({ key: 'ak-12345' });

    const v = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir });
    outputs.push(v);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('Result: 3/3 secrets ready.');
  });

  it('a second run writes nothing', async () => {
    const { dir } = await writePlan(main());
    const r = await run([], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Import: 0 created, 0 overwritten, 0 merged, 2 kept');
    expect((await kv(path('db')))?.version).toBe(1);
    expect((await kv(path('api-key')))?.version).toBe(1);
  });

  it('keeps an existing value without --overwrite; --overwrite writes a new version, the old one stays', async () => {
    await put(path('kept'), { token: 'old-token' });
    const { dir } = await writePlan(
      planFor(ns, [{ name: 'k', secrets: [ref('kept', { token: 'T' })] }]),
    );
    const kept = await run([], dir);
    expect(kept.code).toBe(0);
    expect(kept.stdout).toContain(
      `  kept ${path('kept')} [token] -- exists (pass --overwrite to replace)`,
    );
    expect(await kv(path('kept'))).toEqual({ version: 1, data: { token: 'old-token' } });

    const over = await run(['--overwrite'], dir);
    expect(over.code).toBe(0);
    expect(over.stdout).toContain(`  overwrote ${path('kept')} [token] -- new version v2`);
    expect(await kv(path('kept'))).toEqual({ version: 2, data: { token: 'new-token' } });
    const v1 = await bao('GET', `${mount}/data/${ns}/kept?version=1`);
    expect((v1.json as { data: { data: unknown } }).data.data).toEqual({ token: 'old-token' });
  });

  it('merges a partial path only with --merge, keeping the fields vault has', async () => {
    await put(path('partial'), { user: 'vault-user' });
    const { dir } = await writePlan(
      planFor(ns, [{ name: 'p', secrets: [ref('partial', { user: 'U', pass: 'P' })] }]),
    );
    const refused = await run([], dir);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(
      `  FAILED ${path('partial')} [pass, user] -- exists with field(s) user but without pass; pass --merge`,
    );
    expect((await kv(path('partial')))?.version).toBe(1);

    const merged = await run(['--merge'], dir);
    expect(merged.code).toBe(0);
    expect(merged.stdout).toContain(`  merged ${path('partial')} [pass]`);
    expect(await kv(path('partial'))).toEqual({
      version: 2,
      data: { user: 'vault-user', pass: 'p-from-secret' },
    });
  });

  it('reports a missing Secret, a missing key and a binary value by path, exit 1, and still writes the rest', async () => {
    const { dir } = await writePlan(
      planFor(ns, [
        {
          name: 'broken',
          secrets: [
            ref('nope', { a: 'A' }),
            ref('api-key', { absent: 'ABSENT' }, 'no-key'),
            ref('binary', { blob: 'BLOB' }),
          ],
        },
        { name: 'fine', secrets: [ref('api-key', { key: 'KEY' }, 'good')] },
      ]),
    );
    const r = await run([], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`  FAILED ${path('nope')} [a] -- Secret ${ns}/nope not found`);
    expect(r.stdout).toContain(
      `  FAILED ${path('no-key')} [absent] -- Secret ${ns}/api-key has no key absent (field absent)`,
    );
    expect(r.stdout).toContain(
      `  FAILED ${path('binary')} [blob] -- field blob (Secret ${ns}/binary key blob) is binary, not UTF-8 text`,
    );
    expect(r.stdout).toContain(`  created ${path('good')} [key]`);
    expect(r.stderr).toContain('error: 3 of 4 path(s) could not be filled');
    expect(await kv(path('nope'))).toBeUndefined();
    expect(await kv(path('binary'))).toBeUndefined();
  });

  it('retries when vault answers 429 and still fills every path', async () => {
    const proxy = await startFaultProxy(sandboxEnv().BAO_ADDR ?? '', {
      throttle: true,
      faultRate: 0.5,
      maxFaults: 6,
      seed: 7,
    });
    try {
      const { dir } = await writePlan(
        planFor(ns, [
          {
            name: 't',
            secrets: [ref('db', { username: 'U' }, 't1'), ref('api-key', { key: 'K' }, 't2')],
          },
        ]),
      );
      const r = await run([], dir, sandboxEnv({ BAO_ADDR: proxy.url }));
      expect(r.code).toBe(0);
      expect(proxy.stats.throttled).toBeGreaterThan(0);
      expect(r.stdout).toContain('Import: 2 created');
      expect((await kv(path('t1')))?.data).toEqual({ username: 'app' });
    } finally {
      await proxy.close();
    }
  });

  it('does not clobber a value another writer puts there between the check and the write', async () => {
    let raced = false;
    const proxy = await startFaultProxy(sandboxEnv().BAO_ADDR ?? '', {
      faultRate: 0,
      beforeForward: async (method, url) => {
        if (raced || method !== 'POST' || !url.startsWith(`/v1/${mount}/data/${ns}/race`)) return;
        raced = true;
        await put(path('race'), { key: 'written-meanwhile' });
      },
    });
    try {
      const { dir } = await writePlan(
        planFor(ns, [{ name: 'r', secrets: [ref('api-key', { key: 'K' }, 'race')] }]),
      );
      const r = await run([], dir, sandboxEnv({ BAO_ADDR: proxy.url }));
      expect(raced).toBe(true);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(
        `  FAILED ${path('race')} [key] -- changed in vault while importing (check-and-set refused the write); run the import again`,
      );
      expect(await kv(path('race'))).toEqual({ version: 1, data: { key: 'written-meanwhile' } });
      const again = await run([], dir);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`  kept ${path('race')} [key]`);
    } finally {
      await proxy.close();
    }
  });

  it('retries when the Kubernetes API server answers 429 to a Secret read', async () => {
    // A loopback proxy in front of the real API server: the first reads of
    // each Secret get the API server's own throttling answer (429 with a
    // Status body), then every request is forwarded.
    const info = sandbox();
    const ca = await readFile(info.caFile);
    const throttled = new Map<string, number>();
    const proxy = createServer((req, res) => {
      const url = req.url ?? '';
      const secretRead = req.method === 'GET' && /\/secrets\/[^/?]+/.test(url);
      const seen = throttled.get(url) ?? 0;
      if (secretRead && seen < 2) {
        throttled.set(url, seen + 1);
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
        res.end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            status: 'Failure',
            reason: 'TooManyRequests',
            message: 'too many requests, please try again later',
            code: 429,
          }),
        );
        return;
      }
      const up = httpsRequest(
        new URL(url, info.apiServer),
        { method: req.method, headers: { ...req.headers, host: new URL(info.apiServer).host }, ca },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (proxy.address() as AddressInfo).port;
      const { dir } = await writePlan(
        planFor(ns, [{ name: 'kt', secrets: [ref('api-key', { key: 'K' }, 'kube-throttled')] }]),
      );
      const kubeconfig = join(dir, 'kubeconfig');
      await writeFile(
        kubeconfig,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: proxy, cluster: {server: "http://127.0.0.1:' +
            String(port) +
            '", insecure-skip-tls-verify: true}}]',
          `users: [{name: admin, user: {token: "${info.adminToken}"}}]`,
          'contexts: [{name: proxy, context: {cluster: proxy, user: admin}}]',
          'current-context: proxy',
          '',
        ].join('\n'),
      );
      const r = await run([], dir, sandboxEnv({ KUBECONFIG: kubeconfig }));
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(`  created ${path('kube-throttled')} [key]`);
      expect(r.code).toBe(0);
      expect([...throttled.values()]).toEqual([2]);
      expect((await kv(path('kube-throttled')))?.data).toEqual({ key: 'ak-12345' });
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('refuses an unknown source and flags that do not go with the source (exit 2)', async () => {
    const { dir } = await writePlan(main());
    const cases: [string[], string][] = [
      [
        ['--from', 'vault'],
        '--from must be one of kubernetes, sealed-secrets, sops, aws, gcp, azure, not "vault"',
      ],
      [
        ['--from', 'kubernetes', '--region', 'eu-west-1'],
        '--region does not apply to --from kubernetes',
      ],
      [['--from', 'gcp', '--region', 'eu-west-1'], '--region does not apply to --from gcp'],
      [
        ['--from', 'kubernetes', '--sealing-key', 'k.pem'],
        '--sealing-key goes with --from sealed-secrets',
      ],
      [
        ['--from', 'sealed-secrets', '--repo', 'gitops'],
        '--repo goes with --from sealed-secrets --sealing-key (the controller unseals only what is in the cluster)',
      ],
      [
        ['--from', 'aws', '--context', 'x'],
        '--kubeconfig and --context apply to --from kubernetes and sealed-secrets only',
      ],
      [
        ['--from', 'aws', '--name-template', '{ns}/{secret}'],
        '--name-template has unknown placeholder(s) {ns}',
      ],
      [
        ['--from', 'azure'],
        '--from azure needs the vault: --endpoint https://NAME.vault.azure.net',
      ],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['target', 'import', '--plan', 'plan.yaml', ...args], { cwd: dir });
      expect(r.stderr).toContain(`error: ${message}`);
      expect(r.code).toBe(2);
    }
  });

  it('never lets a value reach stdout, stderr (--debug), the plan or a temp file', async () => {
    const tmp = await tempDir('ct-import-tmp-');
    dirs.push(tmp);
    const { dir, file } = await writePlan(
      planFor(ns, [
        { name: 'leak', secrets: [ref('db', { password: 'P', username: 'U' }, 'leak')] },
      ]),
    );
    const env = sandboxEnv({ TMPDIR: tmp });
    const args = ['--debug', 'target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes'];
    const first = await cliProcess(args, { cwd: dir, env });
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`debug: vault POST /v1/${mount}/data/${ns}/leak -> 200`);
    outputs.push(first);
    outputs.push(await cliProcess([...args, '--overwrite', '--merge'], { cwd: dir, env }));
    outputs.push(await cliProcess([...args, '--dry-run', '--overwrite'], { cwd: dir, env }));
    expect((await kv(path('leak')))?.data.password).toBe(PLANTED);

    for (const o of outputs) {
      for (const text of [o.stdout, o.stderr]) {
        expect(text).not.toContain(PLANTED);
        expect(text).not.toContain(PLANTED_B64);
      }
    }
    expect(await readFile(file, 'utf8')).toBe(
      planFor(ns, [
        { name: 'leak', secrets: [ref('db', { password: 'P', username: 'U' }, 'leak')] },
      ]),
    );
    for (const d of dirs) {
      for (const name of await readdir(d, { recursive: true })) {
        const f = join(d, name);
        if (!(await stat(f)).isFile()) continue;
        const content = await readFile(f);
        expect(content.includes(PLANTED), f).toBe(false);
        expect(content.includes(PLANTED_B64), f).toBe(false);
      }
    }
  });
});
