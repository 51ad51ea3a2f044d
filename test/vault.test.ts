// `source apply-plan` and `source verify-plan` against the real OpenBao, with
// real Kubernetes logins through the real API server.
import { CoreV1Api } from '@kubernetes/client-node';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import { cli, cliProcess, sandboxEnv, tempDir } from './helpers/cli.js';
import { httpCall } from '../testenv/http.js';
import { startFaultProxy, startStallProxy } from './helpers/fault-proxy.js';
import { freePort } from './helpers/net.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

interface TenantSpec {
  name: string;
  secrets: { path: string; fields: Record<string, string> }[];
  sa: string;
}

function planFor(tenants: TenantSpec[], mount: string): MigrationPlan {
  return {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'vault-test', cluster: sandbox().apiServer },
    tenants: tenants.map((t) => ({
      name: t.name,
      namespace: t.name,
      workloads: [
        {
          kind: 'Deployment',
          name: 'app',
          replicas: 1,
          serviceAccount: t.sa,
          status: 'pending',
          secrets: t.secrets.map((s) => ({
            source: `k8s-secret/${s.path.split('/').pop() ?? 'x'}`,
            vaultPath: `${mount}/data/${t.name}/${s.path}`,
            fields: s.fields,
          })),
        },
      ],
    })),
  };
}

async function writePlan(plan: MigrationPlan): Promise<{ dir: string; file: string }> {
  const dir = await tempDir();
  const file = join(dir, 'plan.yaml');
  await writeFile(file, renderPlan(plan));
  return { dir, file };
}

/** What apply-plan could change, read independently of the product. */
async function vaultSnapshot(authPath: string): Promise<string> {
  const mounts = (await bao('GET', 'sys/mounts')).json as {
    data: Record<string, { type: string }>;
  };
  const auths = (await bao('GET', 'sys/auth')).json as { data: Record<string, { type: string }> };
  const policies = (await bao('LIST', 'sys/policies/acl')).json as { data: { keys: string[] } };
  const roles = await bao('LIST', `auth/${authPath}/role`);
  return JSON.stringify({
    mounts: Object.keys(mounts.data).sort(),
    auths: Object.keys(auths.data).sort(),
    policies: policies.data.keys.sort(),
    roles: roles.status === 200 ? roles.json : null,
  });
}

const PLANTED = `value-${randomBytes(8).toString('hex')}`;

describe('source apply-plan', () => {
  const mount = uniqueName('kv');
  const authPath = uniqueName('k8s');
  const tA = uniqueName('ta');
  const tB = uniqueName('tb');
  const plan = planFor(
    [
      { name: tA, sa: 'app-a', secrets: [{ path: 'db', fields: { password: 'DB_PASS' } }] },
      { name: tB, sa: 'app-b', secrets: [{ path: 'api', fields: { key: 'API_KEY' } }] },
    ],
    mount,
  );
  let file = '';
  let dir = '';
  const args = () => ['--kv-mount', mount, '--auth-path', authPath];

  beforeAll(async () => {
    ({ file, dir } = await writePlan(plan));
  });

  it("dry-run prints the guide's sections and changes nothing", async () => {
    const before = await vaultSnapshot(authPath);
    const r = await cli(['source', 'apply-plan', file, '--dry-run', ...args()], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `Applying plan "vault-test" to ${sandbox().baoAddr}`,
        '(dry-run mode -- no changes will be made)',
        '',
        'Would ensure KV mount:',
        `  ${mount} (ensure mounted)`,
        '',
        'Would enable auth method:',
        `  ${authPath} (kubernetes)`,
        '',
        'Would create policies:',
        `  ${tA}-read@${authPath}`,
        `  ${tB}-read@${authPath}`,
        '',
        'Would create roles:',
        `  ${tA}-role`,
        `  ${tB}-role`,
        '',
        'Re-run without --dry-run to execute.',
        '',
      ].join('\n'),
    );
    expect(await vaultSnapshot(authPath)).toBe(before);

    const verbose = await cli(['source', 'apply-plan', file, '--dry-run', '-v', ...args()]);
    expect(verbose.stdout).toContain(`path "${mount}/data/${tA}/db" {`);
    expect(verbose.stdout).toContain('"token_policies": [');
  });

  it('creates mount, auth method, policies and roles; a second run writes nothing', async () => {
    const r = await cli(['source', 'apply-plan', file, ...args()], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`  ${mount} (created, KV v2)`);
    expect(r.stdout).toContain(`  ${authPath} (enabled)`);
    expect(r.stdout).toContain('Done: 6 changes written.');
    // The new auth method has no config: say exactly how to finish it.
    expect(r.stderr).toContain(`bao write auth/${authPath}/config \\`);
    expect(r.stderr).toContain(`kubernetes_host=${sandbox().apiServer} \\`);

    const mounts = (await bao('GET', 'sys/mounts')).json as {
      data: Record<string, { type: string; options: { version: string } }>;
    };
    expect(mounts.data[`${mount}/`]).toMatchObject({ type: 'kv', options: { version: '2' } });
    const auths = (await bao('GET', 'sys/auth')).json as { data: Record<string, { type: string }> };
    expect(auths.data[`${authPath}/`]?.type).toBe('kubernetes');
    const policy = (await bao('GET', `sys/policies/acl/${tA}-read@${authPath}`)).json as {
      data: { policy: string };
    };
    // Exactly the tenant's path, read only.
    expect(policy.data.policy.match(/^path .*$/gm)).toEqual([`path "${mount}/data/${tA}/db" {`]);
    expect(policy.data.policy).toContain('capabilities = ["read"]');
    expect(policy.data.policy).not.toContain('*');
    const role = (await bao('GET', `auth/${authPath}/role/${tB}-role`)).json as {
      data: Record<string, unknown>;
    };
    expect(role.data).toMatchObject({
      bound_service_account_names: ['app-b'],
      bound_service_account_namespaces: [tB],
      token_policies: [`${tB}-read@${authPath}`],
      token_ttl: 300,
      token_max_ttl: 900,
      // Only tokens projected for vault's audience log in, never API tokens.
      audience: 'cloudtaser',
    });

    // Second run: nothing to write. A recording proxy on the wire proves
    // that only reads reached the server.
    const recorder = await startFaultProxy(sandbox().baoAddr, { faultRate: 0 });
    try {
      const again = await cli(['source', 'apply-plan', file, ...args()], {
        cwd: dir,
        env: sandboxEnv({ BAO_ADDR: recorder.url }),
      });
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(
        `Everything is up to date: KV mount ${mount}, auth method ${authPath}, 2 policies, 2 roles. Nothing written.`,
      );
      expect(recorder.requests.length).toBeGreaterThan(0);
      expect(recorder.requests.filter((r) => r.method !== 'GET')).toEqual([]);
      // Every policy in one detailed LIST (OpenBao), not one GET per policy.
      const urls = recorder.requests.map((r) => r.url);
      expect(urls).toContain('/v1/sys/policies/detailed/acl?list=true');
      expect(urls.filter((u) => u.startsWith('/v1/sys/policies/acl/'))).toEqual([]);
    } finally {
      await recorder.close();
    }

    // Drift is repaired, and only the drifted parts are rewritten.
    await bao('POST', `sys/policies/acl/${tA}-read@${authPath}`, {
      policy: 'path "*" { capabilities = ["read"] }',
    });
    await bao('POST', `auth/${authPath}/role/${tB}-role`, {
      bound_service_account_names: ['someone-else'],
    });
    // A role from before the audience existed.
    await bao('POST', `auth/${authPath}/role/${tA}-role`, { audience: '' });
    const dry = await cli(['source', 'apply-plan', file, '--dry-run', ...args()]);
    expect(dry.stdout).toContain(`Would update policies:\n  ${tA}-read@${authPath}\n`);
    expect(dry.stdout).toContain(
      `Would update roles:\n  ${tA}-role (audience)\n  ${tB}-role (bound_service_account_names)\n`,
    );
    const fix = await cli(['source', 'apply-plan', file, ...args()]);
    expect(fix.stdout).toContain('Done: 3 changes written.');
    const repaired = (await bao('GET', `auth/${authPath}/role/${tA}-role`)).json as {
      data: { audience: string };
    };
    expect(repaired.data.audience).toBe('cloudtaser');
    const fixed = (await bao('GET', `sys/policies/acl/${tA}-read@${authPath}`)).json as {
      data: { policy: string };
    };
    expect(fixed.data.policy).not.toContain('path "*"');
  });

  it('refuses a KV v1 mount or another engine at --kv-mount, with advice', async () => {
    const v1 = uniqueName('kvone');
    await bao('POST', `sys/mounts/${v1}`, { type: 'kv', options: { version: '1' } });
    const r = await cli(['source', 'apply-plan', file, '--kv-mount', v1, '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mount ${v1}/ is KV version 1; cloudtaser needs KV v2`);
    expect(r.stderr).toContain(`bao kv enable-versioning ${v1}/`);

    const transit = uniqueName('transit');
    await bao('POST', `sys/mounts/${transit}`, { type: 'transit' });
    const t = await cli(['source', 'apply-plan', file, '--kv-mount', transit]);
    expect(t.code).toBe(2);
    expect(t.stderr).toContain(`mount ${transit}/ is a transit engine, not a KV v2 secrets engine`);
  });

  it('explains a 403 as the capability the token lacks (exit 3), never printing the token', async () => {
    const policy = uniqueName('ro');
    await bao('POST', `sys/policies/acl/${policy}`, {
      policy: [
        'path "sys/mounts" { capabilities = ["read"] }',
        'path "sys/auth" { capabilities = ["read"] }',
        'path "sys/policies/acl" { capabilities = ["list"] }',
        'path "sys/policies/acl/*" { capabilities = ["read"] }',
        'path "auth/+/role/*" { capabilities = ["read", "list"] }',
        'path "auth/+/config" { capabilities = ["read"] }',
      ].join('\n'),
    });
    const tok = (await bao('POST', 'auth/token/create', { policies: [policy], ttl: '10m' }))
      .json as {
      auth: { client_token: string };
    };
    const limited = tok.auth.client_token;
    const other = planFor(
      [{ name: uniqueName('tc'), sa: 'x', secrets: [{ path: 'p', fields: { a: 'A' } }] }],
      'secret',
    );
    const { file: f2 } = await writePlan(other);
    const r = await cliProcess(['--debug', 'source', 'apply-plan', f2, '--kv-mount', 'secret'], {
      env: sandboxEnv({ BAO_TOKEN: limited }),
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error: the token cannot update sys\/policies\/acl\/\S+-read \(403/);
    expect(r.stderr).toContain('bao token capabilities sys/policies/acl/');
    expect(r.stdout + r.stderr).not.toContain(limited);
    expect(r.stderr).toContain('debug: vault POST /v1/sys/policies/acl/');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('least privilege, proven with real logins', () => {
  it("a tenant's role takes only tokens for vault's audience, reads its own paths and gets 403 on another tenant's", async () => {
    const core = kubeConfig().makeApiClient(CoreV1Api);
    const tA = uniqueName('la');
    const tB = uniqueName('lb');
    for (const t of [tA, tB]) {
      await core.createNamespace({ body: { metadata: { name: t } } });
      await core.createNamespacedServiceAccount({
        namespace: t,
        body: { metadata: { name: 'app' } },
      });
    }
    const plan = planFor(
      [
        { name: tA, sa: 'app', secrets: [{ path: 'db', fields: { password: 'DB_PASS' } }] },
        { name: tB, sa: 'app', secrets: [{ path: 'db', fields: { password: 'DB_PASS' } }] },
      ],
      'secret',
    );
    const { file } = await writePlan(plan);
    const r = await cli(['source', 'apply-plan', file]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('has no configuration');
    for (const t of [tA, tB]) {
      await bao('POST', `secret/data/${t}/db`, { data: { password: PLANTED } });
    }
    // As the webhook's projected volume gets it: for vault's audience.
    const jwt = async (ns: string, audiences = ['cloudtaser']): Promise<string> => {
      const tr = await core.createNamespacedServiceAccountToken({
        name: 'app',
        namespace: ns,
        body: { spec: { audiences, expirationSeconds: 600 } },
      });
      return tr.status?.token ?? '';
    };
    // The pod's Kubernetes-API token (the API server's default audience) is
    // refused: the role requires the audience the webhook projects.
    const apiToken = await bao('POST', 'auth/kubernetes/login', {
      role: `${tA}-role`,
      jwt: await jwt(tA, []),
    });
    expect(apiToken.status).toBe(403);
    const login = await bao('POST', 'auth/kubernetes/login', {
      role: `${tA}-role`,
      jwt: await jwt(tA),
    });
    expect(login.status).toBe(200);
    const auth = (
      login.json as { auth: { client_token: string; policies: string[]; lease_duration: number } }
    ).auth;
    expect(auth.policies.sort()).toEqual(['default', `${tA}-read`]);
    expect(auth.lease_duration).toBe(300);
    const own = await bao('GET', `secret/data/${tA}/db`, undefined, auth.client_token);
    expect(own.status).toBe(200);
    const foreign = await bao('GET', `secret/data/${tB}/db`, undefined, auth.client_token);
    expect(foreign.status).toBe(403);
    // Nor may it list or write its own path.
    expect(
      (await bao('POST', `secret/data/${tA}/db`, { data: { x: 'y' } }, auth.client_token)).status,
    ).toBe(403);
    // Tenant B's service account cannot use tenant A's role.
    const cross = await bao('POST', 'auth/kubernetes/login', {
      role: `${tA}-role`,
      jwt: await jwt(tB),
    });
    expect(cross.status).toBe(403);
  });
});

describe('source verify-plan', () => {
  const tenant = uniqueName('ver');
  const plan = planFor(
    [
      {
        name: tenant,
        sa: 'app',
        secrets: [
          { path: 'ready', fields: { username: 'DB_USER', password: 'DB_PASS' } },
          { path: 'absent', fields: { key: 'KEY' } },
          { path: 'partial', fields: { username: 'P_USER', password: 'P_PASS' } },
          { path: 'destroyed', fields: { a: 'A' } },
          { path: 'deleted', fields: { b: 'B' } },
        ],
      },
    ],
    'secret',
  );

  beforeAll(async () => {
    const put = (p: string, data: Record<string, string>) =>
      bao('POST', `secret/data/${tenant}/${p}`, { data });
    await put('ready', { username: 'u', password: PLANTED });
    await put('partial', { username: 'u' });
    await put('destroyed', { a: PLANTED });
    await bao('PUT', `secret/destroy/${tenant}/destroyed`, { versions: [1] });
    await put('deleted', { b: PLANTED });
    await bao('DELETE', `secret/data/${tenant}/deleted`);
  });

  it('reports ready, missing path, missing field, destroyed and deleted versions; exit 1', async () => {
    const { file, dir } = await writePlan(plan);
    const r = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir });
    expect(file).toContain(dir);
    expect(r.stdout).toBe(
      [
        'Plan Verification: plan.yaml',
        '========================================',
        '',
        `Tenant: ${tenant} (namespace: ${tenant})`,
        '  app:',
        `    ✓ secret/data/${tenant}/ready -- exists, 2 field(s) populated`,
        `    ✗ secret/data/${tenant}/absent -- path not found`,
        `    ✗ secret/data/${tenant}/partial -- exists, missing field(s): password`,
        `    ✗ secret/data/${tenant}/destroyed -- latest version (v1) is destroyed`,
        `    ✗ secret/data/${tenant}/deleted -- latest version (v1) is deleted`,
        '',
        'Result: 1/5 secrets ready. 4 need(s) attention.',
        '',
      ].join('\n'),
    );
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).not.toContain(PLANTED);

    const json = await cli(['source', 'verify-plan', 'plan.yaml', '-o', 'json'], { cwd: dir });
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as {
      ready: number;
      total: number;
      tenants: {
        workloads: { secrets: { vaultPath: string; ready: boolean; missingFields: string[] }[] }[];
      }[];
    };
    expect(report.ready).toBe(1);
    expect(report.total).toBe(5);
    expect(report.tenants[0]?.workloads[0]?.secrets[2]?.missingFields).toEqual(['password']);
  });

  it('exits 0 when every secret is ready, and 2 for a bad plan', async () => {
    const only = planFor(
      [{ name: tenant, sa: 'app', secrets: [{ path: 'ready', fields: { password: 'DB_PASS' } }] }],
      'secret',
    );
    const { dir } = await writePlan(only);
    const r = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Result: 1/1 secrets ready.\n');
    await writeFile(join(dir, 'bad.yaml'), 'apiVersion: cloudtaser.io/v1\nkind: MigrationPlan\n');
    const bad = await cli(['source', 'verify-plan', 'bad.yaml'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad.yaml:1:1: metadata: required key is missing');
  });

  it('is a server error (exit 3) when OpenBao is unreachable', async () => {
    const { dir } = await writePlan(plan);
    const r = await cliProcess(
      ['source', 'verify-plan', 'plan.yaml', '--openbao-addr', 'http://127.0.0.1:1'],
      { cwd: dir },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot reach OpenBao/Vault at http://127.0.0.1:1 (ECONNREFUSED)');
  });

  it('gives up on an OpenBao that stops answering after --request-timeout, without retrying (exit 3)', async () => {
    const { dir } = await writePlan(plan);
    const proxy = await startStallProxy(sandbox().baoAddr);
    try {
      proxy.stall();
      const started = Date.now();
      const r = await cliProcess(
        [
          '--request-timeout',
          '1s',
          'source',
          'verify-plan',
          'plan.yaml',
          '--openbao-addr',
          proxy.url,
        ],
        { cwd: dir },
      );
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(`OpenBao/Vault at ${proxy.url} did not answer within 1 s`);
      expect(r.stderr).toContain('raise --request-timeout');
      // One limit, not one per retry (7 attempts would take 7 s or more).
      expect(Date.now() - started).toBeLessThan(6000);
    } finally {
      await proxy.close();
    }
  });
});

describe("the guide's Complete Example, steps 3-5, as written", () => {
  it('applies (dry run first), populates with bao kv put, and verifies', async () => {
    const info = sandbox();
    const plan = planFor(
      [
        {
          name: 'payments',
          sa: 'payment-api',
          secrets: [
            { path: 'db-credentials', fields: { username: 'DB_USER', password: 'DB_PASS' } },
          ],
        },
        {
          name: 'trading',
          sa: 'default',
          secrets: [{ path: 'api-key', fields: { key: 'API_KEY' } }],
        },
      ],
      'secret',
    );
    const { dir } = await writePlan(plan);
    const flags = ['--openbao-addr', info.baoAddr, '--token', info.baoToken];
    const dry = await cliProcess(['source', 'apply-plan', 'plan.yaml', ...flags, '--dry-run'], {
      cwd: dir,
      env: {},
    });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('Would create policies:\n  payments-read\n  trading-read\n');
    const applied = await cliProcess(['source', 'apply-plan', 'plan.yaml', ...flags], {
      cwd: dir,
      env: {},
    });
    expect(applied.code).toBe(0);
    for (const args of [
      ['kv', 'put', 'secret/payments/db-credentials', 'username=app', 'password=s3cret'],
      ['kv', 'put', 'secret/trading/api-key', 'key=ak-12345'],
    ]) {
      await new Promise<void>((resolve, reject) => {
        execFile(
          info.binaries.bao,
          args,
          { env: { BAO_ADDR: info.baoAddr, BAO_TOKEN: info.baoToken } },
          (err) => {
            if (err) reject(new Error(err.message));
            else resolve();
          },
        );
      });
    }
    const verified = await cliProcess(['source', 'verify-plan', 'plan.yaml', ...flags], {
      cwd: dir,
      env: {},
    });
    expect(verified.stdout).toContain(
      '✓ secret/data/payments/db-credentials -- exists, 2 field(s) populated',
    );
    expect(verified.stdout).toContain('Result: 2/2 secrets ready.');
    expect(verified.code).toBe(0);
    // The token passed as a flag is never echoed back.
    for (const r of [dry, applied, verified])
      expect(r.stdout + r.stderr).not.toContain(info.baoToken);
  });
});

describe('TLS', () => {
  let server: ChildProcess | undefined;
  let addr = '';
  let caFile = '';
  const token = `tls-${randomBytes(6).toString('hex')}`;

  beforeAll(async () => {
    const certDir = await tempDir('ct-tls-');
    const port = await freePort();
    server = spawn(
      sandbox().binaries.bao,
      [
        'server',
        '-dev',
        '-dev-tls',
        `-dev-tls-cert-dir=${certDir}`,
        `-dev-listen-address=127.0.0.1:${port}`,
        `-dev-root-token-id=${token}`,
        '-dev-no-store-token',
      ],
      { stdio: 'ignore', detached: true },
    );
    addr = `https://127.0.0.1:${port}`;
    caFile = join(certDir, 'vault-ca.pem');
    await eventually('the TLS OpenBao', async () => {
      try {
        const ca = await readFile(caFile, 'utf8');
        const r = await httpCall(`${addr}/v1/sys/health`, { ca });
        return r.status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    });
  });

  afterAll(() => {
    if (server?.pid) process.kill(-server.pid, 'SIGKILL');
  });

  it('verifies against --ca-cert / VAULT_CACERT and refuses an unknown CA', async () => {
    const tenant = uniqueName('tls');
    const { dir } = await writePlan(
      planFor([{ name: tenant, sa: 'a', secrets: [{ path: 'x', fields: { a: 'A' } }] }], 'secret'),
    );
    const env = { BAO_TOKEN: token };
    const ok = await cli(
      ['source', 'apply-plan', 'plan.yaml', '--openbao-addr', addr, '--ca-cert', caFile],
      { cwd: dir, env },
    );
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`Applying plan "vault-test" to ${addr}`);

    const viaEnv = await cli(['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr], {
      cwd: dir,
      env: { ...env, VAULT_CACERT: caFile },
    });
    expect(viaEnv.stdout).toContain('path not found');
    expect(viaEnv.code).toBe(1);

    const unknown = await cli(['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr], {
      cwd: dir,
      env,
    });
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/TLS verification of https:\/\/127\.0\.0\.1:\d+ failed \(\w+\)/);

    const wrongCa = await cli(
      ['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr, '--ca-cert', sandbox().caFile],
      { cwd: dir, env },
    );
    expect(wrongCa.code).toBe(3);
    expect(wrongCa.stderr).toContain('TLS verification');

    const skip = await cli(['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr], {
      cwd: dir,
      env: { ...env, VAULT_SKIP_VERIFY: 'true' },
    });
    expect(skip.code).toBe(1);
  });
});

describe('faults between the CLI and OpenBao', () => {
  it('apply-plan and verify-plan finish correctly through dropped connections and 503s', async () => {
    const proxy = await startFaultProxy(sandbox().baoAddr, {
      seed: 7,
      faultRate: 0.35,
      maxFaults: 80,
    });
    try {
      const tenants = Array.from({ length: 6 }, () => uniqueName('flt'));
      const mount = uniqueName('kvf');
      const plan = planFor(
        tenants.map((t): TenantSpec => ({
          name: t,
          sa: 'app',
          secrets: [
            { path: 'db', fields: { password: 'P' } },
            { path: 'api', fields: { key: 'K' } },
          ],
        })),
        mount,
      );
      const { dir } = await writePlan(plan);
      const env = sandboxEnv({ BAO_ADDR: proxy.url });
      const applied = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
        cwd: dir,
        env,
      });
      expect(applied.stderr).not.toContain('error:');
      expect(applied.code).toBe(0);
      // Everything landed exactly as a clean run would have made it.
      const again = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
        cwd: dir,
      });
      expect(again.stdout).toContain('Nothing written.');
      for (const t of tenants.slice(0, 3)) {
        await bao('POST', `${mount}/data/${t}/db`, { data: { password: PLANTED } });
        await bao('POST', `${mount}/data/${t}/api`, { data: { key: PLANTED } });
      }
      const verified = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir, env });
      expect(verified.stdout).toContain('Result: 6/12 secrets ready. 6 need(s) attention.');
      expect(verified.code).toBe(1);
      expect(proxy.stats.dropBefore).toBeGreaterThan(0);
      expect(proxy.stats.dropAfter).toBeGreaterThan(0);
      expect(proxy.stats.unavailable).toBeGreaterThan(0);
    } finally {
      await proxy.close();
    }
  });
});
