// The CLI and the wrapper against a three-node OpenBao Raft cluster: the
// active node SIGKILLed at a random moment of apply-plan, verify-plan and
// import; a standby and a sealed node given as the address; the wrapper
// started during an election, and with every node down.
import { CoreV1Api } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import type { HaVault } from '../testenv/ha-vault.js';
import { httpCall } from '../testenv/http.js';
import { projectRoot } from '../testenv/paths.js';
import { cli, sandboxEnv, tempDir, type CliResult } from './helpers/cli.js';
import { haBao, startHaVaultForTest } from './helpers/ha-vault.js';
import {
  bao,
  createSecretExact,
  eventually,
  kubeConfig,
  sandbox,
  uniqueName,
} from './helpers/sandbox.js';

let ha: HaVault;
const core = (): CoreV1Api => kubeConfig().makeApiClient(CoreV1Api);

beforeAll(async () => {
  ha = await startHaVaultForTest();
}, 180_000);

afterAll(async () => {
  await ha.stop();
});

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms);
  });

/** The CLI's environment for the cluster: every node, or the one given. */
function haEnv(addr: string = ha.info.addrs.join(','), extra: NodeJS.ProcessEnv = {}) {
  return sandboxEnv({
    BAO_ADDR: addr,
    BAO_TOKEN: ha.info.token,
    BAO_CACERT: ha.info.caFile,
    ...extra,
  });
}

function planFor(prefix: string, tenants: number, mount: string): MigrationPlan {
  return {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'ha-test', cluster: sandbox().apiServer },
    tenants: Array.from({ length: tenants }, (_, i) => ({
      name: `${prefix}-${i}`,
      namespace: `${prefix}-${i}`,
      workloads: [
        {
          kind: 'Deployment' as const,
          name: 'app',
          replicas: 1,
          serviceAccount: 'app',
          status: 'pending' as const,
          secrets: [
            {
              source: 'k8s-secret/db',
              vaultPath: `${mount}/data/${prefix}-${i}/db`,
              fields: { username: 'DB_USER', password: 'DB_PASS' },
            },
          ],
        },
      ],
    })),
  };
}

async function planDir(plan: MigrationPlan): Promise<string> {
  const dir = await tempDir('ct-ha-');
  await writeFile(join(dir, 'plan.yaml'), renderPlan(plan));
  return dir;
}

type Caller = (method: string, path: string) => Promise<{ status: number; json: unknown }>;
const devBao: Caller = (m, p) => bao(m, p);
const haCaller: Caller = (m, p) => haBao(ha, m, p);

/**
 * What apply-plan provisions for the tenants named `prefix-*`, read
 * independently of the product: the mount's type and version, every policy's
 * text, every role's settings.
 */
async function provisioned(call: Caller, prefix: string, mount: string): Promise<string> {
  const mounts = (await call('GET', 'sys/mounts')).json as {
    data: Record<string, { type: string; options?: { version?: string } | null }>;
  };
  const m = mounts.data[`${mount}/`];
  const listed = async (path: string): Promise<string[]> => {
    const r = await call('GET', `${path}?list=true`);
    return ((r.json as { data?: { keys?: string[] } }).data?.keys ?? [])
      .filter((k) => k.startsWith(`${prefix}-`))
      .sort();
  };
  const policies: Record<string, unknown> = {};
  for (const name of await listed('sys/policies/acl')) {
    // OpenBao counts every write of a policy in `version`, also one that
    // changes nothing: a write whose answer the killed node never sent is
    // sent again, with the same text. The text is what must match.
    const { version: _counted, ...rest } = (
      (await call('GET', `sys/policies/acl/${name}`)).json as { data: Record<string, unknown> }
    ).data;
    policies[name] = rest;
  }
  const roles: Record<string, unknown> = {};
  for (const name of await listed('auth/kubernetes/role')) {
    roles[name] = (
      (await call('GET', `auth/kubernetes/role/${name}`)).json as { data: unknown }
    ).data;
  }
  // Timestamps differ between two servers by nature; everything else must not.
  return JSON.stringify(
    { mount: m && [m.type, m.options?.version], policies, roles },
    (k, v: unknown) => (k === 'modified' || k === 'created' ? undefined : v),
    1,
  );
}

/**
 * Runs the CLI while the active node is SIGKILLed at a random moment: once
 * `progress()` (how many of `total` writes the cluster holds) reaches a
 * random count, or, for a run that writes nothing, after a random delay
 * within `withinMs`. Then restarts that node on its data dir (unsealed).
 * The kill must land while the run is still going, or the run proved
 * nothing: that is asserted.
 */
async function underFailover(
  argv: string[],
  dir: string,
  when: { withinMs: number } | { total: number; progress: () => Promise<number> },
  env = haEnv(),
): Promise<{ r: CliResult; killedAfterMs: number; ranMs: number }> {
  const active = await ha.active();
  const started = Date.now();
  let killedAfterMs = -1;
  const run = { done: false };
  let at = '';
  const killer = (async () => {
    if ('withinMs' in when) {
      await sleep(Math.floor(Math.random() * when.withinMs));
    } else {
      // Within the first 60% of the writes, so the kill lands while the run still has work to do.
      const target = 1 + Math.floor(Math.random() * Math.floor(when.total * 0.6));
      at = ` at ${target}/${when.total} writes`;
      while (!run.done && (await when.progress().catch(() => 0)) < target) await sleep(20);
    }
    killedAfterMs = Date.now() - started;
    await ha.kill(active);
  })();
  const r = await cli(argv, { cwd: dir, env });
  const ranMs = Date.now() - started;
  run.done = true;
  await killer;
  await ha.start(active);
  await ha.active();
  console.error(
    `failover: ${argv.slice(0, 2).join(' ')} ran ${ranMs} ms, node${active} killed after ${killedAfterMs} ms${at}, exit ${r.code}`,
  );
  expect(killedAfterMs, 'the kill landed after the run had ended').toBeLessThan(ranMs);
  return { r, killedAfterMs, ranMs };
}

/** How many of the names under `path` start with `prefix-`, read from the active node. */
async function countListed(path: string, prefix: string): Promise<number> {
  const r = await haBao(ha, 'GET', `${path}?list=true`);
  return ((r.json as { data?: { keys?: string[] } } | undefined)?.data?.keys ?? []).filter((k) =>
    k.startsWith(`${prefix}-`),
  ).length;
}

/** A run that exits 3 must say why in a line a person can act on, then complete when re-run. */
function expectClearServerError(r: CliResult): void {
  expect(r.code).toBe(3);
  expect(r.stderr).toMatch(
    /cannot reach|has no active node|is sealed|no unsealed|did not answer|failed: 5\d\d/,
  );
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(r.stderr).not.toContain(ha.info.token);
}

describe('apply-plan and verify-plan while the active node is killed', () => {
  const prefix = uniqueName('haap');
  const mount = uniqueName('kvha');
  const plan = planFor(prefix, 40, mount);
  let dir = '';

  it('provisions exactly what a clean run does, and a second run writes nothing', async () => {
    dir = await planDir(plan);
    const apply = ['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount];
    const clean = await cli(apply, { cwd: dir });
    expect(clean.code, clean.stderr).toBe(0);

    const { r } = await underFailover(apply, dir, {
      // 40 policies, then 40 roles: killed after a random number of them.
      total: 80,
      progress: async () =>
        (await countListed('sys/policies/acl', prefix)) +
        (await countListed('auth/kubernetes/role', prefix)),
    });
    if (r.code !== 0) {
      expectClearServerError(r);
      const again = await cli(apply, { cwd: dir, env: haEnv() });
      expect(again.code, again.stderr).toBe(0);
    }
    expect(JSON.parse(await provisioned(haCaller, prefix, mount))).toEqual(
      JSON.parse(await provisioned(devBao, prefix, mount)),
    );
    const second = await cli(apply, { cwd: dir, env: haEnv() });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('Nothing written.');
  }, 240_000);

  it('verify-plan reports what a clean run reports', async () => {
    // The same values in both vaults, written as a person would.
    for (let i = 0; i < 40; i++) {
      const body = { data: { username: 'app', password: `pw-${i}` } };
      expect((await bao('POST', `${mount}/data/${prefix}-${i}/db`, body)).status).toBe(200);
      expect((await haBao(ha, 'POST', `${mount}/data/${prefix}-${i}/db`, body)).status).toBe(200);
    }
    const verify = ['source', 'verify-plan', 'plan.yaml', '-o', 'json'];
    const clean = await cli(verify, { cwd: dir });
    expect(clean.code, clean.stderr).toBe(0);
    // verify-plan only reads: killed within the first half of the time a
    // clean run on the cluster takes, one read at a time so that the run
    // lasts long enough for a random moment to fall inside it.
    const oneByOne = [...verify, '--concurrency', '1'];
    const t = Date.now();
    expect((await cli(oneByOne, { cwd: dir, env: haEnv() })).code).toBe(0);
    const { r } = await underFailover(oneByOne, dir, { withinMs: (Date.now() - t) * 0.5 });
    let out = r;
    if (r.code !== 0) {
      expectClearServerError(r);
      out = await cli(verify, { cwd: dir, env: haEnv() });
      expect(out.code, out.stderr).toBe(0);
    }
    const norm = (s: string): string =>
      s.replaceAll(sandbox().baoAddr, 'VAULT').replaceAll(ha.info.addrs.join(','), 'VAULT');
    expect(norm(out.stdout)).toBe(norm(clean.stdout));
  }, 240_000);

  it('with only the active node as the address: exit 3 naming it, then a re-run completes', async () => {
    const more = planFor(uniqueName('haone'), 30, mount);
    const d = await planDir(more);
    const active = await ha.active();
    const only = ha.info.addrs[active] ?? '';
    // Killed before the first request: the run can only fail, and must say where.
    await ha.kill(active);
    const r = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
      cwd: d,
      env: haEnv(only, { CLOUDTASER_VAULT_RETRY: '2s' }),
    });
    expectClearServerError(r);
    expect(r.stderr).toContain(`cannot reach OpenBao/Vault at ${only} (ECONNREFUSED)`);
    await ha.start(active);
    await ha.active();
    const again = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
      cwd: d,
      env: haEnv(only),
    });
    expect(again.code, again.stderr).toBe(0);
  }, 240_000);
});

describe('target import while the active node is killed', () => {
  const prefix = uniqueName('haim');
  const mount = uniqueName('kvhai');
  const tenants = 30;
  const plan = planFor(prefix, tenants, mount);
  const values = Array.from({ length: tenants }, () => randomBytes(9).toString('hex'));

  beforeAll(async () => {
    for (let i = 0; i < tenants; i++) {
      await core().createNamespace({ body: { metadata: { name: `${prefix}-${i}` } } });
      await createSecretExact(`${prefix}-${i}`, 'db', [
        ['username', 'app'],
        ['password', values[i] ?? ''],
      ]);
    }
  }, 120_000);

  afterAll(async () => {
    for (let i = 0; i < tenants; i++) {
      await core()
        .deleteNamespace({ name: `${prefix}-${i}` })
        .catch(() => undefined);
    }
  });

  it('fills every path exactly once (version 1), or exits 3 and completes on re-run', async () => {
    const dir = await planDir(plan);
    const apply = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
      cwd: dir,
      env: haEnv(),
    });
    expect(apply.code, apply.stderr).toBe(0);
    const imp = ['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes'];
    // One write at a time: at the default concurrency the 30 writes took
    // 400 ms on a quiet machine, less than the progress poll needed to see
    // its target count, and the kill landed after the run.
    const { r } = await underFailover([...imp, '--concurrency', '1'], dir, {
      total: tenants,
      progress: () => countListed(`${mount}/metadata`, prefix),
    });
    if (r.code !== 0) {
      expectClearServerError(r);
      const again = await cli(imp, { cwd: dir, env: haEnv() });
      expect(again.code, again.stdout + again.stderr).toBe(0);
    }
    for (let i = 0; i < tenants; i++) {
      const meta = (await haBao(ha, 'GET', `${mount}/metadata/${prefix}-${i}/db`)).json as {
        data: { current_version: number; versions: Record<string, unknown> };
      };
      expect(meta.data.current_version, `${prefix}-${i}`).toBe(1);
      expect(Object.keys(meta.data.versions)).toEqual(['1']);
      const data = (await haBao(ha, 'GET', `${mount}/data/${prefix}-${i}/db`)).json as {
        data: { data: Record<string, string> };
      };
      expect(data.data.data).toEqual({ username: 'app', password: values[i] });
    }
    // A re-run finds everything there and writes nothing.
    const rerun = await cli(imp, { cwd: dir, env: haEnv() });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toContain(`0 created, 0 overwritten, 0 merged, ${tenants} kept`);
  }, 240_000);
});

describe('a standby or a sealed node as the address', () => {
  const prefix = uniqueName('hasb');
  const mount = uniqueName('kvhas');

  it('works through a standby: its writes are forwarded and its reads see them', async () => {
    const [standby] = await ha.standbys();
    expect(standby).toBeDefined();
    const addr = ha.info.addrs[standby ?? 0] ?? '';
    const dir = await planDir(planFor(prefix, 5, mount));
    const env = haEnv(addr);
    const apply = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
      cwd: dir,
      env,
    });
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.stdout).toContain('Done:');
    for (let i = 0; i < 5; i++) {
      await haBao(ha, 'POST', `${mount}/data/${prefix}-${i}/db`, {
        data: { username: 'u', password: 'p' },
      });
    }
    // Written by another client: a standby serves reads from its replica,
    // which applies them a moment later (eventual consistency across clients).
    const ca = await readFile(ha.info.caFile, 'utf8');
    await eventually('the standby to replicate the values', async () => {
      const r = await httpCall(`${addr}/v1/${mount}/data/${prefix}-4/db`, {
        ca,
        headers: { 'x-vault-token': ha.info.token },
      });
      return r.status === 200 ? true : undefined;
    });
    const verify = await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir, env });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(await provisioned(haCaller, prefix, mount)).toContain(`${prefix}-4-role`);
  }, 120_000);

  it('says which node is sealed (exit 3), and fails over to an unsealed one when given several', async () => {
    const [standby] = await ha.standbys();
    const s = standby ?? 0;
    const addr = ha.info.addrs[s] ?? '';
    await ha.kill(s);
    await ha.start(s, { unseal: false });
    try {
      const dir = await planDir(planFor(prefix, 5, mount));
      const r = await cli(['source', 'verify-plan', 'plan.yaml'], {
        cwd: dir,
        env: haEnv(addr),
      });
      console.error(r.stdout, r.stderr);
      expect(r.code).toBe(3);
      expect(r.stdout + r.stderr).toContain(`OpenBao/Vault node ${addr} is sealed`);
      expect(r.stdout + r.stderr).toContain('bao operator unseal');
      // The sealed node first in the list: the run moves on to the others.
      const others = ha.info.addrs.filter((a) => a !== addr);
      const all = await cli(['source', 'verify-plan', 'plan.yaml'], {
        cwd: dir,
        env: haEnv([addr, ...others].join(',')),
      });
      expect(all.code, all.stderr).toBe(0);
    } finally {
      await ha.unseal(s);
    }
  }, 120_000);
});

describe('the wrapper against the cluster', () => {
  const ns = uniqueName('hawr');
  const mount = uniqueName('kvhaw');
  const wrapper = join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper');
  const value = `v-${randomBytes(8).toString('hex')}`;
  let tokenFile = '';

  beforeAll(async () => {
    const plan: MigrationPlan = {
      apiVersion: 'cloudtaser.io/v1',
      kind: 'MigrationPlan',
      metadata: { name: 'ha-wrapper' },
      tenants: [
        {
          name: ns,
          namespace: ns,
          workloads: [
            {
              kind: 'Deployment',
              name: 'app',
              serviceAccount: 'app',
              status: 'pending',
              secrets: [
                {
                  source: 'k8s-secret/db',
                  vaultPath: `${mount}/data/${ns}/db`,
                  fields: { password: 'DB_PASS' },
                },
              ],
            },
          ],
        },
      ],
    };
    const dir = await planDir(plan);
    const apply = await cli(['source', 'apply-plan', 'plan.yaml', '--kv-mount', mount], {
      cwd: dir,
      env: haEnv(),
    });
    expect(apply.code, apply.stderr).toBe(0);
    await haBao(ha, 'POST', `${mount}/data/${ns}/db`, { data: { password: value } });
    await core().createNamespace({ body: { metadata: { name: ns } } });
    await core().createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'app' } },
    });
    const tr = await core().createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'app',
      body: { spec: { audiences: ['cloudtaser'], expirationSeconds: 3600 } },
    });
    tokenFile = join(dir, 'token');
    await writeFile(tokenFile, tr.status?.token ?? '', { mode: 0o600 });
  }, 120_000);

  afterAll(async () => {
    await core()
      .deleteNamespace({ name: ns })
      .catch(() => undefined);
  });

  function runWrapper(
    addr: string,
    retry: string,
  ): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
    const started = Date.now();
    return new Promise((resolve) => {
      execFile(
        wrapper,
        ['sh', '-c', `test "$DB_PASS" = '${value}' && echo app-started`],
        {
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            VAULT_ADDR: addr,
            VAULT_CACERT: ha.info.caFile,
            VAULT_AUTH_ROLE: `${ns}-role`,
            CLOUDTASER_ENV_MAP: `${mount}/data/${ns}/db:password=DB_PASS`,
            CLOUDTASER_SA_TOKEN_FILE: tokenFile,
            CLOUDTASER_VAULT_RETRY: retry,
          },
          timeout: 120_000,
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ code, stdout, stderr, ms: Date.now() - started });
        },
      );
    });
  }

  it('started during an election (active node just killed), logs in within its retry window', async () => {
    const active = await ha.active();
    const [standby] = (await ha.standbys()).filter((i) => i !== active);
    const addr = ha.info.addrs[standby ?? 0] ?? '';
    await ha.kill(active);
    const r = await runWrapper(addr, '30s');
    await ha.start(active);
    await ha.active();
    console.error(`wrapper during election: exit ${r.code} after ${r.ms} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('app-started');
  }, 120_000);

  it('with every node down, fails closed with one log line saying so', async () => {
    for (let i = 0; i < ha.info.addrs.length; i++) await ha.kill(i);
    const r = await runWrapper(ha.info.addrs[0] ?? '', '2s');
    expect(r.code).not.toBe(0);
    expect(r.stdout).not.toContain('app-started');
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `not starting sh: cannot reach vault at ${ha.info.addrs[0] ?? ''} \\(.*connection refused, retried for [\\d.]+s\\)`,
      ),
    );
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(r.ms).toBeLessThan(15_000);
    await Promise.all(ha.info.addrs.map((_, i) => ha.start(i)));
    await ha.active();
  }, 180_000);
});
