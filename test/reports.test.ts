// `target status`, `validate` and `audit` after a real, scripted migration,
// with every state and finding produced by a real situation.
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuditReportSchema } from '../src/report/audit-schema.js';
import { cli, sandboxEnv, tempDir } from './helpers/cli.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { bao, eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const PLANTED = `planted-${randomBytes(8).toString('hex')}`;
const nsA = uniqueName('rpa');
const nsB = uniqueName('rpb');
const nsC = uniqueName('rpc');
const nsD = uniqueName('rpd');
let dir = '';

const spec = (secret?: string): V1PodSpec => ({
  containers: [
    {
      name: 'app',
      image: 'app:1',
      ...(secret
        ? {
            env: [
              { name: 'DB_USER', valueFrom: { secretKeyRef: { name: secret, key: 'username' } } },
              { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: secret, key: 'password' } } },
            ],
          }
        : {}),
    },
  ],
});

async function deploy(ns: string, name: string, secret?: string, replicas = 1): Promise<void> {
  const apps = kubeConfig().makeApiClient(AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: spec(secret) },
      },
    },
  });
}

beforeAll(async () => {
  const core = kubeConfig().makeApiClient(CoreV1Api);
  for (const ns of [nsA, nsB, nsC, nsD]) {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    for (const s of ['db', 'db2']) {
      await core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: s }, stringData: { username: 'u', password: PLANTED } },
      });
    }
  }
  await deploy(nsA, 'good', 'db');
  await deploy(nsA, 'fieldgone', 'db2', 0);
  await deploy(nsA, 'handedit', 'db', 0);
  await deploy(nsA, 'plain');
  await deploy(nsA, 'unprot', 'db', 0);
  await deploy(nsB, 'orphan', 'db', 0);
  await deploy(nsC, 'dropped', 'db', 0);
  await deploy(nsD, 'shadowed', 'db', 0);

  // The scripted migration: discover → apply → populate → verify → protect.
  dir = await tempDir();
  for (const ns of [nsA, nsB, nsC, nsD]) {
    expect(
      (await cli(['target', 'discover', '-o', `${ns}.yaml`, '-n', ns], { cwd: dir })).code,
    ).toBe(0);
  }
  const texts = await Promise.all(
    [nsA, nsB, nsC, nsD].map((n) => readFile(join(dir, `${n}.yaml`), 'utf8')),
  );
  let plan = texts[0] ?? '';
  for (const t of texts.slice(1)) plan += t.slice(t.indexOf('tenants:\n') + 'tenants:\n'.length);
  // The reviewer excludes one workload.
  plan = plan.replace(/(name: unprot\n(?:.*\n)*?\s+status: )pending/, '$1skipped');
  await writeFile(join(dir, 'plan.yaml'), plan);
  expect((await cli(['source', 'apply-plan', 'plan.yaml'], { cwd: dir })).code).toBe(0);
  for (const ns of [nsA, nsB, nsC, nsD]) {
    for (const s of ['db', 'db2']) {
      await bao('POST', `secret/data/${ns}/${s}`, { data: { username: 'u', password: PLANTED } });
    }
  }
  expect((await cli(['source', 'verify-plan', 'plan.yaml'], { cwd: dir })).code).toBe(0);
  const p = await cli(
    ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', sandbox().baoTlsAddr, '--yes'],
    {
      cwd: dir,
    },
  );
  expect(p.code).toBe(0);

  // Then things go wrong, for real.
  await bao('DELETE', `auth/kubernetes/role/${nsB}-role`);
  await bao('POST', `sys/policies/acl/${nsC}-read`, {
    policy: 'path "secret/data/elsewhere" { capabilities = ["read"] }',
  });
  // A role as written before roles required vault's token audience.
  await bao('POST', `auth/kubernetes/role/${nsC}-role`, { audience: '' });
  // Tenant D's exact rule loses read; a glob still grants it, but OpenBao
  // applies only the exact rule to that path.
  await bao('POST', `sys/policies/acl/${nsD}-read`, {
    policy: `path "secret/data/${nsD}/db" { capabilities = ["list"] }\npath "secret/data/${nsD}/*" { capabilities = ["read"] }\n`,
  });
  await bao('POST', `secret/data/${nsA}/db2`, { data: { username: 'u' } });
  const apps = kubeConfig().makeApiClient(AppsV1Api);
  await apps.patchNamespacedDeployment({
    name: 'handedit',
    namespace: nsA,
    body: [{ op: 'remove', path: '/spec/template/metadata/annotations/cloudtaser.io~1env-map' }],
  });
  // Over-broad grants on tenant A: an extra service account and a wildcard path.
  await bao('POST', `auth/kubernetes/role/${nsA}-role`, {
    bound_service_account_names: ['default', 'intruder'],
  });
  const policy = (await bao('GET', `sys/policies/acl/${nsA}-read`)).json as {
    data: { policy: string };
  };
  await bao('POST', `sys/policies/acl/${nsA}-read`, {
    policy: `${policy.data.policy}\npath "secret/data/${nsA}/*" { capabilities = ["read", "list"] }\n`,
  });
});

describe('target status', () => {
  it('shows every protection state, rollout state and plan mismatch', async () => {
    const r = await cli(['target', 'status', '-n', nsA, '--plan', 'plan.yaml', '-o', 'json'], {
      cwd: dir,
    });
    expect(r.code).toBe(0);
    const rows = (
      JSON.parse(r.stdout) as {
        workloads: {
          name: string;
          state: string;
          rollout: string;
          plan: string;
          mismatch?: string;
          problems: string[];
        }[];
      }
    ).workloads;
    const by = Object.fromEntries(rows.map((w) => [w.name, w]));
    expect(by.good).toMatchObject({
      state: 'protected',
      rollout: 'old-template',
      plan: 'migrated',
    });
    expect(by.good?.mismatch).toBeUndefined();
    expect(by.fieldgone).toMatchObject({ state: 'protected', rollout: 'no-pods' });
    expect(by.handedit).toMatchObject({
      state: 'partial',
      problems: ['cloudtaser.io/env-map is missing'],
    });
    expect(by.handedit?.mismatch).toBe('plan says migrated, cluster shows partial');
    expect(by.unprot).toMatchObject({ state: 'unprotected', plan: 'skipped' });
    expect(by.plain).toMatchObject({ state: 'not-applicable', plan: '-' });

    const table = await cli(['target', 'status', '-n', nsA, '--plan', 'plan.yaml'], { cwd: dir });
    expect(table.stdout).toMatch(/^NAMESPACE\s+KIND\s+NAME\s+STATE\s+PODS\s+ROLLOUT\s+PLAN$/m);
    expect(table.stdout).toContain(
      'migrated (MISMATCH: plan says migrated, cluster shows partial)',
    );
    expect(table.stdout).toContain(
      '5 workload(s): 2 protected, 1 partial, 1 unprotected, 1 not applicable.',
    );
  });
});

describe('target status, pods shutting down', () => {
  it('does not count a pod that is being deleted (kubectl does not either)', async () => {
    const ns = uniqueName('rpterm');
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'db' },
        spec: {
          replicas: 1,
          serviceName: 'db',
          selector: { matchLabels: { app: 'db' } },
          template: { metadata: { labels: { app: 'db' } }, spec: spec('db') },
        },
      },
    });
    const pods = async (): Promise<string | undefined> => {
      const r = await cli(['target', 'status', '-n', ns, '-o', 'json']);
      expect(r.code).toBe(0);
      return (JSON.parse(r.stdout) as { workloads: { name: string; pods: string }[] }).workloads[0]
        ?.pods;
    };
    // The controller's pod (Pending: no node takes it), held in Terminating
    // by a finalizer once deleted.
    await eventually('the StatefulSet controller to create db-0', async () =>
      (await core.listNamespacedPod({ namespace: ns })).items.length === 1 ? true : undefined,
    );
    const hold = [{ op: 'add', path: '/metadata/finalizers', value: ['cloudtaser.test/hold'] }];
    const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
    await core.patchNamespacedPod({ name: 'db-0', namespace: ns, body: hold }, json);
    try {
      expect(await pods()).toBe('0/1 injected, 1 not Ready');
      await core.deleteNamespacedPod({ name: 'db-0', namespace: ns });
      expect(await pods()).toBe('-');
    } finally {
      await core.patchNamespacedPod(
        {
          name: 'db-0',
          namespace: ns,
          body: [{ op: 'remove', path: '/metadata/finalizers' }],
        },
        json,
      );
      await apps.deleteNamespacedStatefulSet({ name: 'db', namespace: ns });
    }
  });
});

describe('target validate', () => {
  it('finds the deleted role, the dropped path, the missing field and the hand-edited annotation', async () => {
    const r = await cli(['target', 'validate', '--vault-address', sandbox().baoAddr], { cwd: dir });
    const out = r.stdout;
    expect(out).toContain(`  ✓ Deployment ${nsA}/good: role ${nsA}-role, 1 path(s), 2 field(s)`);
    expect(out).toContain(
      `  ✗ Deployment ${nsB}/orphan: role ${nsB}-role does not exist at auth/kubernetes`,
    );
    expect(out).toContain(
      `  ✗ Deployment ${nsC}/dropped: role ${nsC}-role's policies do not grant read on secret/data/${nsC}/db`,
    );
    expect(out).toContain(
      `  ✗ Deployment ${nsC}/dropped: role ${nsC}-role sets no audience: it accepts the pods' Kubernetes-API token, not only their vault token (audience "cloudtaser"); run source apply-plan`,
    );
    expect(out).toContain(
      `  ✗ Deployment ${nsA}/fieldgone: secret/data/${nsA}/db2 has no field password (for DB_PASS)`,
    );
    expect(out).toContain(`  ✗ Deployment ${nsA}/handedit: cloudtaser.io/env-map is missing`);
    expect(r.code).toBe(1);
  });

  it('says ✗ when an exact rule without read shadows a glob that grants it, as OpenBao does', async () => {
    const path = `secret/data/${nsD}/db`;
    // What a token of that role really gets from the server.
    const token = (
      (await bao('POST', 'auth/token/create', { policies: [`${nsD}-read`], ttl: '5m' })).json as {
        auth: { client_token: string };
      }
    ).auth.client_token;
    expect((await bao('GET', path, undefined, token)).status).toBe(403);
    expect((await bao('GET', `secret/data/${nsD}/db2`, undefined, token)).status).toBe(200);
    await bao('POST', 'auth/token/revoke', { token });

    const r = await cli(['target', 'validate', '--vault-address', sandbox().baoAddr], { cwd: dir });
    expect(r.stdout).toContain(
      `  ✗ Deployment ${nsD}/shadowed: role ${nsD}-role's policies do not grant read on ${path} (the rule that applies is "${path}": list)`,
    );
    expect(r.stdout).not.toContain(`✓ Deployment ${nsD}/shadowed`);
    expect(r.code).toBe(1);
  });

  it('reports an unreachable vault as its own error (exit 3)', async () => {
    const r = await cli(['target', 'validate', '--vault-address', 'http://127.0.0.1:1'], {
      cwd: dir,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot reach OpenBao/Vault at http://127.0.0.1:1');
  });
});

describe('target audit', () => {
  it('files every finding with counts, in JSON that matches its published schema', async () => {
    const r = await cli(
      ['target', 'audit', '-n', nsA, '-o', 'json', '--vault-address', sandbox().baoAddr],
      { cwd: dir },
    );
    expect(r.code).toBe(0);
    const report = AuditReportSchema.parse(JSON.parse(r.stdout));
    expect(report.cluster.server).toBe(sandbox().apiServer);
    expect(report.cluster.kubeSystemUid).toMatch(/^[0-9a-f-]{36}$/);
    expect(report.summary).toMatchObject({
      workloads: 5,
      protected: 2,
      partial: 1,
      unprotected: 1,
      notApplicable: 1,
    });
    const codes = (subject: string) =>
      report.findings.filter((f) => f.subject === subject).map((f) => f.code);
    // protect removed its Secret references, so none is left to report.
    expect(codes(`Deployment ${nsA}/good`)).toEqual(['pods-without-init']);
    expect(codes(`Deployment ${nsA}/unprot`)).toEqual(['unprotected']);
    expect(codes(`Deployment ${nsA}/fieldgone`)).toContain('field-missing');
    const broad = report.findings
      .filter((f) => f.subject === `role ${nsA}-role`)
      .map((f) => f.message);
    expect(broad).toContain('bound to service accounts no protected workload runs as: intruder');
    expect(broad.some((m) => m.includes(`secret/data/${nsA}/* (wildcard)`))).toBe(true);
  });

  it('writes Markdown and a self-contained HTML file, changes nothing, and never shows a value', async () => {
    const recorder = await startFaultProxy(sandbox().baoAddr, { faultRate: 0 });
    const apps = kubeConfig().makeApiClient(AppsV1Api);
    const versions = async () =>
      (await apps.listNamespacedDeployment({ namespace: nsA })).items
        .map((d) => `${d.metadata?.name ?? ''}@${d.metadata?.resourceVersion ?? ''}`)
        .sort();
    const before = await versions();
    try {
      const env = sandboxEnv({ BAO_ADDR: recorder.url });
      const md = await cli(['target', 'audit', '-n', nsA], { cwd: dir, env });
      expect(md.stdout).toMatch(/^# cloudtaser audit report\n/);
      expect(md.stdout).toContain('| 5 | 2 | 0 | 1 | 1 | 1 |');
      const html = await cli(['target', 'audit', '-o', 'html', '--output-file', 'audit.html'], {
        cwd: dir,
        env,
      });
      expect(html.code).toBe(0);
      const page = await readFile(join(dir, 'audit.html'), 'utf8');
      expect(page).toMatch(/^<!doctype html>/);
      expect(page).not.toMatch(/<script|<link|src=|https?:\/\/(?!127\.0\.0\.1)[a-z]/);
      const status = await cli(['target', 'status'], { cwd: dir });
      const validate = await cli(['target', 'validate'], { cwd: dir, env });
      for (const out of [
        md.stdout,
        md.stderr,
        page,
        status.stdout,
        validate.stdout,
        validate.stderr,
      ]) {
        expect(out).not.toContain(PLANTED);
        expect(out).not.toContain(Buffer.from(PLANTED).toString('base64'));
      }
      expect(recorder.requests.length).toBeGreaterThan(0);
      expect(recorder.requests.filter((q) => q.method !== 'GET')).toEqual([]);
    } finally {
      await recorder.close();
    }
    expect(await versions()).toEqual(before);
  });
});
