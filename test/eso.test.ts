// Coming from External Secrets Operator, end to end against the real thing:
// ESO's own controller (v0.16.2, built from its Go module) syncs
// ExternalSecrets from the sandbox OpenBao into native Secrets read by two
// Deployments; discover --from eso traces them back to vault, apply-plan and
// verify-plan pass without populating anything, and protect + cleanup retire
// the ExternalSecrets and their Secrets for good.
//
// The Deployments have zero replicas: protect and cleanup work on templates
// and on the objects that name a Secret, so no pod has to run here (pods of
// protected workloads are covered by the runtime tests on the node).
import type { CoreV1Api } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKube } from '../src/kube/config.js';
import { KubeRest, resourcePath } from '../src/kube/rest.js';
import type { MigrationPlan } from '../src/plan/schema.js';
import type { EsoController } from '../testenv/eso.js';
import { cli, tempDir, type CliResult } from './helpers/cli.js';
import { startEso } from './helpers/eso.js';
import { bao, eventually, kubeClients, sandbox, uniqueName } from './helpers/sandbox.js';

/** Values that must never leave vault and the Secrets: searched for in every output. */
const PLANTED = `planted-${randomBytes(12).toString('hex')}`;
const ns = uniqueName('eso');
const legacyNs = uniqueName('esolegacy');
const mount = uniqueName('kveso');
const policy = `eso-${ns}`;
const role = `eso-${ns}`;
const clusterStore = `vault-k8s-${ns}`;
const outputs: CliResult[] = [];
let core: CoreV1Api;
let rest: KubeRest;
/** Set once the controller runs; afterAll also runs when beforeAll failed before that. */
let eso: EsoController | undefined;
let dir: string;

const vaultValues = {
  db: { user: 'app', pass: `${PLANTED}-db` },
  api: { key: `${PLANTED}-api`, endpoint: 'https://api.example' },
  cache: { password: `${PLANTED}-cache` },
  legacy: { a: `${PLANTED}-legacy` },
};

async function run(args: string[]): Promise<CliResult> {
  const r = await cli(args, { cwd: dir });
  outputs.push(r);
  return r;
}

/** Creates (or updates) an object by server-side apply, as kubectl apply --server-side does. */
async function apply(
  gv: string,
  plural: string,
  namespace: string | undefined,
  obj: { kind: string; metadata: { name: string } } & Record<string, unknown>,
): Promise<void> {
  await rest.call({
    method: 'PATCH',
    path: resourcePath(gv, plural, namespace, obj.metadata.name),
    query: { fieldManager: 'cloudtaser-test' },
    contentType: 'application/apply-patch+yaml',
    body: {
      apiVersion: gv,
      ...obj,
      metadata: { ...obj.metadata, ...(namespace ? { namespace } : {}) },
    },
  });
}

const ES = 'external-secrets.io/v1';

function externalSecret(
  namespace: string,
  name: string,
  spec: Record<string, unknown>,
): Promise<void> {
  return apply(ES, 'externalsecrets', namespace, {
    kind: 'ExternalSecret',
    metadata: { name },
    spec: { refreshInterval: '5s', ...spec },
  });
}

function deployment(
  namespace: string,
  name: string,
  container: Record<string, unknown>,
): Promise<unknown> {
  return kubeClients().apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'app', image: 'busybox', ...container }] },
        },
      },
    },
  });
}

const secretRef = (secret: string, key: string) => ({
  valueFrom: { secretKeyRef: { name: secret, key } },
});

async function secretData(namespace: string, name: string): Promise<Record<string, string>> {
  const s = await core.readNamespacedSecret({ name, namespace });
  return Object.fromEntries(
    Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

async function secretExists(namespace: string, name: string): Promise<boolean> {
  try {
    await core.readNamespacedSecret({ name, namespace });
    return true;
  } catch (e) {
    if ((e as { code?: number }).code === 404) return false;
    throw e;
  }
}

async function externalSecretNames(namespace: string): Promise<string[]> {
  const l = await rest.call<{ items: { metadata: { name: string } }[] }>({
    method: 'GET',
    path: resourcePath(ES, 'externalsecrets', namespace),
  });
  return l.items.map((i) => i.metadata.name).sort();
}

beforeAll(async () => {
  const info = sandbox();
  core = kubeClients().core;
  rest = new KubeRest(loadKube({ kubeconfig: info.kubeconfig }, {}, process.cwd()));
  dir = await tempDir('ct-eso-');
  // Built once per machine and cached: 35 s from a warm Go build cache, most of
  // an hour cold on a loaded 2-core machine (hence the hook timeout).
  eso = await startEso(dir);

  for (const n of [ns, legacyNs]) await core.createNamespace({ body: { metadata: { name: n } } });

  // Vault: a KV v2 mount with the values, a read policy, a token for the
  // token-auth stores and a Kubernetes-auth role for the cluster store.
  expect(
    (await bao('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } })).status,
  ).toBe(204);
  for (const [p, data] of [
    [`${ns}/db`, vaultValues.db],
    [`${ns}/api`, vaultValues.api],
    [`${ns}/cache`, vaultValues.cache],
    [`${legacyNs}/legacy`, vaultValues.legacy],
  ] as const) {
    expect((await bao('POST', `${mount}/data/${p}`, { data })).status).toBe(200);
  }
  await bao('PUT', `sys/policies/acl/${policy}`, {
    policy: `path "${mount}/data/*" { capabilities = ["read"] }\npath "${mount}/metadata/*" { capabilities = ["read", "list"] }\n`,
  });
  await bao('POST', `auth/${info.baoKubeAuthPath}/role/${role}`, {
    bound_service_account_names: ['eso-reader'],
    bound_service_account_namespaces: [ns],
    policies: [policy],
    ttl: '10m',
  });
  const tok = await bao('POST', 'auth/token/create', { policies: [policy], ttl: '2h' });
  const token = (tok.json as { auth: { client_token: string } }).auth.client_token;
  const caBundle = Buffer.from(await readFile(info.baoCaFile)).toString('base64');
  const vault = (extra: Record<string, unknown>) => ({
    vault: { server: info.baoTlsAddr, version: 'v2', caBundle, ...extra },
  });
  const tokenAuth = { auth: { tokenSecretRef: { name: 'vault-token', key: 'token' } } };

  for (const n of [ns, legacyNs]) {
    await core.createNamespacedSecret({
      namespace: n,
      body: { metadata: { name: 'vault-token' }, stringData: { token } },
    });
    // Token auth, no path: the mount is the key's first segment.
    await apply(ES, 'secretstores', n, {
      kind: 'SecretStore',
      metadata: { name: 'vault-token' },
      spec: { provider: vault(tokenAuth) },
    });
    // Token auth with an explicit path (the mount).
    await apply(ES, 'secretstores', n, {
      kind: 'SecretStore',
      metadata: { name: 'vault-path' },
      spec: { provider: vault({ ...tokenAuth, path: mount }) },
    });
  }
  await core.createNamespacedServiceAccount({
    namespace: ns,
    body: { metadata: { name: 'eso-reader' } },
  });
  // Kubernetes auth: ESO requests a token for eso-reader and logs in with it.
  await apply(ES, 'clustersecretstores', undefined, {
    kind: 'ClusterSecretStore',
    metadata: { name: clusterStore },
    spec: {
      provider: vault({
        auth: {
          kubernetes: {
            mountPath: info.baoKubeAuthPath,
            role,
            serviceAccountRef: { name: 'eso-reader', namespace: ns },
          },
        },
      }),
    },
  });

  // data with property (renamed keys), dataFrom.extract, and a store with a path.
  await externalSecret(ns, 'db', {
    secretStoreRef: { kind: 'SecretStore', name: 'vault-token' },
    target: { name: 'db-credentials' },
    data: [
      { secretKey: 'username', remoteRef: { key: `${mount}/${ns}/db`, property: 'user' } },
      { secretKey: 'password', remoteRef: { key: `${mount}/${ns}/db`, property: 'pass' } },
    ],
  });
  await externalSecret(ns, 'api', {
    secretStoreRef: { kind: 'ClusterSecretStore', name: clusterStore },
    dataFrom: [{ extract: { key: `${mount}/${ns}/api` } }],
  });
  await externalSecret(ns, 'cache', {
    secretStoreRef: { kind: 'SecretStore', name: 'vault-path' },
    target: { name: 'cache-auth' },
    data: [
      { secretKey: 'redis-password', remoteRef: { key: `${ns}/cache`, property: 'password' } },
    ],
  });
  // What cannot be traced to one vault field: a find, and a non-vault provider.
  await externalSecret(legacyNs, 'found', {
    secretStoreRef: { kind: 'SecretStore', name: 'vault-path' },
    dataFrom: [{ find: { path: legacyNs, name: { regexp: 'legacy' } } }],
  });
  await apply(ES, 'secretstores', legacyNs, {
    kind: 'SecretStore',
    metadata: { name: 'fake' },
    spec: { provider: { fake: { data: [{ key: '/legacy/token', value: 'not-from-vault' }] } } },
  });
  await externalSecret(legacyNs, 'legacy-token', {
    secretStoreRef: { kind: 'SecretStore', name: 'fake' },
    data: [{ secretKey: 'token', remoteRef: { key: '/legacy/token' } }],
  });

  await deployment(ns, 'payment-api', {
    env: [
      { name: 'DB_USER', ...secretRef('db-credentials', 'username') },
      { name: 'DB_PASS', ...secretRef('db-credentials', 'password') },
    ],
    envFrom: [{ prefix: 'API_', secretRef: { name: 'api' } }],
  });
  await deployment(ns, 'order-router', {
    env: [{ name: 'REDIS_PASSWORD', ...secretRef('cache-auth', 'redis-password') }],
  });
  await deployment(legacyNs, 'legacy', {
    env: [{ name: 'TOKEN', ...secretRef('legacy-token', 'token') }],
    envFrom: [{ secretRef: { name: 'found' } }],
  });

  // The controller writes the Secrets: wait until it has, with every key.
  const synced = async (n: string, name: string, keys: string[]): Promise<void> => {
    await eventually(
      `ESO to write Secret ${n}/${name} (controller log: ${join(dir, 'external-secrets.log')})`,
      async () => {
        if (!(await secretExists(n, name))) return undefined;
        const d = await secretData(n, name);
        return keys.every((k) => k in d) ? true : undefined;
      },
      120_000,
    );
  };
  await synced(ns, 'db-credentials', ['username', 'password']);
  await synced(ns, 'api', ['key', 'endpoint']);
  await synced(ns, 'cache-auth', ['redis-password']);
  await synced(legacyNs, 'found', []);
  await synced(legacyNs, 'legacy-token', ['token']);
}, 3_600_000);

afterAll(async () => {
  await eso?.stop();
  for (const n of [ns, legacyNs]) await core.deleteNamespace({ name: n }).catch(() => undefined);
  await rest
    .call({
      method: 'DELETE',
      path: resourcePath(ES, 'clustersecretstores', undefined, clusterStore),
    })
    .catch(() => undefined);
  await bao('DELETE', `sys/mounts/${mount}`).catch(() => undefined);
  await bao('DELETE', `sys/policies/acl/${policy}`).catch(() => undefined);
  await bao('DELETE', `auth/${sandbox().baoKubeAuthPath}/role/${role}`).catch(() => undefined);
  // No value ever reaches an output.
  for (const o of outputs) {
    expect(o.stdout).not.toContain(PLANTED);
    expect(o.stderr).not.toContain(PLANTED);
  }
});

describe('coming from External Secrets Operator', () => {
  let plan: MigrationPlan;

  it('discover --from eso traces each Secret ESO writes to the vault path and field ESO reads', async () => {
    const r = await run([
      'target',
      'discover',
      '--from',
      'eso',
      '-n',
      ns,
      '-o',
      'plan.yaml',
      '--vault-address',
      sandbox().baoTlsAddr,
    ]);
    expect(r.stderr).toContain(
      '3 ExternalSecret(s); 3 plan entries read from vault as ESO does, 0 kept',
    );
    expect(r.stderr).not.toContain('Warning');
    expect(r.code).toBe(0);
    const text = await readFile(join(dir, 'plan.yaml'), 'utf8');
    plan = parse(text) as MigrationPlan;
    const workloads = Object.fromEntries(
      (plan.tenants[0]?.workloads ?? []).map((w) => [w.name, w.secrets]),
    );
    expect(workloads).toEqual({
      'order-router': [
        {
          source: 'eso/cache',
          vaultPath: `${mount}/data/${ns}/cache`,
          fields: { password: 'REDIS_PASSWORD' },
          secret: 'cache-auth',
          secretKeys: { password: 'redis-password' },
        },
      ],
      'payment-api': [
        {
          source: 'eso/api',
          vaultPath: `${mount}/data/${ns}/api`,
          fields: { endpoint: 'API_endpoint', key: 'API_key' },
        },
        {
          source: 'eso/db',
          vaultPath: `${mount}/data/${ns}/db`,
          fields: { pass: 'DB_PASS', user: 'DB_USER' },
          secret: 'db-credentials',
          secretKeys: { pass: 'password', user: 'username' },
        },
      ],
    });
    expect(text).toContain(`from ExternalSecret ${ns}/db (SecretStore vault-token)`);
    expect((await run(['plan', 'validate', 'plan.yaml'])).code).toBe(0);

    // What ESO read is what the plan names: each Secret key ESO wrote holds
    // the value of the plan's vault path and field.
    const secretOf: Record<string, string> = {
      'eso/db': 'db-credentials',
      'eso/api': 'api',
      'eso/cache': 'cache-auth',
    };
    for (const s of Object.values(workloads).flat()) {
      const inVault = await bao('GET', s.vaultPath);
      const fields = (inVault.json as { data: { data: Record<string, string> } }).data.data;
      const native = await secretData(ns, secretOf[s.source] ?? '');
      for (const field of Object.keys(s.fields)) {
        const key = s.secretKeys?.[field] ?? field;
        expect(native[key] === fields[field], `${s.source} ${field}`).toBe(true);
      }
    }
  });

  it('flags stores that read another vault than --vault-address', async () => {
    const r = await run([
      'target',
      'discover',
      '--from',
      'eso',
      '-n',
      ns,
      '-o',
      'other.yaml',
      '--vault-address',
      'https://vault.elsewhere.example:8200',
    ]);
    expect(r.code).toBe(0);
    for (const es of ['api', 'cache', 'db']) {
      expect(r.stderr).toContain(`Warning: ExternalSecret ${ns}/${es} reads from another vault`);
    }
    expect(await readFile(join(dir, 'other.yaml'), 'utf8')).toContain(
      `not at --vault-address https://vault.elsewhere.example:8200`,
    );
  });

  it('a find and a non-vault ExternalSecret stay native references, with a comment', async () => {
    const r = await run([
      'target',
      'discover',
      '--from',
      'eso',
      '-n',
      legacyNs,
      '-o',
      'legacy.yaml',
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      '0 plan entries read from vault as ESO does, 2 kept as native Secret references',
    );
    const text = await readFile(join(dir, 'legacy.yaml'), 'utf8');
    const legacy = parse(text) as MigrationPlan;
    const sources = legacy.tenants[0]?.workloads[0]?.secrets.map((s) => s.source);
    expect(sources).toEqual(['k8s-secret/found', 'k8s-secret/legacy-token']);
    expect(text).toContain(`managed by ExternalSecret ${legacyNs}/found`);
    expect(text).toContain('dataFrom.find picks vault paths by name or tag at sync time');
    expect(text).toContain(`managed by ExternalSecret ${legacyNs}/legacy-token`);
    expect(text).toContain('its SecretStore fake uses the fake provider, not vault');
  });

  it('apply-plan and verify-plan pass with no populate step', async () => {
    const a = await run([
      'source',
      'apply-plan',
      'plan.yaml',
      '--openbao-addr',
      sandbox().baoAddr,
      '--kv-mount',
      mount,
    ]);
    expect(a.code, a.stderr).toBe(0);
    const v = await run(['source', 'verify-plan', 'plan.yaml']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });

  it('protect, then cleanup retires the ExternalSecrets before their Secrets, for good', async () => {
    const p = await run([
      'target',
      'protect',
      '--plan',
      'plan.yaml',
      '--vault-address',
      sandbox().baoTlsAddr,
      '--yes',
    ]);
    expect(p.code, p.stdout + p.stderr).toBe(0);

    // Before cleanup, audit with the plan names the Secrets ESO wrote as still
    // holding migrated values: db-credentials is named neither by the
    // protected template nor after its vault path (…/db), only by the plan.
    const audit = await run(['target', 'audit', '--plan', 'plan.yaml', '-n', ns, '-o', 'json']);
    expect(audit.code, audit.stderr).toBe(0);
    const report = JSON.parse(audit.stdout) as {
      findings: { code: string; subject: string; message: string }[];
    };
    const remains = report.findings.filter((f) => f.code === 'native-secret-remains');
    expect(remains.map((f) => f.subject)).toContain(`Secret ${ns}/db-credentials`);
    expect(remains.find((f) => f.subject === `Secret ${ns}/db-credentials`)?.message).toContain(
      'password, username',
    );

    // Another workload still reading cache-auth keeps it, and its ExternalSecret.
    await deployment(ns, 'reporter', {
      env: [{ name: 'PW', ...secretRef('cache-auth', 'redis-password') }],
    });
    const dry = await run(['target', 'cleanup', '--plan', 'plan.yaml', '--dry-run']);
    expect(dry.stdout).toContain(
      `Secret ${ns}/db-credentials: would delete -- ExternalSecret ${ns}/db first, then the Secret;`,
    );
    expect(dry.stdout).toContain(
      `Secret ${ns}/api: would delete -- ExternalSecret ${ns}/api first, then the Secret;`,
    );
    expect(dry.stdout).toContain(
      `Secret ${ns}/cache-auth: refused -- still referenced by Deployment ${ns}/reporter`,
    );
    expect(await externalSecretNames(ns)).toEqual(['api', 'cache', 'db']);

    const first = await run(['target', 'cleanup', '--plan', 'plan.yaml', '--yes']);
    expect(first.code).toBe(1);
    const lines = first.stdout.split('\n');
    const at = (s: string): number => lines.findIndex((l) => l.startsWith(s));
    expect(at(`ExternalSecret ${ns}/db: deleted`)).toBeGreaterThan(-1);
    expect(at(`ExternalSecret ${ns}/db: deleted`)).toBeLessThan(
      at(`Secret ${ns}/db-credentials: deleted`),
    );
    expect(at(`ExternalSecret ${ns}/api: deleted`)).toBeLessThan(at(`Secret ${ns}/api: deleted`));
    expect(first.stdout).toContain(
      `Secret ${ns}/cache-auth: refused -- still referenced by Deployment ${ns}/reporter`,
    );
    expect(await externalSecretNames(ns)).toEqual(['cache']);
    expect(await secretExists(ns, 'cache-auth')).toBe(true);

    await kubeClients().apps.deleteNamespacedDeployment({ name: 'reporter', namespace: ns });
    const second = await run(['target', 'cleanup', '--plan', 'plan.yaml', '--yes']);
    expect(second.code, second.stdout).toBe(0);
    expect(second.stdout).toContain(`Secret ${ns}/db-credentials: already gone`);
    expect(second.stdout).toContain(`ExternalSecret ${ns}/cache: deleted`);

    // The controller is still running: nothing comes back within 30 s.
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      expect(await externalSecretNames(ns)).toEqual([]);
      for (const s of ['db-credentials', 'api', 'cache-auth']) {
        expect(await secretExists(ns, s), s).toBe(false);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    // ...and it is the controller that would have: it still syncs elsewhere.
    expect(await secretExists(legacyNs, 'legacy-token')).toBe(true);
  }, 240_000);
});
