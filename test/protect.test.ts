// `target protect` / `target unprotect` against the real API server and
// controller-manager: annotation formats, rollouts, resumability under
// SIGKILL, a pseudo-terminal session, and a way back.
import {
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import { parsePlan } from '../src/plan/read.js';
import { captureContext } from '../src/testing/context.js';
import { projectRoot } from '../testenv/paths.js';
import { cli, cliProcess, sandboxEnv, tempDir } from './helpers/cli.js';
import { startStallProxy } from './helpers/fault-proxy.js';
import { eventually, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const VAULT = 'https://vault.eu.example.com';
/** `target protect --plan plan.yaml --vault-address VAULT --yes`, the CI form most tests run. */
const PROTECT_YES = ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'];

function clients() {
  const kc = kubeConfig();
  return { apps: kc.makeApiClient(AppsV1Api), core: kc.makeApiClient(CoreV1Api) };
}

const podSpec = (secret: string, sa?: string): V1PodSpec => ({
  ...(sa ? { serviceAccountName: sa } : {}),
  containers: [
    {
      name: 'app',
      image: 'app:1',
      env: [
        { name: 'DB_USER', valueFrom: { secretKeyRef: { name: secret, key: 'username' } } },
        { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: secret, key: 'password' } } },
      ],
    },
  ],
});

async function namespaceWithSecret(prefix: string): Promise<string> {
  const { core } = clients();
  const ns = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { username: 'u', password: 'p' } },
  });
  return ns;
}

async function deployment(
  ns: string,
  name: string,
  opts: { replicas?: number; paused?: boolean } = {},
) {
  const { apps } = clients();
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name, annotations: { 'owner.example.com/team': 'payments' } },
      spec: {
        replicas: opts.replicas ?? 1,
        paused: opts.paused ?? false,
        selector: { matchLabels: { app: name } },
        template: { metadata: { labels: { app: name } }, spec: podSpec('db') },
      },
    },
  });
}

async function replicaSets(ns: string, name: string): Promise<string[]> {
  const { apps } = clients();
  const list = await apps.listNamespacedReplicaSet({ namespace: ns });
  return list.items
    .filter((rs) => rs.metadata?.ownerReferences?.some((o) => o.name === name))
    .map((rs) => rs.metadata?.name ?? '');
}

async function discoverPlan(ns: string[]): Promise<{ dir: string; file: string }> {
  const dir = await tempDir();
  for (const n of ns) {
    const r = await cli(['target', 'discover', '-o', `${n}.yaml`, '-n', n], { cwd: dir });
    expect(r.code).toBe(0);
  }
  // One plan with every namespace's tenant.
  const texts = await Promise.all(ns.map((n) => readFile(join(dir, `${n}.yaml`), 'utf8')));
  const [first, ...rest] = texts;
  let text = first ?? '';
  for (const t of rest) text += t.slice(t.indexOf('tenants:\n') + 'tenants:\n'.length);
  await writeFile(join(dir, 'plan.yaml'), text);
  return { dir, file: join(dir, 'plan.yaml') };
}

async function statuses(file: string): Promise<Record<string, string>> {
  const { plan } = parsePlan(await readFile(file, 'utf8'), 'plan.yaml');
  return Object.fromEntries(
    plan.tenants.flatMap((t) =>
      t.workloads.map((w) => [`${t.namespace}/${w.kind}/${w.name}`, w.status]),
    ),
  );
}

describe('target protect --yes', () => {
  it('annotates pod templates with the exact formats and rolls each Deployment once', async () => {
    const ns = await namespaceWithSecret('prot');
    await deployment(ns, 'api', { replicas: 1 });
    const { apps } = clients();
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'ledger' },
        spec: {
          serviceName: 'ledger',
          replicas: 1,
          selector: { matchLabels: { app: 'ledger' } },
          template: { metadata: { labels: { app: 'ledger' } }, spec: podSpec('db', 'ledger') },
        },
      },
    });
    await apps.createNamespacedDaemonSet({
      namespace: ns,
      body: {
        metadata: { name: 'agent' },
        spec: {
          selector: { matchLabels: { app: 'agent' } },
          updateStrategy: { type: 'OnDelete' },
          template: { metadata: { labels: { app: 'agent' } }, spec: podSpec('db') },
        },
      },
    });
    await eventually('the first ReplicaSet', async () =>
      (await replicaSets(ns, 'api')).length === 1 ? true : undefined,
    );
    const { dir } = await discoverPlan([ns]);

    const r = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'],
      {
        cwd: dir,
        now: new Date('2026-04-02T08:00:00Z'),
      },
    );
    expect(r.stdout).toContain(`Deployment ${ns}/api: injected, restarted -> migrated`);
    expect(r.stdout).toContain(`StatefulSet ${ns}/ledger: injected, restarted -> migrated`);
    expect(r.stdout).toContain(
      `DaemonSet ${ns}/agent: injected, not restarted: OnDelete, so each pod keeps the old template until it is deleted`,
    );
    expect(r.stdout).toContain('Done: 3 migrated, 0 skipped, 0 left pending, 0 failed.');
    expect(r.code).toBe(0);

    const dep = await apps.readNamespacedDeployment({ name: 'api', namespace: ns });
    const path = `secret/data/${ns}/db`;
    expect(dep.spec?.template.metadata?.annotations).toEqual({
      'cloudtaser.io/inject': 'true',
      'cloudtaser.io/vault-address': VAULT,
      'cloudtaser.io/vault-role': `${ns}-role`,
      'cloudtaser.io/secret-paths': path,
      'cloudtaser.io/env-map': `${path}:password=DB_PASS,${path}:username=DB_USER`,
      'cloudtaser.io/restartedAt': '2026-04-02T08:00:00Z',
      // What the same patch removed (both env entries), for unprotect to put back.
      'cloudtaser.io/native-refs': expect.stringContaining('"list":"env"') as unknown,
    });
    expect(dep.spec?.template.spec?.containers[0]?.env).toBeUndefined();
    // The workload's own metadata is untouched.
    expect(dep.metadata?.annotations?.['cloudtaser.io/inject']).toBeUndefined();
    expect(dep.metadata?.annotations?.['owner.example.com/team']).toBe('payments');
    const sts = await apps.readNamespacedStatefulSet({ name: 'ledger', namespace: ns });
    expect(sts.spec?.template.metadata?.annotations?.['cloudtaser.io/vault-role']).toBe(
      `${ns}-role`,
    );
    const ds = await apps.readNamespacedDaemonSet({ name: 'agent', namespace: ns });
    expect(ds.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBe('true');

    // Exactly one rollout for annotations + restart: the pod template changed
    // once (generation 1 -> 2), and once the controller has observed that
    // generation it has made every ReplicaSet it will make for it.
    expect(dep.metadata?.generation).toBe(2);
    await eventually('the controller to observe generation 2', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'api', namespace: ns });
      return d.status?.observedGeneration === 2 ? d : undefined;
    });
    expect(await replicaSets(ns, 'api')).toHaveLength(2);
    expect(
      (await apps.readNamespacedDeployment({ name: 'api', namespace: ns })).metadata?.generation,
    ).toBe(2);
    expect(Object.values(await statuses(join(dir, 'plan.yaml')))).toEqual([
      'migrated',
      'migrated',
      'migrated',
    ]);

    // A second run has nothing pending and touches nothing.
    const again = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'],
      { cwd: dir },
    );
    expect(again.stdout).toContain('Nothing to do');
    expect(again.code).toBe(0);
  });

  it('filters by -n, records pending with a reason, and keeps going past failures', async () => {
    const ns1 = await namespaceWithSecret('pfa');
    const ns2 = await namespaceWithSecret('pfb');
    await deployment(ns1, 'one');
    await deployment(ns1, 'changed');
    await deployment(ns1, 'gone');
    await deployment(ns2, 'other');
    const { dir, file } = await discoverPlan([ns1, ns2]);
    const { apps } = clients();
    // After discovery, one workload stops reading the Secret and one is deleted.
    await apps.patchNamespacedDeployment({
      name: 'changed',
      namespace: ns1,
      body: [
        {
          op: 'replace',
          path: '/spec/template/spec/containers/0/env',
          value: [{ name: 'X', value: 'y' }],
        },
      ],
    });
    await apps.deleteNamespacedDeployment({ name: 'gone', namespace: ns1 });

    const r = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes', '-n', ns1],
      {
        cwd: dir,
      },
    );
    expect(r.stdout).toContain(
      `Deployment ${ns1}/changed: left pending: no longer references k8s-secret/db`,
    );
    expect(r.stdout).toContain(`Deployment ${ns1}/gone: left pending: not found in the cluster`);
    expect(r.stdout).toContain(`Deployment ${ns1}/one: injected, restarted -> migrated`);
    expect(r.stdout).not.toContain(ns2);
    expect(r.code).toBe(1);
    expect(await statuses(file)).toEqual({
      [`${ns1}/Deployment/changed`]: 'pending',
      [`${ns1}/Deployment/gone`]: 'pending',
      [`${ns1}/Deployment/one`]: 'migrated',
      [`${ns2}/Deployment/other`]: 'pending',
    });
  });

  it('re-reads and re-checks a workload that changed after the up-front listing', async () => {
    const ns = await namespaceWithSecret('pstale');
    for (const name of ['a1', 'a2', 'a3']) await deployment(ns, name, { replicas: 0 });
    const { dir, file } = await discoverPlan([ns]);
    const kubectl = (...args: string[]): void => {
      const r = spawnSync(sandbox().binaries.kubectl, [...args, '-n', ns], {
        // HOME for kubectl's discovery cache, which must not land in the work tree.
        env: { KUBECONFIG: sandbox().kubeconfig, HOME: dir },
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(r.stderr);
    };
    // With --concurrency 1, a2 and a3 are patched only after a1's line is
    // printed, long after the listing. While that line is being written
    // (synchronously, so the run cannot move on), a2 gets an unrelated change
    // and a3 stops reading the Secret: both now differ from the listed copy.
    let out = '';
    const stdout = new Writable({
      write(chunk: Buffer, _enc, done) {
        const text = chunk.toString();
        if (text.includes(`${ns}/a1:`)) {
          kubectl('label', 'deployment', 'a2', 'touched=yes');
          kubectl(
            'patch',
            'deployment',
            'a3',
            '--type=json',
            '-p=[{"op":"replace","path":"/spec/template/spec/containers/0/env","value":[{"name":"X","value":"y"}]}]',
          );
        }
        out += text;
        done();
      },
    });
    const ctx = captureContext({ cwd: dir, env: sandboxEnv(), stdout });
    const code = await runCli([...PROTECT_YES, '--concurrency', '1'], ctx);
    expect(out).toContain(`Deployment ${ns}/a1: injected, restarted -> migrated`);
    expect(out).toContain(`Deployment ${ns}/a2: injected, restarted -> migrated`);
    expect(out).toContain(`Deployment ${ns}/a3: left pending: no longer references k8s-secret/db`);
    expect(code).toBe(1);
    const { apps } = clients();
    const a3 = await apps.readNamespacedDeployment({ name: 'a3', namespace: ns });
    expect(a3.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBeUndefined();
    const a2 = await apps.readNamespacedDeployment({ name: 'a2', namespace: ns });
    expect(a2.metadata?.labels?.touched).toBe('yes');
    expect(a2.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBe('true');
    expect(await statuses(file)).toEqual({
      [`${ns}/Deployment/a1`]: 'migrated',
      [`${ns}/Deployment/a2`]: 'migrated',
      [`${ns}/Deployment/a3`]: 'pending',
    });
  });

  it('reports an API error on one workload clearly and continues with the rest (exit 3)', async () => {
    const ns = await namespaceWithSecret('perr');
    await deployment(ns, 'ok');
    const { apps } = clients();
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'locked' },
        spec: {
          serviceName: 'locked',
          selector: { matchLabels: { app: 'locked' } },
          template: { metadata: { labels: { app: 'locked' } }, spec: podSpec('db') },
        },
      },
    });
    const { dir } = await discoverPlan([ns]);
    // A user who may patch Deployments but not StatefulSets.
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'operator' } },
    });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'operator' },
        rules: [
          { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'patch'] },
          { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['get'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'operator' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'operator' },
        subjects: [{ kind: 'ServiceAccount', name: 'operator', namespace: ns }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'operator',
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const kubeconfig = join(dir, 'operator.kubeconfig');
    await writeFile(
      kubeconfig,
      (await readFile(sandbox().kubeconfig, 'utf8')).replace(
        /token: .*/,
        `token: ${tr.status?.token ?? ''}`,
      ),
    );
    // This operator may not read kube-system, so the plan's cluster cannot
    // be checked: refused, saying what to grant, unless told to go on.
    const unchecked = await cli([...PROTECT_YES, '--kubeconfig', kubeconfig], { cwd: dir });
    expect(unchecked.stderr).toContain('cannot check that context');
    expect(unchecked.stderr).toContain('--cluster-mismatch-ok');
    expect(unchecked.code).toBe(3);
    const r = await cli([...PROTECT_YES, '--kubeconfig', kubeconfig, '--cluster-mismatch-ok'], {
      cwd: dir,
    });
    expect(r.stdout).toContain(
      `StatefulSet ${ns}/locked: left pending: missing RBAC permission: cannot patch statefulsets.apps/locked in namespace ${ns}`,
    );
    expect(r.stdout).toContain(`Deployment ${ns}/ok: injected, restarted -> migrated`);
    expect(r.stderr).toContain('1 workload(s) failed');
    expect(r.code).toBe(3);
  });

  it('annotates a paused Deployment without restarting it', async () => {
    const ns = await namespaceWithSecret('ppause');
    await deployment(ns, 'paused', { paused: true });
    const { dir } = await discoverPlan([ns]);
    const r = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'],
      { cwd: dir },
    );
    expect(r.stdout).toContain(
      'not restarted: Deployment is paused (run `kubectl rollout resume` to roll)',
    );
    expect(r.code).toBe(0);
    const { apps } = clients();
    const dep = await apps.readNamespacedDeployment({ name: 'paused', namespace: ns });
    expect(dep.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBe('true');
    expect(dep.spec?.template.metadata?.annotations?.['cloudtaser.io/restartedAt']).toBeUndefined();
  });

  it('--wait follows a rollout to completion, and reports one that does not finish', async () => {
    const ns = await namespaceWithSecret('pwait');
    await deployment(ns, 'scaled-to-zero', { replicas: 0 });
    await deployment(ns, 'never-ready', { replicas: 1 });
    const { dir } = await discoverPlan([ns]);
    const r = await cli([...PROTECT_YES, '--wait', '--timeout', '3'], { cwd: dir });
    expect(r.stdout).toContain(
      `Deployment ${ns}/scaled-to-zero: injected, restarted, rolled out -> migrated`,
    );
    expect(r.stdout).toMatch(
      new RegExp(`Deployment ${ns}/never-ready rollout: \\d/1 updated, 0/1 available`),
    );
    expect(r.stderr).toContain(
      `Warning: Deployment ${ns}/never-ready: rollout not finished after 3 s`,
    );
    expect(r.code).toBe(1);
    // Protected all the same: the wait is about the rollout, not the patch.
    expect(Object.values(await statuses(join(dir, 'plan.yaml')))).toEqual(['migrated', 'migrated']);
  });

  it('--dry-run prints the patches and changes neither the cluster nor the plan', async () => {
    const ns = await namespaceWithSecret('pdry');
    await deployment(ns, 'api');
    const { dir, file } = await discoverPlan([ns]);
    const before = await readFile(file, 'utf8');
    const r = await cli(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes', '--dry-run'],
      { cwd: dir },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `would patch Deployment ${ns}/api pod template annotations: {"cloudtaser.io/inject":"true"`,
    );
    expect(await readFile(file, 'utf8')).toBe(before);
    const { apps } = clients();
    const dep = await apps.readNamespacedDeployment({ name: 'api', namespace: ns });
    expect(dep.spec?.template.metadata?.annotations).toBeUndefined();
  });

  it('stops with exit 2 instead of waiting for input when there is no terminal', async () => {
    const ns = await namespaceWithSecret('pnotty');
    await deployment(ns, 'api');
    const { dir } = await discoverPlan([ns]);
    const r = await cliProcess(
      ['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT],
      { cwd: dir },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pass --yes to approve every workload, or --interactive');
  });
});

describe('target protect --interactive', () => {
  it("answers y/n per workload in a pseudo-terminal, as in the guide's transcript", async () => {
    const ns = await namespaceWithSecret('ptty');
    await deployment(ns, 'payment-api', { replicas: 3 });
    await deployment(ns, 'zz-declined');
    const { dir, file } = await discoverPlan([ns]);
    const out = await new Promise<{ code: number; text: string }>((resolve) => {
      execFile(
        'python3',
        [
          join(projectRoot, 'test', 'fixtures', 'pty-run.py'),
          JSON.stringify([
            process.execPath,
            join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
            'target',
            'protect',
            '--plan',
            'plan.yaml',
            '--vault-address',
            VAULT,
          ]),
          JSON.stringify(['y', 'y', 'n']),
        ],
        { cwd: dir, env: { ...process.env, ...sandboxEnv() } },
        (err, stdout) => {
          resolve({ code: err ? Number(err.code) : 0, text: stdout.replace(/\r\n/g, '\n') });
        },
      );
    });
    const path = `secret/data/${ns}/db`;
    expect(out.text).toContain(
      [
        `--- Deployment ${ns}/payment-api (namespace: ${ns}, replicas: 3) ---`,
        `  k8s-secret/db -> ${path}`,
        '    password -> DB_PASS',
        '    username -> DB_USER',
        'Inject CloudTaser protection? [y/N] y',
        '  (RollingUpdate: changing the pod template rolls the pods by itself; a restart also stamps cloudtaser.io/restartedAt)',
        'Trigger rolling restart? [y/N] y',
        '  -> injected',
        '  -> restarted',
        '  -> migrated',
      ].join('\n'),
    );
    expect(out.text).toContain(
      [`--- Deployment ${ns}/zz-declined (namespace: ${ns}, replicas: 1) ---`].join('\n'),
    );
    expect(out.text).toMatch(/Inject CloudTaser protection\? \[y\/N\] n\n {2}-> skipped/);
    expect(out.code).toBe(0);
    expect(await statuses(file)).toEqual({
      [`${ns}/Deployment/payment-api`]: 'migrated',
      [`${ns}/Deployment/zz-declined`]: 'skipped',
    });
  });
});

describe('resumable under SIGKILL', () => {
  it('every workload ends migrated exactly once across ten kills at random points', async () => {
    const ns = await namespaceWithSecret('pkill');
    // Enough workloads that ten kills land before a run can finish them all:
    // a single run patches dozens in the tens of milliseconds a kill takes to land.
    const names = Array.from({ length: 120 }, (_, i) => `w${String(i).padStart(3, '0')}`);
    for (const n of names) await deployment(ns, n, { replicas: 0 });
    await eventually('first ReplicaSets', async () => {
      const { apps } = clients();
      const list = await apps.listNamespacedReplicaSet({ namespace: ns });
      return list.items.length === names.length ? true : undefined;
    });
    const { dir, file } = await discoverPlan([ns]);
    // Comments a reviewer added must survive every interrupted write.
    await writeFile(file, `# reviewed: SEC-42\n${await readFile(file, 'utf8')}`);

    let seed = 1234;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const stamps = new Map<string, string>();
    const { apps } = clients();
    const checkStamps = async (): Promise<void> => {
      const list = await apps.listNamespacedDeployment({ namespace: ns });
      for (const d of list.items) {
        const s = d.spec?.template.metadata?.annotations?.['cloudtaser.io/restartedAt'];
        const name = d.metadata?.name ?? '';
        if (s === undefined) continue;
        const prev = stamps.get(name);
        // Once stamped, never stamped again: no second restart.
        if (prev !== undefined) expect(s, name).toBe(prev);
        stamps.set(name, s);
      }
    };
    const args = [
      join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
      ...PROTECT_YES,
      '--concurrency',
      '3',
    ];
    // How many Deployments carry the annotation right now.
    const annotated = async (): Promise<number> =>
      (await apps.listNamespacedDeployment({ namespace: ns })).items.filter(
        (d) => d.spec?.template.metadata?.annotations?.['cloudtaser.io/inject'] === 'true',
      ).length;
    let kills = 0;
    /** Kills that landed while the run had patched some workloads but not all. */
    let midRun = 0;
    let journalLeft = 0;
    for (let round = 0; round < 10; round++) {
      const before = await annotated();
      if (before === names.length) break;
      const child = spawn(process.execPath, args, {
        cwd: dir,
        env: { ...process.env, ...sandboxEnv() },
        stdio: 'ignore',
      });
      let exitCode: number | null | undefined;
      const exited = new Promise<void>((resolve) =>
        child.on('exit', (code) => {
          exitCode = code;
          resolve();
        }),
      );
      // Kill once this run has patched 1-3 more workloads (a random number),
      // then after a random extra moment: mid-patch, mid-journal, mid-rename.
      const target = before + 1 + Math.floor(random() * 3);
      let now = before;
      while (exitCode === undefined && now < target) {
        await new Promise((r) => setTimeout(r, 10));
        now = await annotated();
      }
      await new Promise((r) => setTimeout(r, random() * 40));
      if (exitCode === undefined) {
        child.kill('SIGKILL');
        kills++;
        await exited;
        const after = await annotated();
        // This run had done something, and not everything, when it died.
        if (after > before && after < names.length) midRun++;
        if (existsSync(`${file}.journal`) && (await readFile(`${file}.journal`, 'utf8')) !== '')
          journalLeft++;
      } else {
        await exited;
      }
      // The plan always parses, with the reviewer's comment.
      const text = await readFile(file, 'utf8');
      expect(text.startsWith('# reviewed: SEC-42\n')).toBe(true);
      parsePlan(text, 'plan.yaml');
      await checkStamps();
    }
    expect(kills).toBeGreaterThan(3);
    expect(midRun).toBeGreaterThan(3);
    // At least one kill left records only in the journal, for the next run to replay.
    expect(journalLeft).toBeGreaterThan(0);
    const final = await cliProcess(args.slice(1), { cwd: dir });
    expect(final.code).toBe(0);
    expect(existsSync(`${file}.journal`)).toBe(false);
    expect(existsSync(`${file}.lock`)).toBe(false);
    await checkStamps();
    const st = await statuses(file);
    expect(Object.values(st).every((s) => s === 'migrated')).toBe(true);
    expect(Object.keys(st)).toHaveLength(names.length);
    expect(stamps.size).toBe(names.length);
    // Exactly one rollout each: every pod template changed once (generation 2).
    const list = await apps.listNamespacedDeployment({ namespace: ns });
    expect(list.items.map((d) => d.metadata?.generation)).toEqual(names.map(() => 2));
  }, 300_000);
});

describe('target unprotect', () => {
  it('removes exactly the annotations protect added and sets status back to pending', async () => {
    const ns = await namespaceWithSecret('punp');
    await deployment(ns, 'api');
    const { dir, file } = await discoverPlan([ns]);
    await cli(['target', 'protect', '--plan', 'plan.yaml', '--vault-address', VAULT, '--yes'], {
      cwd: dir,
    });
    const { apps } = clients();
    // Someone else's template annotation must survive.
    await apps.patchNamespacedDeployment({
      name: 'api',
      namespace: ns,
      body: [
        {
          op: 'add',
          path: '/spec/template/metadata/annotations/prometheus.io~1scrape',
          value: 'true',
        },
      ],
    });
    const dry = await cli(['target', 'unprotect', '--plan', 'plan.yaml', '--yes', '--dry-run'], {
      cwd: dir,
    });
    expect(dry.stdout).toContain(
      `would remove from Deployment ${ns}/api pod template: cloudtaser.io/inject,`,
    );
    expect((await statuses(file))[`${ns}/Deployment/api`]).toBe('migrated');
    const r = await cli(['target', 'unprotect', '--plan', 'plan.yaml', '--yes'], { cwd: dir });
    expect(r.stdout).toContain(`Deployment ${ns}/api: removed 6 annotation(s) -> pending`);
    expect(r.code).toBe(0);
    const dep = await apps.readNamespacedDeployment({ name: 'api', namespace: ns });
    expect(dep.spec?.template.metadata?.annotations).toEqual({ 'prometheus.io/scrape': 'true' });
    expect((await statuses(file))[`${ns}/Deployment/api`]).toBe('pending');
  });
});

/** Starts the built CLI as its own process; resolves its exit code and output. */
function startCli(argv: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const child = spawn(
    process.execPath,
    [join(projectRoot, 'dist', 'bin', 'cloudtaser.js'), ...argv],
    {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH, ...(opts.env ?? sandboxEnv()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string; at: number }>(
    (resolve) =>
      child.on('exit', (code) => {
        resolve({ code, stdout, stderr, at: Date.now() });
      }),
  );
  return { child, exited, out: () => stdout };
}

describe('one run per plan', () => {
  it('refuses a second run while the first holds the plan, and takes over after it is killed', async () => {
    const ns = await namespaceWithSecret('plock');
    await deployment(ns, 'never-ready', { replicas: 1 });
    await deployment(ns, 'second', { replicas: 0 });
    const { dir, file } = await discoverPlan([ns]);
    // The first run waits on a rollout that cannot finish (no kubelet runs the pods).
    const first = startCli([...PROTECT_YES, '--wait', '--timeout', '120', '--concurrency', '2'], {
      cwd: dir,
    });
    // It has recorded the quick one and is waiting on the other.
    await eventually('the first run to wait on its rollout', () =>
      Promise.resolve(
        first.out().includes('rollout:') && first.out().includes(`${ns}/second:`)
          ? true
          : undefined,
      ),
    );
    const lock = JSON.parse(await readFile(`${file}.lock`, 'utf8')) as { pid: number };
    expect(lock.pid).toBe(first.child.pid);

    const second = await cliProcess(PROTECT_YES, { cwd: dir });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(
      new RegExp(
        `plan\\.yaml is in use by another run: pid ${first.child.pid} on \\S+, started \\S+ \\(cloudtaser target protect\\)`,
      ),
    );
    expect(second.stderr).toContain('if it is no longer running, delete plan.yaml.lock');
    // The second run touched nothing: the first run's journal is still there.
    expect(existsSync(`${file}.journal`)).toBe(true);

    first.child.kill('SIGKILL');
    await first.exited;
    // The lock of a dead process is stale: the next run takes it over and finishes.
    const third = await cliProcess(PROTECT_YES, { cwd: dir });
    expect(third.code).toBe(0);
    expect(third.stdout).toContain(`Deployment ${ns}/never-ready: already protected -> migrated`);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(await statuses(file)).toEqual({
      [`${ns}/Deployment/never-ready`]: 'migrated',
      [`${ns}/Deployment/second`]: 'migrated',
    });
  });
});

describe('a journal left by a killed run', () => {
  it('is folded in before the workloads are chosen, and removed even when nothing is left', async () => {
    const ns = await namespaceWithSecret('pjournal');
    await deployment(ns, 'api');
    const { dir, file } = await discoverPlan([ns]);
    // An interactive run was killed right after the person declined the workload:
    // the plan still says pending, the journal says skipped.
    await writeFile(
      `${file}.journal`,
      `${JSON.stringify({ namespace: ns, kind: 'Deployment', name: 'api', status: 'skipped' })}\n`,
    );
    const r = await cli(PROTECT_YES, { cwd: dir });
    expect(r.stdout).toContain('Nothing to do');
    expect(r.code).toBe(0);
    expect(await statuses(file)).toEqual({ [`${ns}/Deployment/api`]: 'skipped' });
    expect(existsSync(`${file}.journal`)).toBe(false);
    // The declined workload was not touched.
    const { apps } = clients();
    const dep = await apps.readNamespacedDeployment({ name: 'api', namespace: ns });
    expect(dep.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBeUndefined();
  });
});

describe('interrupts and unresponsive servers', () => {
  it('Ctrl-C during --wait stops at once and leaves the plan consistent', async () => {
    const ns = await namespaceWithSecret('psigint');
    await deployment(ns, 'never-ready', { replicas: 1 });
    const { dir, file } = await discoverPlan([ns]);
    const run = startCli([...PROTECT_YES, '--wait', '--timeout', '600'], { cwd: dir });
    await eventually('the run to wait on the rollout', () =>
      Promise.resolve(run.out().includes('rollout:') ? true : undefined),
    );
    const sent = Date.now();
    run.child.kill('SIGINT');
    const r = await run.exited;
    expect(r.at - sent).toBeLessThan(5000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('interrupted; the plan records what was done');
    // Patched before the interrupt, so recorded as migrated; journal folded in, lock released.
    expect(r.stdout).toContain(`Deployment ${ns}/never-ready: injected, restarted -> migrated`);
    expect(await statuses(file)).toEqual({ [`${ns}/Deployment/never-ready`]: 'migrated' });
    expect(existsSync(`${file}.journal`)).toBe(false);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('discover, protect and status give up on an API server that stops answering (exit 3)', async () => {
    const ns = await namespaceWithSecret('pstall');
    await deployment(ns, 'api');
    const proxy = await startStallProxy(sandbox().apiServer);
    try {
      const dir = await tempDir();
      const kubeconfig = join(dir, 'proxied.kubeconfig');
      await writeFile(
        kubeconfig,
        (await readFile(sandbox().kubeconfig, 'utf8')).replace(
          /server: .*/,
          `server: ${proxy.url}`,
        ),
      );
      const env = sandboxEnv({ KUBECONFIG: kubeconfig, CLOUDTASER_REQUEST_TIMEOUT: '2s' });
      // Through the proxy, the same commands work while the server answers.
      const ok = await cliProcess(['target', 'discover', '-n', ns, '-o', 'plan.yaml'], {
        cwd: dir,
        env,
      });
      expect(ok.code).toBe(0);

      proxy.stall();
      const runs = {
        discover: ['target', 'discover', '-n', ns, '-o', 'other.yaml'],
        protect: PROTECT_YES,
        status: ['target', 'status', '-n', ns],
      };
      for (const [name, argv] of Object.entries(runs)) {
        const started = Date.now();
        const r = await cliProcess(argv, { cwd: dir, env });
        expect(r.code, `${name}: ${r.stderr}`).toBe(3);
        expect(r.stderr + r.stdout, name).toContain(
          `the Kubernetes API server at ${proxy.url} did not answer within 2 s`,
        );
        expect(Date.now() - started, name).toBeLessThan(30_000);
      }
      // protect recorded nothing it did not do, and left no lock behind.
      expect(Object.values(await statuses(join(dir, 'plan.yaml')))).toEqual(['pending']);
      expect(existsSync(join(dir, 'plan.yaml.lock'))).toBe(false);

      // --request-timeout on the command line wins over the environment.
      const flag = await cliProcess(['--request-timeout', '1s', 'target', 'status', '-n', ns], {
        cwd: dir,
        env,
      });
      expect(flag.code).toBe(3);
      expect(flag.stderr).toContain('did not answer within 1 s');
    } finally {
      await proxy.close();
    }
  });

  it('--debug prints one line per Kubernetes request, without credentials', async () => {
    const ns = await namespaceWithSecret('pdebug');
    await deployment(ns, 'api');
    const r = await cli(['--debug', 'target', 'discover', '-n', ns, '-o', 'plan.yaml']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(`debug: kube GET /apis/apps/v1/namespaces/${ns}/deployments -> 200 \\(\\d+ ms\\)`),
    );
    expect(r.stderr).toMatch(
      new RegExp(`debug: kube GET /api/v1/namespaces/${ns}/secrets -> 200 \\(\\d+ ms\\)`),
    );
    const token = /token: (\S+)/.exec(await readFile(sandbox().kubeconfig, 'utf8'))?.[1] ?? '';
    expect(token.length).toBeGreaterThan(8);
    expect(r.stderr).not.toContain(token);
    // Nor do the Secret's values (base64 of "u" and "p").
    expect(r.stderr + r.stdout).not.toContain('dQ==');
    expect(r.stderr + r.stdout).not.toContain('cA==');
  });
});
