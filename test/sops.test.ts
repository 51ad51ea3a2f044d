// `target discover --from sops` and `target import --from sops` with the real
// sops and age (built by testenv from their pinned Go modules), the sandbox's
// API server and OpenBao. The repository directory holds only what sops
// wrote: plaintext goes to `sops encrypt` through its stdin, never to disk,
// so any file holding a planted value afterwards was written by the CLI.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePlan } from '../src/plan/read.js';
import { ensureSops, type SopsBinaries } from '../testenv/sops.js';
import { cli, sandboxEnv, tempDir, type CliResult } from './helpers/cli.js';
import { bao, kubeClients, sandbox, uniqueName } from './helpers/sandbox.js';
import { projectRoot } from '../testenv/paths.js';

/** Values that must reach vault and nothing else: searched for in every output and file. */
const PLANTED = `planted-${randomBytes(12).toString('hex')}`;
const PLANTED_KEY = `planted-key-${randomBytes(12).toString('hex')}`;
const PLANTED_HIDDEN = `planted-hidden-${randomBytes(12).toString('hex')}`;
const PLANTED_JSON = `planted-json-${randomBytes(12).toString('hex')}`;
/** In a Secret manifest kept in clear: it must not be imported. */
const PLAIN_VALUE = `plain-${randomBytes(12).toString('hex')}`;
const SECRETS = [PLANTED, PLANTED_KEY, PLANTED_HIDDEN, PLANTED_JSON];
const b64 = (s: string): string => Buffer.from(s).toString('base64');

const ns = uniqueName('sops');
const mount = uniqueName('kvsops');
const outputs: CliResult[] = [];
const dirs: string[] = [];
let bins: SopsBinaries;
let keyFile: string;
let wrongKeyFile: string;
let recipient: string;
let repo: string;
let work: string;
/** What the system temp directory held before: anything new is searched too (sops's own temp files). */
let tmpBefore: Set<string>;

function run(
  cmd: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd ?? tmpdir(),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Encrypts through stdin, as a person would run `sops encrypt`; only ciphertext is written. */
async function encryptTo(
  file: string,
  plain: string,
  extra: string[] = ['--encrypted-regex', '^(data|stringData)$'],
): Promise<void> {
  const type = file.endsWith('.json') ? 'json' : 'yaml';
  const r = await run(
    bins.sops,
    [
      '--disable-version-check',
      'encrypt',
      '--age',
      recipient,
      ...extra,
      '--filename-override',
      file,
      '--input-type',
      type,
      '--output-type',
      type,
    ],
    { input: plain, cwd: work },
  );
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, r.stdout);
}

const secretYaml = (name: string, body: string): string =>
  `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: ${ns}\ntype: Opaque\n${body}`;

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // sops is found on PATH, and the key through SOPS_AGE_KEY_FILE, as a user has them.
  return sandboxEnv({
    PATH: `${dirname(bins.sops)}${delimiter}${process.env.PATH ?? ''}`,
    SOPS_AGE_KEY_FILE: keyFile,
    HOME: work,
    ...extra,
  });
}

async function ct(args: string[], cwd: string, e = env()): Promise<CliResult> {
  const r = await cli(args, { cwd, env: e });
  outputs.push(r);
  return r;
}

async function kv(rel: string): Promise<Record<string, string> | undefined> {
  const r = await bao('GET', `${mount}/data/${rel}`);
  if (r.status === 404) return undefined;
  return (r.json as { data: { data: Record<string, string> } }).data.data;
}

async function deployment(name: string, container: Record<string, unknown>): Promise<void> {
  const { apps } = kubeClients();
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'app', image: 'busybox:1.36', ...container }] },
        },
      },
    },
  });
}

const sourcesOf = (text: string): Record<string, string[]> => {
  const plan = parsePlan(text, 'plan.yaml').plan;
  return Object.fromEntries(
    plan.tenants.flatMap((t) => t.workloads.map((w) => [w.name, w.secrets.map((s) => s.source)])),
  );
};

beforeAll(async () => {
  // Built once per machine (minutes), then cached: a fresh machine builds it here.
  bins = await ensureSops((l) => process.stderr.write(`${l}\n`));
  tmpBefore = new Set(await readdir(tmpdir()));
  work = await tempDir('ct-sops-work-');
  repo = await tempDir('ct-sops-repo-');
  dirs.push(work, repo);
  keyFile = join(work, 'age.key');
  wrongKeyFile = join(work, 'wrong.key');
  for (const f of [keyFile, wrongKeyFile]) {
    const r = await run(bins.ageKeygen, ['-o', f]);
    expect(r.code).toBe(0);
  }
  recipient = /age1[0-9a-z]+/.exec(await readFile(keyFile, 'utf8'))?.[0] ?? '';
  expect(recipient).not.toBe('');

  // A multi-document file: a ConfigMap, then two Secrets (data and stringData).
  await encryptTo(
    join(repo, 'apps', 'secrets.enc.yaml'),
    [
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: ${ns}\ndata:\n  mode: fast\n`,
      secretYaml('db', `data:\n  password: ${b64(PLANTED)}\nstringData:\n  username: app\n`),
      secretYaml('api-key', `stringData:\n  key: "${PLANTED_KEY}"\n`),
    ].join('---\n'),
  );
  // JSON, and a file encrypted whole (kind and metadata too).
  await encryptTo(
    join(repo, 'json', 'other.enc.json'),
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'other-db', namespace: ns },
      data: { token: b64(PLANTED_JSON) },
    }),
  );
  await encryptTo(
    join(repo, 'hidden', 'all.enc.yaml'),
    secretYaml('hidden', `stringData:\n  pin: "${PLANTED_HIDDEN}"\n`),
    [],
  );

  const { core } = kubeClients();
  await core.createNamespace({ body: { metadata: { name: ns } } });
  // The Secret the deploy pipeline created earlier, with older values:
  // import must take the file's, not the cluster's.
  await core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: 'db' },
      data: { password: b64('cluster-old'), username: b64('cluster-old') },
    },
  });
  await deployment('api', {
    env: [
      { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
      { name: 'DB_USER', valueFrom: { secretKeyRef: { name: 'db', key: 'username' } } },
    ],
    // Not in the cluster: its key names come from the SOPS file.
    envFrom: [{ secretRef: { name: 'api-key' } }],
  });
  await deployment('other', {
    env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'other-db', key: 'token' } } }],
  });
  await deployment('hidden-app', {
    env: [{ name: 'PIN', valueFrom: { secretKeyRef: { name: 'hidden', key: 'pin' } } }],
  });
  const m = await bao('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
  expect(m.status).toBe(204);
}, 40 * 60_000);

afterAll(async () => {
  const { core } = kubeClients();
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await bao('DELETE', `sys/mounts/${mount}`);
  // After the leak check (the last test): the work directory holds the age keys.
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('SOPS: discover → import → verify', () => {
  const discover = ['target', 'discover', '--from', 'sops', '--path', 'repo', '-n', ns];

  it('discover matches encrypted Secrets by cleartext metadata and asks before decrypting the rest', async () => {
    const dir = await tempDir('ct-sops-plan-');
    dirs.push(dir);
    await symlinkRepo(dir);
    const r = await ct([...discover, '--kv-mount', mount, '-o', 'plan.yaml'], dir);
    expect(r.code).toBe(0);
    expect(sourcesOf(await readFile(join(dir, 'plan.yaml'), 'utf8'))).toEqual({
      api: ['sops/apps/secrets.enc.yaml#2', 'sops/apps/secrets.enc.yaml#1'],
      'hidden-app': ['k8s-secret/hidden'],
      other: ['sops/json/other.enc.json#0'],
    });
    expect(r.stderr).toContain(
      'hidden/all.enc.yaml#0: kind, name or namespace is encrypted; pass --decrypt-metadata',
    );
    expect(r.stderr).toContain('SOPS: 3 encrypted Secret(s) found, 3 read by workloads');
  });

  it('with --decrypt-metadata the whole-file-encrypted one matches too; import fills vault; verify passes', async () => {
    const dir = await tempDir('ct-sops-plan-');
    dirs.push(dir);
    await symlinkRepo(dir);
    const d = await ct(
      [...discover, '--kv-mount', mount, '--decrypt-metadata', '-o', 'plan.yaml'],
      dir,
    );
    expect(d.code).toBe(0);
    const planText = await readFile(join(dir, 'plan.yaml'), 'utf8');
    expect(sourcesOf(planText)['hidden-app']).toEqual(['sops/hidden/all.enc.yaml#0']);
    // Field names from the files' data/stringData keys.
    const plan = parsePlan(planText, 'plan.yaml').plan;
    const api = plan.tenants[0]?.workloads.find((w) => w.name === 'api');
    expect(api?.secrets.map((s) => [s.vaultPath, s.fields])).toEqual([
      [`${mount}/data/${ns}/api-key`, { key: 'key' }],
      [`${mount}/data/${ns}/db`, { password: 'DB_PASS', username: 'DB_USER' }],
    ]);

    const dry = await ct(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'sops', '--path', 'repo', '--dry-run'],
      dir,
    );
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(
      `would create ${mount}/data/${ns}/db [password, username] -- new path`,
    );
    expect(await kv(`${ns}/db`)).toBeUndefined();

    const imp = await ct(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'sops', '--path', 'repo'],
      dir,
    );
    expect(imp.stderr).toBe('');
    expect(imp.code).toBe(0);
    expect(imp.stdout).toContain('from SOPS files under repo');
    expect(imp.stdout).toContain(
      'Import: 4 created, 0 overwritten, 0 merged, 0 kept, 0 skipped, 0 failed',
    );
    expect(await kv(`${ns}/db`)).toEqual({ password: PLANTED, username: 'app' });
    expect(await kv(`${ns}/api-key`)).toEqual({ key: PLANTED_KEY });
    expect(await kv(`${ns}/other-db`)).toEqual({ token: PLANTED_JSON });
    expect(await kv(`${ns}/hidden`)).toEqual({ pin: PLANTED_HIDDEN });

    const v = await ct(['source', 'verify-plan', 'plan.yaml'], dir);
    expect(v.code).toBe(0);

    // A re-run decides from vault's field names and needs no decryption:
    // even a wrong key changes nothing.
    const again = await ct(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'sops', '--path', 'repo'],
      dir,
      env({ SOPS_AGE_KEY_FILE: wrongKeyFile }),
    );
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 created, 0 overwritten, 0 merged, 4 kept');

    // A wrong key: exit 1, the file and sops's reason named, vault unchanged.
    const wrong = await ct(
      [
        'target',
        'import',
        '--plan',
        'plan.yaml',
        '--from',
        'sops',
        '--path',
        'repo',
        '--overwrite',
      ],
      dir,
      env({ SOPS_AGE_KEY_FILE: wrongKeyFile }),
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(
      new RegExp(
        `FAILED ${mount}/data/${ns}/db \\[password, username\\] -- repo/apps/secrets\\.enc\\.yaml: cannot decrypt: sops exited 128: Failed to get the data key required to decrypt the SOPS file\\. \\(.*identity did not match any of the recipients`,
      ),
    );
    expect(wrong.stderr).toContain('4 of 4 path(s) could not be filled');
    expect(await kv(`${ns}/db`)).toEqual({ password: PLANTED, username: 'app' });

    // No sops: a usage error naming the fix.
    const none = await ct(
      [
        'target',
        'import',
        '--plan',
        'plan.yaml',
        '--from',
        'sops',
        '--path',
        'repo',
        '--overwrite',
        '--sops-binary',
        join(work, 'no-such-sops'),
      ],
      dir,
    );
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('sops not found');
  });
});

describe('SOPS: SecretMapping output', () => {
  it('carries sops sources that the SecretMapping CRD accepts', async () => {
    const dir = await tempDir('ct-sops-map-');
    dirs.push(dir);
    await symlinkRepo(dir);
    const r = await ct(
      [
        'target',
        'discover',
        '--from',
        'sops',
        '--path',
        'repo',
        '-n',
        ns,
        '--vault-address',
        'https://vault.example:8200',
        '--vault-role',
        'r',
      ],
      dir,
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('source: sops/json/other.enc.json#0');
    const info = sandbox();
    const kubectl = (args: string[], input?: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const child = execFile(
          info.binaries.kubectl,
          ['--kubeconfig', info.kubeconfig, ...args],
          (err, stdout, stderr) => {
            if (err) reject(new Error(stderr || err.message));
            else resolve(stdout);
          },
        );
        if (input !== undefined) child.stdin?.end(input);
      });
    await kubectl(['apply', '-f', join(projectRoot, 'manifests', 'crds', 'secretmapping.yaml')]);
    await kubectl([
      'wait',
      '--for=condition=Established',
      'crd/secretmappings.cloudtaser.io',
      '--timeout=60s',
    ]);
    const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], r.stdout);
    expect(applied).toContain(
      'secretmapping.cloudtaser.io/deployment-other created (server dry run)',
    );
  });
});

describe('SOPS: a Secret kept in clear', () => {
  it('is reported by discover and never imported', async () => {
    const dir = await tempDir('ct-sops-plain-');
    dirs.push(dir);
    await mkdir(join(dir, 'repo'));
    await writeFile(
      join(dir, 'repo', 'plain.yaml'),
      secretYaml('plain', `stringData:\n  password: ${PLAIN_VALUE}\n`),
    );
    await deployment('plain-app', {
      env: [{ name: 'PASS', valueFrom: { secretKeyRef: { name: 'plain', key: 'password' } } }],
    });
    const d = await ct(
      [
        'target',
        'discover',
        '--from',
        'sops',
        '--path',
        'repo',
        '-n',
        ns,
        '--kv-mount',
        mount,
        '-o',
        'plan.yaml',
      ],
      dir,
    );
    expect(d.code).toBe(0);
    expect(d.stderr).toContain(
      `warning: plain.yaml#0: Secret ${ns}/plain is not SOPS-encrypted (its values are in the repository in clear); not used as a source`,
    );
    expect(sourcesOf(await readFile(join(dir, 'plan.yaml'), 'utf8'))['plain-app']).toEqual([
      'k8s-secret/plain',
    ]);

    // A plan edited to point at it anyway: refused before sops runs.
    const text = (await readFile(join(dir, 'plan.yaml'), 'utf8')).replace(
      'source: k8s-secret/plain',
      'source: sops/plain.yaml#0',
    );
    await writeFile(join(dir, 'plan.yaml'), text);
    const imp = await ct(
      ['target', 'import', '--plan', 'plan.yaml', '--from', 'sops', '--path', 'repo'],
      dir,
    );
    expect(imp.code).toBe(1);
    expect(imp.stdout).toContain(
      `FAILED ${mount}/data/${ns}/plain [password] -- repo/plain.yaml document #0 is not SOPS-encrypted; refusing to import values kept in clear`,
    );
    expect(await kv(`${ns}/plain`)).toBeUndefined();
    for (const o of outputs) expect(o.stdout + o.stderr).not.toContain(PLAIN_VALUE);
  });
});

describe('SOPS: no value leaks', () => {
  it('no planted value is in any output, plan or file the test or the CLI wrote', async () => {
    expect(outputs.length).toBeGreaterThan(5);
    for (const o of outputs) {
      const text = o.stdout + o.stderr;
      for (const s of SECRETS) {
        expect(text).not.toContain(s);
        expect(text).not.toContain(b64(s));
      }
    }
    const seen: string[] = [];
    for (const d of dirs) {
      for (const name of await readdir(d, { recursive: true })) {
        const f = join(d, name);
        if (!(await stat(f)).isFile()) continue;
        seen.push(f);
        const content = await readFile(f, 'latin1');
        for (const s of SECRETS) {
          expect(content.includes(s), f).toBe(false);
          expect(content.includes(b64(s)), f).toBe(false);
        }
      }
    }
    // Whatever appeared in the system temp directory since (other tests on
    // the machine write there too; none of them knows these values).
    for (const entry of await readdir(tmpdir())) {
      if (tmpBefore.has(entry)) continue;
      const top = join(tmpdir(), entry);
      const names = await readdir(top, { recursive: true }).catch(() => null);
      for (const name of names ? names.map((n) => join(top, n)) : [top]) {
        const st = await stat(name).catch(() => undefined);
        if (!st?.isFile() || st.size > 4 * 1024 * 1024) continue;
        const content = await readFile(name, 'latin1').catch(() => '');
        for (const s of SECRETS) {
          expect(content.includes(s), name).toBe(false);
          expect(content.includes(b64(s)), name).toBe(false);
        }
      }
    }
    // The plans and the encrypted repository were among the files searched.
    expect(seen.filter((f) => f.endsWith('plan.yaml')).length).toBeGreaterThanOrEqual(3);
    expect(seen.some((f) => f.endsWith('secrets.enc.yaml'))).toBe(true);
  });
});

/** Each plan directory sees the one repository as ./repo, as a checkout beside the plan. */
async function symlinkRepo(dir: string): Promise<void> {
  const { symlink } = await import('node:fs/promises');
  await symlink(repo, join(dir, 'repo'));
}
