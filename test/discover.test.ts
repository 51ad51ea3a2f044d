// `target discover` against the real API server: every discovery rule, the
// plan's round trip through human edits, SecretMapping output, and errors.
import {
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1PodSpec,
} from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadKube } from '../src/kube/config.js';
import { scanCluster } from '../src/kube/scan.js';
import { parsePlan } from '../src/plan/read.js';
import { writeFileAtomic } from '../src/core/files.js';
import { PlanEditor } from '../src/plan/write.js';
import { projectRoot } from '../testenv/paths.js';
import { cli, cliProcess, tempDir } from './helpers/cli.js';
import { createSecretExact, kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const PLANTED = `planted-${randomBytes(8).toString('hex')}`;
const ns = uniqueName('disc');
const sysName = uniqueName('sys');

function secret(name: string, data: Record<string, string>, type = 'Opaque') {
  return {
    metadata: { name },
    type,
    stringData: data,
  };
}

const template = (spec: V1PodSpec, annotations?: Record<string, string>) => ({
  metadata: { labels: { app: 'x' }, ...(annotations ? { annotations } : {}) },
  spec: spec,
});

beforeAll(async () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  for (const s of [
    secret('db', { username: 'app', password: PLANTED }),
    secret('shared', { token: PLANTED }),
    secret('env-bundle', { HOST: 'db.local', PORT: '5432', 'bad.key': PLANTED }),
    secret('tls', { 'tls.crt': PLANTED, 'tls.key': PLANTED }),
    secret('proj', { a: PLANTED, b: PLANTED }),
    secret('proj2', { z: PLANTED }),
    secret('pull', { '.dockerconfigjson': '{"auths":{}}' }, 'kubernetes.io/dockerconfigjson'),
  ]) {
    await core.createNamespacedSecret({ namespace: ns, body: s });
  }
  await core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: {
        name: 'sa-token',
        annotations: { 'kubernetes.io/service-account.name': 'default' },
      },
      type: 'kubernetes.io/service-account-token',
    },
  });

  const selector = { matchLabels: { app: 'x' } };
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'multi' },
      spec: {
        selector,
        template: template({
          imagePullSecrets: [{ name: 'pull' }],
          initContainers: [
            {
              name: 'init-db',
              image: 'busybox',
              env: [
                { name: 'DB_USER', valueFrom: { secretKeyRef: { name: 'db', key: 'username' } } },
              ],
            },
          ],
          containers: [
            {
              name: 'app',
              image: 'app',
              env: [
                { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
              ],
              envFrom: [{ prefix: 'APP_', secretRef: { name: 'env-bundle' } }],
              volumeMounts: [
                { name: 'tls', mountPath: '/etc/tls' },
                { name: 'bundle', mountPath: '/etc/bundle' },
                { name: 'token', mountPath: '/var/run/token' },
              ],
            },
            {
              name: 'sidecar',
              image: 'sidecar',
              env: [
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'shared', key: 'token' } } },
                {
                  name: 'GHOST',
                  valueFrom: { secretKeyRef: { name: 'ghost', key: 'api_key', optional: true } },
                },
              ],
            },
          ],
          volumes: [
            { name: 'tls', secret: { secretName: 'tls' } },
            {
              name: 'bundle',
              projected: {
                sources: [
                  { secret: { name: 'proj', items: [{ key: 'a', path: 'a.txt' }] } },
                  { secret: { name: 'proj2' } },
                  { serviceAccountToken: { path: 'sat', expirationSeconds: 600 } },
                ],
              },
            },
            { name: 'token', secret: { secretName: 'sa-token' } },
          ],
        }),
      },
    },
  });
  await apps.createNamespacedStatefulSet({
    namespace: ns,
    body: {
      metadata: { name: 'ledger' },
      spec: {
        replicas: 2,
        serviceName: 'ledger',
        selector,
        template: template({
          serviceAccountName: 'ledger-sa',
          containers: [
            {
              name: 'ledger',
              image: 'ledger',
              env: [
                {
                  name: 'SHARED_TOKEN',
                  valueFrom: { secretKeyRef: { name: 'shared', key: 'token' } },
                },
              ],
            },
          ],
        }),
      },
    },
  });
  await apps.createNamespacedDaemonSet({
    namespace: ns,
    body: {
      metadata: { name: 'agent' },
      spec: {
        selector,
        template: template(
          { containers: [{ name: 'agent', image: 'agent' }] },
          {
            'vault.hashicorp.com/agent-inject': 'true',
            'vault.hashicorp.com/role': 'agent',
            'vault.hashicorp.com/agent-inject-secret-config': 'secret/data/disc/config',
            'vault.hashicorp.com/agent-inject-template-config':
              '{{ with secret "secret/data/disc/config" }}{{ .Data.data.api_url }} {{ index .Data.data "api-token" }}{{ end }}',
          },
        ),
      },
    },
  });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'done' },
      spec: {
        selector,
        template: template(
          {
            containers: [
              {
                name: 'c',
                image: 'c',
                env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'db', key: 'username' } } }],
              },
            ],
          },
          { 'cloudtaser.io/inject': 'true' },
        ),
      },
    },
  });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'plain' },
      spec: { selector, template: template({ containers: [{ name: 'c', image: 'c' }] }) },
    },
  });
  await core.createNamespacedSecret({
    namespace: 'kube-system',
    body: secret(sysName, { k: PLANTED }),
  });
  await apps.createNamespacedDeployment({
    namespace: 'kube-system',
    body: {
      metadata: { name: sysName },
      spec: {
        selector,
        template: template({
          containers: [
            {
              name: 'c',
              image: 'c',
              env: [{ name: 'K', valueFrom: { secretKeyRef: { name: sysName, key: 'k' } } }],
            },
          ],
        }),
      },
    },
  });
});

const expectedTenant = () => ({
  name: ns,
  namespace: ns,
  workloads: [
    {
      kind: 'Deployment',
      name: 'multi',
      replicas: 1,
      serviceAccount: 'default',
      status: 'pending',
      secrets: [
        {
          source: 'k8s-secret/db',
          vaultPath: `secret/data/${ns}/db`,
          fields: { password: 'DB_PASS', username: 'DB_USER' },
        },
        {
          source: 'k8s-secret/env-bundle',
          vaultPath: `secret/data/${ns}/env-bundle`,
          fields: { HOST: 'APP_HOST', PORT: 'APP_PORT' },
        },
        {
          source: 'k8s-secret/ghost',
          vaultPath: `secret/data/${ns}/ghost`,
          fields: { api_key: 'GHOST' },
        },
        // Mounted Secrets: files at the paths the app reads today.
        {
          source: 'k8s-secret/proj',
          vaultPath: `secret/data/${ns}/proj`,
          fields: {},
          files: { a: { path: '/etc/bundle/a.txt', mountPath: '/etc/bundle' } },
        },
        {
          source: 'k8s-secret/proj2',
          vaultPath: `secret/data/${ns}/proj2`,
          fields: {},
          files: { z: { path: '/etc/bundle/z', mountPath: '/etc/bundle' } },
        },
        {
          source: 'k8s-secret/shared',
          vaultPath: `secret/data/${ns}/shared`,
          fields: { token: 'TOKEN' },
        },
        {
          source: 'k8s-secret/tls',
          vaultPath: `secret/data/${ns}/tls`,
          fields: {},
          files: {
            'tls.crt': { path: '/etc/tls/tls.crt', mountPath: '/etc/tls' },
            'tls.key': { path: '/etc/tls/tls.key', mountPath: '/etc/tls' },
          },
        },
      ],
    },
    {
      kind: 'StatefulSet',
      name: 'ledger',
      replicas: 2,
      serviceAccount: 'ledger-sa',
      status: 'pending',
      secrets: [
        {
          source: 'k8s-secret/shared',
          vaultPath: `secret/data/${ns}/shared`,
          fields: { token: 'SHARED_TOKEN' },
        },
      ],
    },
    {
      kind: 'DaemonSet',
      name: 'agent',
      serviceAccount: 'default',
      status: 'pending',
      secrets: [
        {
          source: 'vault-agent/config',
          vaultPath: 'secret/data/disc/config',
          fields: { 'api-token': 'API_TOKEN', api_url: 'API_URL' },
        },
      ],
    },
  ],
});

describe('target discover', () => {
  it('maps every kind of secret reference in a namespace into the plan', async () => {
    const cwd = await tempDir();
    const r = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd });
    expect(r.stderr).toContain(
      'Scanned 1 namespace(s): 5 workload(s) found, 3 planned, 2 skipped (1 already annotated cloudtaser.io/inject, 1 without secret references); 9 secret reference(s) mapped, 1 to Secrets that do not exist.',
    );
    expect(r.stderr).toContain(
      `skipped Deployment ${ns}/done: already annotated cloudtaser.io/inject`,
    );
    expect(r.code).toBe(0);
    const text = await readFile(join(cwd, 'plan.yaml'), 'utf8');
    const { plan } = parsePlan(text, 'plan.yaml');
    expect(plan.metadata).toEqual({
      name: 'migration-plan',
      cluster: sandbox().apiServer,
      // The cluster's identity (test/multi-cluster.test.ts checks it against `target fingerprint`).
      clusterFingerprint: expect.stringMatching(/^sha256:[0-9a-f]{16}$/) as unknown,
      createdAt: '2026-04-01T10:00:00Z',
      createdBy: 'tester',
    });
    expect(plan.tenants).toEqual([expectedTenant()]);

    // Reviewer notes land as comments next to the entries they explain.
    expect(text).toMatch(
      /# Secret ghost does not exist in namespace \S+ \(referenced with optional: true\)[^\n]*\n\s+- source: k8s-secret\/ghost/,
    );
    expect(text).toMatch(/# "APP_bad\.key" \(key bad\.key\) is not mapped: the env-map carries/);
    expect(text).toMatch(
      /# mounted as files at \/etc\/tls \(volume tls\): delivered as files at the same paths/,
    );
    expect(text).toMatch(/# from Vault Agent file config; fields read from its template\./);
    // Not app secrets: image pull secrets and service-account tokens.
    expect(text).not.toContain('k8s-secret/pull');
    expect(text).not.toContain('k8s-secret/sa-token');
  });

  it('never writes, prints or logs a secret value', async () => {
    const cwd = await tempDir();
    const r = await cli(['target', 'discover', '-o', 'plan.yaml'], { cwd });
    expect(r.code).toBe(0);
    const text = await readFile(join(cwd, 'plan.yaml'), 'utf8');
    const b64 = Buffer.from(PLANTED).toString('base64');
    for (const out of [text, r.stdout, r.stderr]) {
      expect(out).not.toContain(PLANTED);
      expect(out).not.toContain(b64);
    }
    const mappings = await cli([
      'target',
      'discover',
      '-n',
      ns,
      '--vault-address',
      'https://vault.example.com',
      '--vault-role',
      'r',
    ]);
    expect(mappings.stdout + mappings.stderr).not.toContain(PLANTED);
  });

  it('scans all namespaces with pagination, excluding system namespaces', async () => {
    const cwd = await tempDir();
    const r = await cli(['target', 'discover', '-o', 'plan.yaml'], { cwd });
    expect(r.code).toBe(0);
    const { plan } = parsePlan(await readFile(join(cwd, 'plan.yaml'), 'utf8'), 'plan.yaml');
    expect(plan.tenants.find((t) => t.namespace === ns)).toEqual(expectedTenant());
    expect(plan.tenants.some((t) => t.namespace === 'kube-system')).toBe(false);
    expect(r.stderr).toMatch(/Excluded [1-9]\d* workload\(s\) in system namespaces\./);

    // Tiny pages force many continue tokens; the result must be the same.
    const target = loadKube({ kubeconfig: sandbox().kubeconfig }, {}, cwd);
    const paged = await scanCluster(target, undefined, 2);
    const whole = await scanCluster(target, undefined, 500);
    // Other test files create and delete namespaces while this runs: the two
    // scans are compared on namespaces nobody else touches.
    const stable = new Set([ns, 'kube-system', 'default']);
    const names = (s: typeof paged) =>
      s.workloads
        .filter((w) => stable.has(w.metadata.namespace))
        .map((w) => `${w.kind}/${w.metadata.namespace}/${w.metadata.name}`)
        .sort();
    const secretNames = (s: typeof paged) =>
      s.secrets
        .filter((x) => stable.has(x.namespace))
        .map((x) => `${x.namespace}/${x.name}:${x.keys.join(',')}`)
        .sort();
    expect(names(paged)).toEqual(names(whole));
    expect(secretNames(paged)).toEqual(secretNames(whole));
    expect(secretNames(paged).length).toBeGreaterThan(0);
    expect(names(paged)).toContain(`Deployment/${ns}/multi`);
    expect(paged.namespaces).toContain(ns);
  });

  it('sees a Secret key named __proto__, and leaves that env name alone when containers disagree on it', async () => {
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const pns = uniqueName('proto');
    await core.createNamespace({ body: { metadata: { name: pns } } });
    await createSecretExact(pns, 'api-key', [['_x', PLANTED]]);
    await createSecretExact(pns, 'tls.certs', [
      ['__proto__', PLANTED],
      ['db_pass', PLANTED],
    ]);
    await apps.createNamespacedDeployment({
      namespace: pns,
      body: {
        metadata: { name: 'app' },
        spec: {
          selector: { matchLabels: { app: 'x' } },
          template: template({
            initContainers: [
              {
                name: 'init',
                image: 'busybox',
                env: [
                  {
                    name: '__proto__',
                    valueFrom: { secretKeyRef: { name: 'api-key', key: '_x' } },
                  },
                ],
              },
            ],
            containers: [
              {
                name: 'sidecar',
                image: 'busybox',
                envFrom: [{ secretRef: { name: 'tls.certs' } }],
              },
            ],
          }),
        },
      },
    });

    const cwd = await tempDir();
    const target = loadKube({ kubeconfig: sandbox().kubeconfig }, {}, cwd);
    const scan = await scanCluster(target, pns);
    expect(scan.secrets.find((s) => s.name === 'tls.certs')?.keys).toEqual([
      '__proto__',
      'db_pass',
    ]);

    const r = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', pns], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const text = await readFile(join(cwd, 'plan.yaml'), 'utf8');
    const secrets = parsePlan(text, 'plan.yaml').plan.tenants[0]?.workloads[0]?.secrets;
    // The sidecar gets __proto__ from tls.certs, the init container from
    // api-key/_x: one env-map entry would change what one of them reads.
    expect(secrets?.map((s) => [s.source, s.fields])).toEqual([
      ['k8s-secret/api-key', {}],
      ['k8s-secret/tls.certs', { db_pass: 'db_pass' }],
    ]);
    expect(text).toContain(
      '"__proto__" is not mapped: the containers read it from different sources; it stays as it is.',
    );
    expect(text + r.stdout + r.stderr).not.toContain(PLANTED);
    await core.deleteNamespace({ name: pns });
  });

  it('is deterministic: two runs differ only in createdAt', async () => {
    const cwd = await tempDir();
    await cli(['target', 'discover', '-o', 'a.yaml', '-n', ns], { cwd });
    await cli(['target', 'discover', '-o', 'b.yaml', '-n', ns], {
      cwd,
      now: new Date('2027-01-01T00:00:00Z'),
    });
    const a = await readFile(join(cwd, 'a.yaml'), 'utf8');
    const b = await readFile(join(cwd, 'b.yaml'), 'utf8');
    expect(a).not.toBe(b);
    expect(b.replace('2027-01-01T00:00:00Z', '2026-04-01T10:00:00Z')).toBe(a);
  });

  it("keeps a human's comments and key order when a status changes", async () => {
    const cwd = await tempDir();
    await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd });
    const file = join(cwd, 'plan.yaml');
    let text = await readFile(file, 'utf8');
    // A reviewer adds comments and moves keys around.
    text = text
      .replace('tenants:\n', '# Reviewed by security on 2026-04-02 (ticket SEC-1234)\ntenants:\n')
      .replace(
        `      - kind: StatefulSet\n        name: ledger\n`,
        `      - name: ledger   # ledger team owns this\n        kind: StatefulSet\n`,
      )
      .replace('status: pending', 'status: pending # first to migrate');
    await writeFile(file, text);
    const loaded = parsePlan(text, 'plan.yaml');
    const editor = new PlanEditor(loaded);
    expect(editor.setStatus({ namespace: ns, kind: 'Deployment', name: 'multi' }, 'migrated')).toBe(
      true,
    );
    expect(
      editor.setStatus({ namespace: ns, kind: 'StatefulSet', name: 'ledger' }, 'skipped'),
    ).toBe(true);
    await writeFileAtomic(file, editor.toString());
    const after = await readFile(file, 'utf8');
    expect(after).toBe(
      text
        .replace('status: pending # first to migrate', 'status: migrated # first to migrate')
        .replace(/(name: ledger {3}# ledger team owns this\n[\s\S]*?status: )pending/, '$1skipped'),
    );
    const statuses = parsePlan(after, 'plan.yaml').plan.tenants[0]?.workloads.map((w) => w.status);
    expect(statuses).toEqual(['migrated', 'skipped', 'pending']);
  });

  it('prints SecretMapping resources the real API server accepts', async () => {
    const missing = await cli(['target', 'discover', '-n', ns]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('needs --vault-address and --vault-role');

    const r = await cli([
      'target',
      'discover',
      '-n',
      ns,
      '--vault-address',
      'https://vault.eu.example.com',
      '--vault-role',
      `${ns}-role`,
    ]);
    expect(r.code).toBe(0);
    const info = sandbox();
    const kubectl = (args: string[], input?: string) =>
      new Promise<string>((resolve, reject) => {
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
    const applied = await kubectl(['apply', '-f', '-'], r.stdout);
    expect(applied).toContain('secretmapping.cloudtaser.io/deployment-multi created');
    const got = await kubectl(['get', 'secretmappings', '-n', ns, '-o', 'name']);
    expect(got.trim().split('\n').sort()).toEqual([
      'secretmapping.cloudtaser.io/daemonset-agent',
      'secretmapping.cloudtaser.io/deployment-multi',
      'secretmapping.cloudtaser.io/statefulset-ledger',
    ]);
  });
});

describe('target discover errors', () => {
  it('refuses to overwrite a plan without --force, and writes nothing half-way', async () => {
    const cwd = await tempDir();
    await writeFile(join(cwd, 'plan.yaml'), '# edited by hand\n');
    const r = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('plan.yaml already exists');
    expect(await readFile(join(cwd, 'plan.yaml'), 'utf8')).toBe('# edited by hand\n');
    const forced = await cli(['target', 'discover', '-o', 'plan.yaml', '-n', ns, '--force'], {
      cwd,
    });
    expect(forced.code).toBe(0);
  });

  it('reports an unwritable output path in one line, exit 2', async () => {
    const r = await cli(['target', 'discover', '-o', '/proc/no-such-dir/plan.yaml', '-n', ns]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: cannot write \/proc\/no-such-dir\/plan\.yaml: /);
  });

  it('reports an unreachable cluster (exit 3) and bad kubeconfigs (exit 2) without a stack trace', async () => {
    const cwd = await tempDir();
    const unreachable = join(cwd, 'unreachable.kubeconfig');
    const real = await readFile(sandbox().kubeconfig, 'utf8');
    await writeFile(unreachable, real.replace(/server: .*/, 'server: https://127.0.0.1:1'));
    const r = await cliProcess(
      ['target', 'discover', '-o', 'p.yaml', '--kubeconfig', unreachable],
      {
        cwd,
      },
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      'cannot reach the Kubernetes API server at https://127.0.0.1:1 (ECONNREFUSED)',
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);

    await writeFile(join(cwd, 'garbage'), ':\n  - [unclosed');
    const bad = await cli(['target', 'discover', '-o', 'p.yaml', '--kubeconfig', 'garbage'], {
      cwd,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: kubeconfig \S+garbage is not valid/);

    const ctxMissing = await cli(['target', 'discover', '-o', 'p.yaml', '--context', 'nope'], {
      cwd,
    });
    expect(ctxMissing.code).toBe(2);
    expect(ctxMissing.stderr).toContain('context "nope" not found in kubeconfig');
    expect(ctxMissing.stderr).toContain('known contexts: sandbox');

    const none = await cli(['target', 'discover', '-o', 'p.yaml'], {
      cwd,
      env: { KUBECONFIG: join(cwd, 'nope') },
    });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('none of its files exist');
  });

  it('names the missing RBAC permission (verb and resource), exit 3', async () => {
    const kc = kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const name = uniqueName('reader');
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
    await rbac.createClusterRole({
      body: {
        metadata: { name },
        rules: [
          {
            apiGroups: ['apps'],
            resources: ['deployments', 'statefulsets', 'daemonsets'],
            verbs: ['list'],
          },
        ],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      name,
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const cwd = await tempDir();
    const real = await readFile(sandbox().kubeconfig, 'utf8');
    const limited = join(cwd, 'limited.kubeconfig');
    await writeFile(limited, real.replace(/token: .*/, `token: ${tr.status?.token ?? ''}`));
    const r = await cli(['target', 'discover', '-o', 'p.yaml', '--kubeconfig', limited], { cwd });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('missing RBAC permission: cannot list secrets at cluster scope');
    expect(r.stderr).toContain('kubectl auth can-i list secrets -A');
    // The token in the kubeconfig never shows up in the error.
    expect(r.stderr).not.toContain(tr.status?.token ?? 'never');
  });

  it('validates flags before touching the cluster', async () => {
    const r = await cli(['target', 'discover', '-o', 'p.yaml', '--kv-mount', 'bad mount']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--kv-mount "bad mount" is not a valid mount path');
    const n = await cli(['target', 'discover', '-o', 'p.yaml', '-n', 'Bad_NS']);
    expect(n.code).toBe(2);
  });
});
