// `target protect` removes the pod template's references to the Secrets it
// migrated, in the patch that adds the annotations (one rollout), and
// `target unprotect` puts back exactly what was removed. Against the real
// API server and controller-manager.
import { AppsV1Api, CoreV1Api, type V1PodTemplateSpec } from '@kubernetes/client-node';
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runCli } from '../src/cli/program.js';
import { parsePlan } from '../src/plan/read.js';
import { captureContext } from '../src/testing/context.js';
import { cli, sandboxEnv, tempDir } from './helpers/cli.js';
import { eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const VAULT = 'https://vault.eu.example.com';
const PROTECT = ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'];
const UNPROTECT = ['target', 'unprotect', '--plan', 'plan.yaml', '--yes'];

function clients() {
  const kc = kubeConfig();
  return { apps: kc.makeApiClient(AppsV1Api), core: kc.makeApiClient(CoreV1Api) };
}

/** Init container, app and sidecar, each reading Secrets its own way. */
const TEMPLATE: V1PodTemplateSpec = {
  metadata: { labels: { app: 'api' }, annotations: { 'team.example.com/owner': 'payments' } },
  spec: {
    initContainers: [
      {
        name: 'migrate',
        image: 'migrate:1',
        env: [{ name: 'DB_USER', valueFrom: { secretKeyRef: { name: 'db', key: 'username' } } }],
      },
    ],
    containers: [
      {
        name: 'app',
        image: 'app:1',
        env: [
          { name: 'MODE', value: 'prod' },
          {
            name: 'DB_PASS',
            valueFrom: { secretKeyRef: { name: 'db', key: 'password', optional: true } },
          },
          // A Secret the reviewer takes out of the plan: never touched.
          { name: 'OTHER', valueFrom: { secretKeyRef: { name: 'other', key: 'x' } } },
        ],
        envFrom: [
          { secretRef: { name: 'api' } },
          { prefix: 'CFG_', configMapRef: { name: 'settings', optional: true } },
        ],
        volumeMounts: [{ name: 'certs', mountPath: '/etc/certs', readOnly: true }],
      },
      {
        name: 'sidecar',
        image: 'sidecar:1',
        // The reviewer leaves key b out of the plan: the envFrom must stay.
        envFrom: [{ prefix: 'X_', secretRef: { name: 'extra' } }],
      },
    ],
    volumes: [{ name: 'certs', secret: { secretName: 'certs' } }],
  },
};

async function setUp(prefix: string): Promise<{ ns: string; dir: string }> {
  const { core, apps } = clients();
  const ns = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  const secrets: Record<string, Record<string, string>> = {
    db: { username: 'u', password: 'p' },
    api: { token: 't' },
    other: { x: 'x' },
    extra: { a: 'a', b: 'b' },
    certs: { 'tls.crt': 'c' },
  };
  for (const [name, stringData] of Object.entries(secrets)) {
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, stringData } });
  }
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'api' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'api' } },
        template: TEMPLATE,
      },
    },
  });
  await eventually('the first ReplicaSet', async () =>
    (await replicaSets(ns)).length === 1 ? true : undefined,
  );
  const dir = await tempDir();
  const r = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd: dir });
  expect(r.code).toBe(0);
  // The reviewer's edits: `other` stays a native Secret; key b of `extra` is not migrated.
  const file = join(dir, 'plan.yaml');
  const plan = parse(await readFile(file, 'utf8')) as {
    tenants: { workloads: { secrets: { source: string; fields: Record<string, string> }[] }[] }[];
  };
  const w = plan.tenants[0]?.workloads[0];
  if (!w) throw new Error('no workload in the plan');
  w.secrets = w.secrets.filter((s) => s.source !== 'k8s-secret/other');
  const extra = w.secrets.find((s) => s.source === 'k8s-secret/extra');
  expect(extra?.fields).toEqual({ a: 'X_a', b: 'X_b' });
  if (extra) delete extra.fields.b;
  await writeFile(file, stringify(plan));
  return { ns, dir };
}

async function replicaSets(ns: string): Promise<string[]> {
  const { apps } = clients();
  const list = await apps.listNamespacedReplicaSet({ namespace: ns });
  return list.items.map((rs) => rs.metadata?.name ?? '');
}

async function read(ns: string) {
  return clients().apps.readNamespacedDeployment({ name: 'api', namespace: ns });
}

async function status(dir: string): Promise<string | undefined> {
  const { plan } = parsePlan(await readFile(join(dir, 'plan.yaml'), 'utf8'), 'plan.yaml');
  return plan.tenants[0]?.workloads[0]?.status;
}

/** Every secretKeyRef / envFrom secretRef in the template, as `container:what:secret`. */
function secretRefs(t: V1PodTemplateSpec | undefined): string[] {
  const out: string[] = [];
  for (const c of [...(t?.spec?.initContainers ?? []), ...(t?.spec?.containers ?? [])]) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) out.push(`${c.name}:env ${e.name}:${ref.name}`);
    }
    for (const e of c.envFrom ?? [])
      if (e.secretRef) out.push(`${c.name}:envFrom:${e.secretRef.name}`);
  }
  return out;
}

describe('target protect removes native Secret references', () => {
  it('in the same patch as the annotations (one rollout); unprotect restores the template exactly', async () => {
    const { ns, dir } = await setUp('nref');
    const before = await read(ns);
    expect(before.metadata?.generation).toBe(1);

    const dryRun = await cli([...PROTECT, '--dry-run'], { cwd: dir });
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toContain(
      `  would remove from Deployment ${ns}/api: env DB_USER in init container migrate, env DB_PASS in container app, envFrom Secret api in container app, volume certs`,
    );
    expect((await read(ns)).metadata?.generation).toBe(1);

    const r = await cli(PROTECT, { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `Deployment ${ns}/api: removed native Secret references: env DB_USER in init container migrate, env DB_PASS in container app, envFrom Secret api in container app, volume certs`,
    );
    expect(r.stdout).toContain(
      `Deployment ${ns}/api: kept native Secret references: envFrom Secret extra in container sidecar (keys not mapped in the plan: X_b)`,
    );
    expect(r.stdout).not.toContain('secret volume certs');
    expect(r.stdout).toContain(`Deployment ${ns}/api: injected, restarted -> migrated`);
    expect(await status(dir)).toBe('migrated');

    const after = await read(ns);
    const t = after.spec?.template;
    // Nothing reads db or api natively any more; `other` and `extra` are as they were.
    expect(secretRefs(t)).toEqual(['app:env OTHER:other', 'sidecar:envFrom:extra']);
    expect(t?.spec?.containers[0]?.env?.map((e) => e.name)).toEqual(['MODE', 'OTHER']);
    expect(t?.spec?.containers[0]?.envFrom).toEqual([
      { prefix: 'CFG_', configMapRef: { name: 'settings', optional: true } },
    ]);
    expect(t?.spec?.initContainers?.[0]?.env).toBeUndefined();
    // The plan serves every file of the certs volume: a memory emptyDir
    // takes its place (the app's mount still names it; the webhook fills it).
    expect(t?.spec?.volumes).toEqual([
      { name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
    ]);
    expect(t?.spec?.containers[0]?.volumeMounts).toEqual(
      before.spec?.template.spec?.containers[0]?.volumeMounts,
    );
    const a = t?.metadata?.annotations ?? {};
    expect(a['cloudtaser.io/inject']).toBe('true');
    expect(a['cloudtaser.io/env-map']).toContain(`secret/data/${ns}/db:password=DB_PASS`);
    expect(a['team.example.com/owner']).toBe('payments');
    // The record holds references only: no value of any Secret.
    const record = a['cloudtaser.io/native-refs'] ?? '';
    expect(JSON.parse(record)).toMatchObject({ v: 1 });
    for (const value of ['"u"', '"p"', '"t"', '"a"', '"b"', 'dQ==', 'cA==']) {
      expect(record).not.toContain(value);
    }

    // One rollout: the template changed once, and the controller made one new ReplicaSet.
    expect(after.metadata?.generation).toBe(2);
    await eventually('the controller to observe generation 2', async () =>
      (await read(ns)).status?.observedGeneration === 2 ? true : undefined,
    );
    expect(await replicaSets(ns)).toHaveLength(2);

    // A second run (say, after the plan was reset to pending) changes nothing.
    await writeFile(
      join(dir, 'plan.yaml'),
      (await readFile(join(dir, 'plan.yaml'), 'utf8')).replace(
        'status: migrated',
        'status: pending',
      ),
    );
    const again = await cli(PROTECT, { cwd: dir });
    expect(again.stdout).toContain(`Deployment ${ns}/api: already protected -> migrated`);
    expect(again.code).toBe(0);
    expect((await read(ns)).metadata?.generation).toBe(2);

    const dry = await cli([...UNPROTECT, '--dry-run'], { cwd: dir });
    expect(dry.stdout).toContain(
      `  would put back in Deployment ${ns}/api: env DB_USER in init container migrate, env DB_PASS in container app, envFrom Secret api in container app, volume certs`,
    );
    expect((await read(ns)).metadata?.generation).toBe(2);

    const u = await cli(UNPROTECT, { cwd: dir });
    expect(u.code).toBe(0);
    expect(u.stdout).toContain(
      `Deployment ${ns}/api: put back native Secret references: env DB_USER in init container migrate, env DB_PASS in container app, envFrom Secret api in container app, volume certs`,
    );
    // The six of an env-only workload, and the file-map of the certs volume.
    expect(u.stdout).toContain(`Deployment ${ns}/api: removed 7 annotation(s) -> pending`);
    const restored = await read(ns);
    expect(restored.spec?.template).toEqual(before.spec?.template);
    expect(restored.metadata?.generation).toBe(3);
    expect(await status(dir)).toBe('pending');
  });

  it('--keep-native-refs leaves them; a later run without it removes them', async () => {
    const { ns, dir } = await setUp('nkeep');
    const before = await read(ns);
    const r = await cli([...PROTECT, '--keep-native-refs'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Deployment ${ns}/api: injected, restarted -> migrated`);
    expect(r.stdout).not.toContain('native Secret references');
    const kept = await read(ns);
    expect(secretRefs(kept.spec?.template)).toEqual(secretRefs(before.spec?.template));
    expect(
      kept.spec?.template.metadata?.annotations?.['cloudtaser.io/native-refs'],
    ).toBeUndefined();
    expect(kept.metadata?.generation).toBe(2);
    const st = await cli(['target', 'status', '-n', ns], { cwd: dir });
    expect(st.stdout).toContain(
      `1 protected workload(s) still reference native Secrets (their values stay in etcd):\n  Deployment ${ns}/api: api, certs, db, extra, other\n`,
    );

    // The second step of the cut-over: the workload is set back to pending
    // and protected again without the flag.
    await writeFile(
      join(dir, 'plan.yaml'),
      (await readFile(join(dir, 'plan.yaml'), 'utf8')).replace(
        'status: migrated',
        'status: pending',
      ),
    );
    const second = await cli(PROTECT, { cwd: dir });
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(
      `Deployment ${ns}/api: removed native Secret references: env DB_USER in init container migrate, env DB_PASS in container app, envFrom Secret api in container app, volume certs`,
    );
    const removed = await read(ns);
    expect(secretRefs(removed.spec?.template)).toEqual([
      'app:env OTHER:other',
      'sidecar:envFrom:extra',
    ]);
    expect(removed.metadata?.generation).toBe(3);
    // What is left: the Secret outside the plan, and what protect kept (with its reason).
    const st2 = await cli(['target', 'status', '-n', ns, '-o', 'json'], { cwd: dir });
    expect(
      (JSON.parse(st2.stdout) as { workloads: { nativeSecrets?: string[] }[] }).workloads[0]
        ?.nativeSecrets,
    ).toEqual(['extra', 'other']);

    const u = await cli(UNPROTECT, { cwd: dir });
    expect(u.code).toBe(0);
    expect((await read(ns)).spec?.template).toEqual(before.spec?.template);
  });

  it('an entry inserted before the references after they were read: removes the right ones', async () => {
    const { core, apps } = clients();
    const ns = uniqueName('nrace');
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'db' }, stringData: { username: 'u', password: 'p' } },
    });
    for (const name of ['b1', 'b2']) {
      await apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            replicas: 0,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                containers: [
                  {
                    name: 'app',
                    image: 'app:1',
                    env: [
                      {
                        name: 'DB_USER',
                        valueFrom: { secretKeyRef: { name: 'db', key: 'username' } },
                      },
                      {
                        name: 'DB_PASS',
                        valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
                      },
                    ],
                  },
                ],
              },
            },
          },
        },
      });
    }
    const dir = await tempDir();
    expect(
      (await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd: dir })).code,
    ).toBe(0);
    // With --concurrency 1 both are listed up front and b2 is patched after
    // b1's line is printed; meanwhile someone inserts an entry at the top of
    // b2's env, so every index protect read for b2 is off by one.
    let out = '';
    let edited = false;
    const stdout = new Writable({
      write(chunk: Buffer, _enc, done) {
        const text = chunk.toString();
        if (!edited && text.includes(`${ns}/b1:`)) {
          edited = true;
          const r = spawnSync(
            sandbox().binaries.kubectl,
            [
              'patch',
              'deployment',
              'b2',
              '-n',
              ns,
              '--type=json',
              '-p=[{"op":"add","path":"/spec/template/spec/containers/0/env/0","value":{"name":"FIRST","value":"1"}}]',
            ],
            { env: { KUBECONFIG: sandbox().kubeconfig, HOME: dir }, encoding: 'utf8' },
          );
          if (r.status !== 0) throw new Error(r.stderr);
        }
        out += text;
        done();
      },
    });
    const ctx = captureContext({ cwd: dir, env: sandboxEnv(), stdout });
    const code = await runCli([...PROTECT, '--concurrency', '1'], ctx);
    expect(edited).toBe(true);
    expect(out).toContain(`Deployment ${ns}/b2: injected, restarted -> migrated`);
    expect(code).toBe(0);
    const b2 = await apps.readNamespacedDeployment({ name: 'b2', namespace: ns });
    expect(b2.spec?.template.spec?.containers[0]?.env).toEqual([{ name: 'FIRST', value: '1' }]);
    const u = await cli(UNPROTECT, { cwd: dir });
    expect(u.code).toBe(0);
    const back = await apps.readNamespacedDeployment({ name: 'b2', namespace: ns });
    expect(back.spec?.template.spec?.containers[0]?.env?.map((e) => e.name)).toEqual([
      'FIRST',
      'DB_USER',
      'DB_PASS',
    ]);
  });
});
