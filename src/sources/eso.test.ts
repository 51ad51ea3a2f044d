import { describe, expect, it } from 'vitest';
import { discover } from '../discovery/discover.js';
import { plannedSecrets, decide } from '../cleanup/decide.js';
import { MigrationPlanSchema } from '../plan/schema.js';
import { nativeSecretOf } from '../plan/model.js';
import { migratedSecrets } from '../protect/native-refs.js';
import type { WorkloadObject } from '../contract/workload.js';
import {
  esoKvPath,
  normalizeVaultAddress,
  resolveExternalSecret,
  rewriteForEso,
  type ExternalSecretObject,
  type SecretStoreObject,
} from './eso.js';

describe('esoKvPath (ESO vault provider, KV v2)', () => {
  it('without a store path inserts data after the first segment', () => {
    expect(esoKvPath({ version: 'v2' }, 'secret/app/db')).toBe('secret/data/app/db');
    expect(esoKvPath({ version: 'v2' }, 'secret/data/app/db')).toBe('secret/data/app/db');
  });
  it('with a store path puts the key under <path>/data, stripping <path>/ and data/', () => {
    expect(esoKvPath({ version: 'v2', path: 'kv' }, 'app/db')).toBe('kv/data/app/db');
    expect(esoKvPath({ version: 'v2', path: 'kv' }, 'kv/app/db')).toBe('kv/data/app/db');
    expect(esoKvPath({ version: 'v2', path: 'kv' }, 'kv/data/app/db')).toBe('kv/data/app/db');
    expect(esoKvPath({ version: 'v2', path: 'kv/team' }, 'app')).toBe('kv/team/data/app');
  });
});

const vaultStore = (name: string, extra: Record<string, unknown> = {}): SecretStoreObject => ({
  kind: 'SecretStore',
  metadata: { name, namespace: 'pay' },
  spec: { provider: { vault: { server: 'https://bao.example:8200', ...extra } } },
});
const es = (name: string, spec: ExternalSecretObject['spec']): ExternalSecretObject => ({
  metadata: { name, namespace: 'pay' },
  spec,
});

describe('resolveExternalSecret', () => {
  const stores = [
    vaultStore('v'),
    vaultStore('p', { path: 'kv' }),
    vaultStore('v1', { version: 'v1' }),
    {
      kind: 'SecretStore',
      metadata: { name: 'aws', namespace: 'pay' },
      spec: { provider: { aws: {} } },
    } as SecretStoreObject,
  ];
  it('maps data entries to path and property, later entries winning', () => {
    const r = resolveExternalSecret(
      es('db', {
        secretStoreRef: { name: 'v' },
        data: [
          { secretKey: 'user', remoteRef: { key: 'secret/db', property: 'old' } },
          { secretKey: 'user', remoteRef: { key: 'secret/db', property: 'username' } },
        ],
      }),
      ['user'],
      stores,
    );
    expect(r.keys.get('user')).toEqual({ path: 'secret/data/db', field: 'username' });
  });
  it('maps every key of a single plain extract to the same field', () => {
    const r = resolveExternalSecret(
      es('api', { secretStoreRef: { name: 'p' }, dataFrom: [{ extract: { key: 'team/api' } }] }),
      ['a', 'b'],
      stores,
    );
    expect(r.keys.get('a')).toEqual({ path: 'kv/data/team/api', field: 'a' });
    expect(r.keys.get('b')).toEqual({ path: 'kv/data/team/api', field: 'b' });
  });
  it('says why for what a plan cannot express', () => {
    const problem = (spec: ExternalSecretObject['spec'], key = 'k'): string => {
      const v = resolveExternalSecret(es('x', spec), [key], stores).keys.get(key);
      return v && 'problem' in v ? v.problem : 'resolved';
    };
    expect(
      problem({ secretStoreRef: { name: 'v' }, dataFrom: [{ find: { name: { regexp: '.*' } } }] }),
    ).toContain('dataFrom.find');
    expect(
      problem({
        secretStoreRef: { name: 'v' },
        dataFrom: [{ extract: { key: 'a/b' }, rewrite: [{}] }],
      }),
    ).toContain('rewrite');
    expect(
      problem({
        secretStoreRef: { name: 'v' },
        dataFrom: [{ extract: { key: 'a/b' } }, { extract: { key: 'a/c' } }],
      }),
    ).toContain('2 dataFrom entries');
    expect(
      problem({
        secretStoreRef: { name: 'v' },
        data: [{ secretKey: 'k', remoteRef: { key: 'a/b' } }],
      }),
    ).toContain('whole secret as JSON');
    expect(
      problem({
        secretStoreRef: { name: 'v' },
        data: [{ secretKey: 'k', remoteRef: { key: 'a/b', property: 'p', version: '3' } }],
      }),
    ).toContain('pins vault version 3');
    expect(
      problem({
        secretStoreRef: { name: 'v1' },
        data: [{ secretKey: 'k', remoteRef: { key: 'a/b', property: 'p' } }],
      }),
    ).toContain('KV v1');
    expect(
      problem({
        secretStoreRef: { name: 'aws' },
        data: [{ secretKey: 'k', remoteRef: { key: 'a', property: 'p' } }],
      }),
    ).toContain('uses the aws provider, not vault');
    expect(
      problem({
        secretStoreRef: { name: 'gone' },
        data: [{ secretKey: 'k', remoteRef: { key: 'a', property: 'p' } }],
      }),
    ).toContain('does not exist');
    expect(
      problem({
        secretStoreRef: { name: 'v' },
        target: { template: { data: {} } },
        data: [{ secretKey: 'k', remoteRef: { key: 'a/b', property: 'p' } }],
      }),
    ).toContain('target.template');
  });
});

describe('normalizeVaultAddress', () => {
  it('fills default ports and ignores a trailing slash and case', () => {
    expect(normalizeVaultAddress('https://Bao.example/')).toBe(
      normalizeVaultAddress('https://bao.example:443'),
    );
    expect(normalizeVaultAddress('https://bao.example:8200')).not.toBe(
      normalizeVaultAddress('https://bao.example'),
    );
  });
});

describe('rewriteForEso', () => {
  const workload: WorkloadObject = {
    kind: 'Deployment',
    metadata: { name: 'app', namespace: 'pay' },
    spec: {
      template: {
        spec: {
          containers: [
            {
              name: 'c',
              image: 'i',
              env: [
                {
                  name: 'DB_USER',
                  valueFrom: { secretKeyRef: { name: 'db-credentials', key: 'username' } },
                },
                { name: 'OTHER', valueFrom: { secretKeyRef: { name: 'plain', key: 'k' } } },
                { name: 'TOK', valueFrom: { secretKeyRef: { name: 'found', key: 'k' } } },
              ],
            },
          ],
        },
      },
    },
  };
  const discovered = discover(
    [workload],
    [
      { namespace: 'pay', name: 'db-credentials', keys: ['username'] },
      { namespace: 'pay', name: 'plain', keys: ['k'] },
      { namespace: 'pay', name: 'found', keys: ['k'] },
    ],
    { kvMount: 'secret', planName: 'p', cluster: 'c', createdAt: 't', createdBy: 'u' },
  );
  const inv = {
    stores: [vaultStore('v')],
    externalSecrets: [
      es('db', {
        secretStoreRef: { name: 'v' },
        target: { name: 'db-credentials' },
        data: [{ secretKey: 'username', remoteRef: { key: 'secret/pay/db', property: 'user' } }],
      }),
      es('found', {
        secretStoreRef: { name: 'v' },
        dataFrom: [{ find: { name: { regexp: '.' } } }],
      }),
    ],
  };

  it('turns ESO-written Secrets into eso/ entries and keeps the rest, with comments', () => {
    const { result, summary } = rewriteForEso(discovered, inv, {
      vaultAddress: 'https://bao.example:8200/',
    });
    expect(summary).toEqual({ converted: 1, fallback: 1, otherVault: [] });
    const secrets = result.plan.tenants[0]?.workloads[0]?.secrets ?? [];
    expect(secrets).toEqual([
      {
        source: 'eso/db',
        vaultPath: 'secret/data/pay/db',
        fields: { user: 'DB_USER' },
        secret: 'db-credentials',
        secretKeys: { user: 'username' },
      },
      { source: 'k8s-secret/found', vaultPath: 'secret/data/pay/found', fields: { k: 'TOK' } },
      { source: 'k8s-secret/plain', vaultPath: 'secret/data/pay/plain', fields: { k: 'OTHER' } },
    ]);
    const noteAt = (i: number): string | undefined =>
      result.notes.find((n) => n.path.join('/') === `tenants/0/workloads/0/secrets/${i}`)?.text;
    expect(noteAt(0)).toContain('from ExternalSecret pay/db');
    expect(noteAt(1)).toContain('managed by ExternalSecret pay/found');
    expect(noteAt(1)).toContain('dataFrom.find');
    // The plan validates, and the downstream readers see the native Secret.
    expect(MigrationPlanSchema.safeParse(result.plan).success).toBe(true);
    const ref = secrets[0];
    expect(ref && nativeSecretOf(ref)?.name).toBe('db-credentials');
    const w = result.plan.tenants[0]?.workloads[0];
    expect(w && migratedSecrets(w).get('db-credentials')).toEqual({ username: 'DB_USER' });
  });

  it('flags a store reading another vault', () => {
    const { summary, result } = rewriteForEso(discovered, inv, {
      vaultAddress: 'https://other:8200',
    });
    expect(summary.otherVault).toEqual(['pay/db']);
    expect(result.notes.map((n) => n.text).join('\n')).toContain(
      'not at --vault-address https://other:8200',
    );
  });

  it('cleanup checks the Secret key against the vault field, and lets its own ExternalSecret own it', () => {
    const { result } = rewriteForEso(discovered, inv, {});
    const w = result.plan.tenants[0]?.workloads[0];
    if (w) w.status = 'migrated';
    const planned = plannedSecrets(result.plan).find((p) => p.name === 'db-credentials');
    expect(planned?.externalSecrets).toEqual(['db']);
    expect(planned?.fields.get('username')).toEqual(['secret/data/pay/db']);
    const verdict =
      planned &&
      decide(
        planned,
        {
          uid: 'u',
          resourceVersion: '1',
          type: 'Opaque',
          keys: ['username'],
          owners: [{ kind: 'ExternalSecret', name: 'db', controller: true }],
        },
        [],
        new Map([['secret/data/pay/db', { kind: 'found' as const, keys: ['user'] }]]),
        new Map([['secret/data/pay/db\u0000username', 'equal']]),
      );
    expect(verdict).toEqual({
      action: 'delete',
      summary: '1 key(s) match vault (secret/data/pay/db)',
    });
  });
});

describe('plan schema', () => {
  const base = (secrets: unknown[]) => ({
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'p' },
    tenants: [
      { name: 'pay', namespace: 'pay', workloads: [{ kind: 'Deployment', name: 'a', secrets }] },
    ],
  });
  it('accepts one ExternalSecret reading two paths, refuses secret/secretKeys on other sources', () => {
    const ok = MigrationPlanSchema.safeParse(
      base([
        { source: 'eso/db', vaultPath: 'kv/data/a', fields: { x: 'X' }, secret: 'db-credentials' },
        { source: 'eso/db', vaultPath: 'kv/data/b', fields: { y: 'Y' }, secretKeys: { y: 'why' } },
      ]),
    );
    expect(ok.success).toBe(true);
    const dup = MigrationPlanSchema.safeParse(
      base([
        { source: 'eso/db', vaultPath: 'kv/data/a', fields: { x: 'X' } },
        { source: 'eso/db', vaultPath: 'kv/data/a', fields: { y: 'Y' } },
      ]),
    );
    expect(dup.success).toBe(false);
    const bad = MigrationPlanSchema.safeParse(
      base([{ source: 'k8s-secret/db', vaultPath: 'kv/data/a', fields: { x: 'X' }, secret: 'db' }]),
    );
    expect(bad.error?.issues.map((i) => i.message)).toEqual([
      '"secret" belongs only to sops/<file>#<doc> and eso/<externalsecret> sources; "k8s-secret/db" names its Secret itself',
    ]);
  });
});
