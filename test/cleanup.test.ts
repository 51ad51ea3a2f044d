// `target cleanup` against the real API server and the real OpenBao: Secrets
// and their referrers created in the sandbox, values put in a fresh KV v2 mount.
import {
  BatchV1Api,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Api,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import type { MigrationPlan } from '../src/plan/schema.js';
import { renderPlan } from '../src/plan/write.js';
import { AuditReportSchema, type AuditReport } from '../src/report/audit-schema.js';
import { captureContext } from '../src/testing/context.js';
import { cli, sandboxEnv, tempDir, type CliResult } from './helpers/cli.js';
import { bao, eventually, kubeClients, kubeConfig, uniqueName } from './helpers/sandbox.js';

/** A value that must never leave the Secret and vault: searched for in every output. */
const PLANTED = `planted-${randomBytes(12).toString('hex')}`;

const ns = uniqueName('clean');
const mount = uniqueName('kvclean');
const outputs: CliResult[] = [];
let core: CoreV1Api;

const path = (p: string): string => `${mount}/data/${ns}/${p}`;

type Secrets = MigrationPlan['tenants'][number]['workloads'][number]['secrets'];
const ref = (secret: string, fields: string[]): Secrets[number] => ({
  source: `k8s-secret/${secret}`,
  vaultPath: path(secret),
  fields: Object.fromEntries(fields.map((f) => [f, f.replace(/\W/g, '_').toUpperCase()])),
});

async function planDir(secrets: Secrets): Promise<string> {
  const plan: MigrationPlan = {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'cleanup-test' },
    tenants: [
      {
        name: ns,
        namespace: ns,
        // One workload per Secret: env var names must be unique within a workload.
        workloads: secrets.map((s, i) => ({
          kind: 'Deployment' as const,
          name: `app-${i}`,
          serviceAccount: 'default',
          status: 'migrated' as const,
          secrets: [s],
        })),
      },
    ],
  };
  const dir = await tempDir('ct-cleanup-');
  await writeFile(join(dir, 'plan.yaml'), renderPlan(plan));
  return dir;
}

async function run(args: string[], dir: string): Promise<CliResult> {
  const r = await cli(['target', 'cleanup', '--plan', 'plan.yaml', ...args], { cwd: dir });
  outputs.push(r);
  return r;
}

async function createSecret(name: string, data: Record<string, string>, type = 'Opaque') {
  await core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name },
      type,
      data: Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
    },
  });
}

async function put(secret: string, data: Record<string, string>): Promise<void> {
  const r = await bao('POST', `${mount}/data/${ns}/${secret}`, { data });
  expect(r.status).toBe(200);
}

async function exists(name: string): Promise<boolean> {
  try {
    await core.readNamespacedSecret({ name, namespace: ns });
    return true;
  } catch (e) {
    if ((e as { code?: number }).code === 404) return false;
    throw e;
  }
}

const MAIN = ['done', 'cron', 'partial', 'differs', 'extra', 'sa-token', 'never-created'];

beforeAll(async () => {
  core = kubeClients().core;
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const m = await bao('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
  expect(m.status).toBe(204);

  await createSecret('done', { user: 'app', pass: PLANTED });
  await put('done', { user: 'app', pass: PLANTED });
  await createSecret('cron', { key: 'k-1' });
  await put('cron', { key: 'k-1' });
  await createSecret('partial', { user: 'u', pass: 'p' });
  await put('partial', { user: 'u' });
  await createSecret('differs', { token: 'rotated-in-cluster' });
  await put('differs', { token: 'old-in-vault' });
  await createSecret('extra', { a: 'x', b: 'y' });
  await put('extra', { a: 'x' });
  await createSecret('race', { k: 'v' });
  await put('race', { k: 'v' });
  await createSecret('late', { k: 'v' });
  await put('late', { k: 'v' });

  // A token Secret the token controller fills; vault is given every one of
  // its values, so only its type stands between it and deletion.
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'bot' } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: 'sa-token', annotations: { 'kubernetes.io/service-account.name': 'bot' } },
      type: 'kubernetes.io/service-account-token',
    },
  });
  const token = await eventually('the token controller to fill sa-token', async () => {
    const s = await core.readNamespacedSecret({ name: 'sa-token', namespace: ns });
    return s.data?.token ? s.data : undefined;
  });
  await put(
    'sa-token',
    Object.fromEntries(
      Object.entries(token).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    ),
  );

  // A protected workload reading `done` from vault, with no native reference
  // left: the audit counts `done` as a native Secret still holding its values.
  await kubeClients().apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'shop' },
      spec: {
        selector: { matchLabels: { app: 'shop' } },
        template: {
          metadata: {
            labels: { app: 'shop' },
            annotations: {
              'cloudtaser.io/inject': 'true',
              'cloudtaser.io/vault-address': 'https://vault.example:8200',
              'cloudtaser.io/vault-role': `${ns}-role`,
              'cloudtaser.io/secret-paths': path('done'),
              'cloudtaser.io/env-map': `${path('done')}:user=DB_USER,${path('done')}:pass=DB_PASS`,
            },
          },
          spec: { containers: [{ name: 'app', image: 'busybox', command: ['sleep', '1d'] }] },
        },
      },
    },
  });

  await kubeConfig()
    .makeApiClient(BatchV1Api)
    .createNamespacedCronJob({
      namespace: ns,
      body: {
        metadata: { name: 'nightly' },
        spec: {
          schedule: '0 3 * * *',
          jobTemplate: {
            spec: {
              template: {
                spec: {
                  restartPolicy: 'Never',
                  containers: [
                    {
                      name: 'c',
                      image: 'busybox',
                      env: [
                        { name: 'KEY', valueFrom: { secretKeyRef: { name: 'cron', key: 'key' } } },
                      ],
                    },
                  ],
                },
              },
            },
          },
        },
      },
    });
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
  await bao('DELETE', `sys/mounts/${mount}`);
});

const mainPlan = () =>
  planDir([
    ref('done', ['user', 'pass']),
    ref('cron', ['key']),
    ref('partial', ['user', 'pass']),
    ref('differs', ['token']),
    ref('extra', ['a']),
    ref('sa-token', ['token', 'ca.crt', 'namespace']),
    ref('never-created', ['x']),
  ]);

/**
 * `target cleanup --interactive` with a plan of one Secret: `meanwhile` runs
 * once the question is on screen, then `answer` is typed.
 */
async function interactive(
  dir: string,
  secret: string,
  meanwhile: () => Promise<unknown>,
  answer = 'y',
): Promise<CliResult> {
  const ctx = captureContext({ cwd: dir, env: sandboxEnv() });
  const done = runCli(['target', 'cleanup', '--plan', 'plan.yaml', '--interactive'], ctx);
  await eventually('the prompt', () =>
    Promise.resolve(ctx.out().includes(`Delete Secret ${ns}/${secret}? [y/N] `) ? true : undefined),
  );
  await meanwhile();
  (ctx.stdin as PassThrough).write(`${answer}\n`);
  const code = await done;
  const r = { code, stdout: ctx.out(), stderr: ctx.err() };
  outputs.push(r);
  return r;
}

/** `target audit` of the test namespace, as JSON. */
async function audit(): Promise<AuditReport> {
  const r = await cli(['target', 'audit', '-n', ns, '-o', 'json'], { cwd: await tempDir() });
  outputs.push(r);
  expect(r.stderr).toBe('');
  return AuditReportSchema.parse(JSON.parse(r.stdout));
}

describe('target cleanup', () => {
  it('before cleanup, the audit counts the native Secret still holding migrated values', async () => {
    const report = await audit();
    expect(report.summary.nativeSecretsWithMigratedValues).toBe(1);
    expect(report.findings).toContainEqual({
      severity: 'warning',
      code: 'native-secret-remains',
      subject: `Secret ${ns}/done`,
      message: `still holds value(s) now read from vault: pass, user (${path('done')}); delete it with cloudtaser target cleanup once nothing references it`,
    });
  });

  it('a dry run (the default) lists each Secret with its verdict and deletes nothing', async () => {
    const dir = await mainPlan();
    const r = await run([], dir);
    expect(r.stdout).toContain('(dry run: nothing is deleted');
    expect(r.stdout).toContain('No backup to vault is needed');
    expect(r.stdout).toContain(
      `Secret ${ns}/done: would delete -- 2 key(s) match vault (${path('done')})`,
    );
    expect(r.stdout).toContain(`Secret ${ns}/never-created: already gone`);
    expect(r.stdout).toContain('Dry run: 1 would be deleted, 5 refused, 1 already gone.');
    expect(r.code).toBe(1);
    for (const name of MAIN.filter((n) => n !== 'never-created'))
      expect(await exists(name)).toBe(true);
  });

  it('--yes deletes only the safe Secrets and says why each other one stays', async () => {
    const dir = await mainPlan();
    const r = await run(['--yes'], dir);
    const line = (name: string): string =>
      r.stdout.split('\n').find((l) => l.startsWith(`Secret ${ns}/${name}:`)) ?? '';
    expect(line('done')).toBe(
      `Secret ${ns}/done: deleted -- 2 key(s) match vault (${path('done')})`,
    );
    expect(line('cron')).toContain(`refused -- still referenced by CronJob ${ns}/nightly (env)`);
    expect(line('partial')).toContain(
      `refused -- ${path('partial')}: exists, missing field(s): pass`,
    );
    expect(line('differs')).toContain(
      `refused -- key token differs from vault (${path('differs')})`,
    );
    expect(line('extra')).toContain('does not map, so their values are not in vault: b');
    // Vault holds every value and nothing names it: the type alone keeps it.
    expect(line('sa-token')).toBe(
      `Secret ${ns}/sa-token: refused -- type kubernetes.io/service-account-token: Kubernetes issues and revokes it with its ServiceAccount; never deleted`,
    );
    expect(r.stdout).toContain('Done: 1 deleted, 5 refused, 1 already gone, 0 failed.');
    expect(r.stderr).toContain('5 Secret(s) refused');
    expect(r.code).toBe(1);
    expect(await exists('done')).toBe(false);
    for (const name of ['cron', 'partial', 'differs', 'extra', 'sa-token', 'race'])
      expect(await exists(name)).toBe(true);

    const report = await audit();
    expect(report.summary.nativeSecretsWithMigratedValues).toBe(0);
    expect(report.findings.filter((f) => f.code === 'native-secret-remains')).toEqual([]);
  });

  it('a re-run after the deletion is a no-op: deleted Secrets read as already gone', async () => {
    const dir = await planDir([ref('done', ['user', 'pass']), ref('never-created', ['x'])]);
    const r = await run(['--yes'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Secret ${ns}/done: already gone`);
    expect(r.stdout).toContain('Done: 0 deleted, 0 refused, 2 already gone, 0 failed.');
  });

  it('refuses a Secret a CronJob still uses: exit 1, naming the CronJob', async () => {
    const dir = await planDir([ref('cron', ['key'])]);
    const r = await run(['--yes'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `Secret ${ns}/cron: refused -- still referenced by CronJob ${ns}/nightly (env)`,
    );
    expect(await exists('cron')).toBe(true);
  });

  it('does not delete a Secret changed between the check and the deletion', async () => {
    const dir = await planDir([ref('race', ['k'])]);
    // Checked and confirmed equal to vault; now someone changes it.
    const r = await interactive(dir, 'race', () =>
      core.patchNamespacedSecret(
        { name: 'race', namespace: ns, body: { stringData: { k: 'changed-after-check' } } },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
    expect(r.stdout).toContain(`Secret ${ns}/race: can be deleted -- 1 key(s) match vault`);
    expect(r.stdout).toContain('-> not deleted -- changed since it was checked');
    expect(r.code).toBe(1);
    expect(await exists('race')).toBe(true);

    // Checked again, it now differs from vault and is refused outright.
    const again = await run(['--yes'], dir);
    expect(again.stdout).toContain(`Secret ${ns}/race: refused -- key k differs from vault`);
    expect(await exists('race')).toBe(true);
  });

  it('interactively: keeps a Secret on "n", and one a pod started reading while the question was open', async () => {
    const dir = await planDir([ref('late', ['k'])]);
    const declined = await interactive(dir, 'late', () => Promise.resolve(), 'n');
    expect(declined.stdout).toContain('  -> kept');
    expect(declined.stdout).toContain(
      'Done: 0 deleted, 0 refused, 0 already gone, 1 kept, 0 failed.',
    );
    expect(declined.code).toBe(0);
    expect(await exists('late')).toBe(true);

    const r = await interactive(dir, 'late', () =>
      core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'late-reader' },
          spec: {
            containers: [
              {
                name: 'c',
                image: 'busybox',
                env: [{ name: 'K', valueFrom: { secretKeyRef: { name: 'late', key: 'k' } } }],
              },
            ],
          },
        },
      }),
    );
    expect(r.stdout).toContain(
      `  -> not deleted -- Pod ${ns}/late-reader started referencing it since the scan`,
    );
    expect(r.code).toBe(1);
    expect(await exists('late')).toBe(true);
  });

  it('never prints a value', () => {
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of outputs) {
      expect(o.stdout + o.stderr).not.toContain(PLANTED);
      expect(o.stdout + o.stderr).not.toContain(Buffer.from(PLANTED).toString('base64'));
    }
  });
});
