import { describe, expect, it } from 'vitest';
import type { V1PodSpec } from '@kubernetes/client-node';
import type { MigrationPlan } from '../plan/schema.js';
import type { PathState } from '../vault/verify.js';
import {
  comparisonKey,
  decide,
  plannedSecrets,
  type Comparison,
  type PlannedSecret,
  type SecretFacts,
} from './decide.js';
import { EMPTY_NAMESPACE, secretReferrers, type Referrer } from './references.js';
import { resolveCleanupMode } from './run.js';

const P = 'secret/data/shop/db';

function plan(): MigrationPlan {
  return {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'p' },
    tenants: [
      {
        name: 'shop',
        namespace: 'shop',
        workloads: [
          {
            kind: 'Deployment',
            name: 'api',
            serviceAccount: 'default',
            status: 'migrated',
            secrets: [
              { source: 'k8s-secret/db', vaultPath: P, fields: { user: 'U' } },
              { source: 'vault-agent/x', vaultPath: 'secret/data/shop/x', fields: {} },
            ],
          },
          {
            kind: 'StatefulSet',
            name: 'worker',
            serviceAccount: 'default',
            status: 'migrated',
            secrets: [{ source: 'k8s-secret/db', vaultPath: P, fields: { pass: 'P' } }],
          },
        ],
      },
      {
        name: 'other',
        namespace: 'other',
        workloads: [
          {
            kind: 'Deployment',
            name: 'a',
            serviceAccount: 'default',
            status: 'pending',
            secrets: [{ source: 'k8s-secret/tls', vaultPath: 'secret/data/other/tls', fields: {} }],
          },
        ],
      },
    ],
  };
}

const facts = (over: Partial<SecretFacts> = {}): SecretFacts => ({
  uid: 'u1',
  resourceVersion: '7',
  type: 'Opaque',
  keys: ['pass', 'user'],
  owners: [],
  ...over,
});

const found = (keys: string[]): Map<string, PathState> => new Map([[P, { kind: 'found', keys }]]);
const same = (...keys: string[]): Map<string, Comparison> =>
  new Map(keys.map((k) => [comparisonKey(P, k), 'equal' as const]));

function db(): PlannedSecret {
  const p = plannedSecrets(plan()).find((s) => s.name === 'db');
  if (!p) throw new Error('no db');
  return p;
}

describe('plannedSecrets', () => {
  it('collects each k8s-secret source once with the union of its fields, sorted', () => {
    const all = plannedSecrets(plan());
    expect(all.map((s) => `${s.namespace}/${s.name}`)).toEqual(['other/tls', 'shop/db']);
    expect([...db().fields]).toEqual([
      ['user', [P]],
      ['pass', [P]],
    ]);
    expect(db().workloads.map((w) => w.name)).toEqual(['api', 'worker']);
    expect(plannedSecrets(plan(), 'shop').map((s) => s.name)).toEqual(['db']);
  });

  it('counts the fields a workload reads as files as mapped', () => {
    const p = plan();
    const other = p.tenants[1]?.workloads[0]?.secrets[0];
    if (!other) throw new Error('no tls source');
    other.files = { 'tls.key': { path: '/etc/tls/tls.key', mountPath: '/etc/tls' } };
    const tls = plannedSecrets(p).find((s) => s.name === 'tls');
    expect([...(tls?.fields ?? [])]).toEqual([['tls.key', ['secret/data/other/tls']]]);
  });
});

describe('decide', () => {
  it('deletes a Secret whose every key is in vault with the same value and nothing references', () => {
    const v = decide(db(), facts(), [], found(['pass', 'user']), same('pass', 'user'));
    expect(v).toEqual({ action: 'delete', summary: `2 key(s) match vault (${P})` });
  });

  it('reports a Secret that no longer exists as gone', () => {
    expect(decide(db(), undefined, [], new Map(), new Map())).toEqual({ action: 'gone' });
  });

  it('refuses a field missing in vault, naming it', () => {
    const v = decide(db(), facts(), [], found(['user']), same('user'));
    expect(v).toMatchObject({ action: 'refuse', error: false });
    expect(JSON.stringify(v)).toContain('missing field(s): pass');
  });

  it('refuses a path whose latest version is deleted or missing', () => {
    const del = decide(db(), facts(), [], new Map([[P, { kind: 'deleted', version: 3 }]]), same());
    expect(JSON.stringify(del)).toContain('latest version (v3) is deleted');
    const none = decide(db(), facts(), [], new Map(), same());
    expect(JSON.stringify(none)).toContain('path not found');
  });

  it('refuses a value that differs from vault or is not text, without any value', () => {
    const compared = new Map<string, Comparison>([
      [comparisonKey(P, 'user'), 'differs'],
      [comparisonKey(P, 'pass'), 'not-text'],
    ]);
    const v = decide(db(), facts(), [], found(['pass', 'user']), compared);
    expect(v.action).toBe('refuse');
    const text = JSON.stringify(v);
    expect(text).toContain('key user differs from vault');
    expect(text).toContain('key pass is not UTF-8 text');
  });

  it('a key never compared counts as different (never deleted on a missing check)', () => {
    const v = decide(db(), facts(), [], found(['pass', 'user']), same('user'));
    expect(JSON.stringify(v)).toContain('key pass differs from vault');
  });

  it('refuses keys the plan does not map, by name', () => {
    const v = decide(
      db(),
      facts({ keys: ['extra', 'pass', 'user'] }),
      [],
      found(['pass', 'user']),
      same('pass', 'user'),
    );
    expect(JSON.stringify(v)).toContain('does not map, so their values are not in vault: extra');
  });

  it('refuses a service-account-token Secret whatever else holds', () => {
    const v = decide(
      db(),
      facts({ type: 'kubernetes.io/service-account-token' }),
      [],
      found(['pass', 'user']),
      same('pass', 'user'),
    );
    expect(JSON.stringify(v)).toContain('never deleted');
  });

  it('refuses a Secret an ExternalSecret or SealedSecret owns, saying a controller recreates it', () => {
    const v = decide(
      db(),
      facts({ owners: [{ kind: 'ExternalSecret', name: 'db', controller: true }] }),
      [],
      found(['pass', 'user']),
      same('pass', 'user'),
    );
    expect(JSON.stringify(v)).toContain(
      'owned by ExternalSecret shop/db: its controller would recreate it',
    );
  });

  it('refuses a referenced Secret naming every referrer, and pull secrets as such', () => {
    const refs: Referrer[] = [
      { kind: 'CronJob', namespace: 'shop', name: 'nightly', via: ['env'] },
      { kind: 'ServiceAccount', namespace: 'shop', name: 'default', via: ['imagePullSecrets'] },
    ];
    const v = decide(
      db(),
      facts({ type: 'kubernetes.io/dockerconfigjson' }),
      refs,
      found(['pass', 'user']),
      same('pass', 'user'),
    );
    expect(v).toMatchObject({
      action: 'refuse',
      reasons: [
        'used as a pull secret; still referenced by CronJob shop/nightly (env), ServiceAccount shop/default (imagePullSecrets)',
      ],
    });
  });

  it('deletes past an old revision kept for rollout undo, saying the undo would not start; refuses with a live referrer too', () => {
    const old: Referrer = {
      kind: 'ReplicaSet',
      namespace: 'shop',
      name: 'api-1',
      via: ['envFrom'],
      note: 'old revision of Deployment api kept for rollback',
      history: 'rollout undo to ReplicaSet shop/api-1 would no longer start',
    };
    const v = decide(db(), facts(), [old], found(['pass', 'user']), same('pass', 'user'));
    expect(v.action).toBe('delete');
    expect(v.action === 'delete' && v.summary).toContain(
      'rollout undo to ReplicaSet shop/api-1 would no longer start',
    );
    const job: Referrer = { kind: 'CronJob', namespace: 'shop', name: 'nightly', via: ['env'] };
    const both = decide(db(), facts(), [old, job], found(['pass', 'user']), same('pass', 'user'));
    expect(both).toMatchObject({
      action: 'refuse',
      reasons: ['still referenced by CronJob shop/nightly (env)'],
    });
  });

  it('refuses while a plan workload reading it is not migrated', () => {
    const p = plan();
    const w = p.tenants[0]?.workloads[1];
    if (w) w.status = 'pending';
    const planned = plannedSecrets(p).find((s) => s.name === 'db') as PlannedSecret;
    const v = decide(planned, facts(), [], found(['pass', 'user']), same('pass', 'user'));
    expect(JSON.stringify(v)).toContain('the plan has not migrated StatefulSet worker (pending)');
  });

  it('marks a vault refusal as an error, not a finding', () => {
    const v = decide(
      db(),
      facts(),
      [],
      new Map([[P, { kind: 'error', message: 'denied', status: 403 }]]),
      same(),
    );
    expect(v).toMatchObject({ action: 'refuse', error: true });
  });
});

describe('secretReferrers', () => {
  it("counts protect's record of removed references as history, named by what unprotect would do", () => {
    const record = JSON.stringify({
      v: 1,
      batches: [
        [
          {
            container: 'api',
            list: 'env',
            index: 0,
            entry: { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'pass' } } },
          },
        ],
      ],
    });
    const template = {
      metadata: { annotations: { 'cloudtaser.io/native-refs': record } },
      spec: { containers: [{ name: 'api' }] },
    };
    const refs = secretReferrers('shop', {
      ...EMPTY_NAMESPACE,
      deployments: [{ metadata: { name: 'api' }, spec: { template } }],
      // The ReplicaSet carries a copy of the same template: counted once, on the Deployment.
      replicaSets: [{ metadata: { name: 'api-2' }, spec: { replicas: 1, template } }],
    });
    expect(refs.get('db')).toEqual([
      {
        kind: 'Deployment',
        namespace: 'shop',
        name: 'api',
        via: ['removed by protect'],
        history: 'target unprotect of Deployment shop/api would put back a reference to it',
      },
    ]);
  });

  it('finds every way a namespace names a Secret', () => {
    const tmpl = (spec: V1PodSpec, annotations: Record<string, string> = {}) => ({
      metadata: { annotations },
      spec,
    });
    const refs = secretReferrers('shop', {
      ...EMPTY_NAMESPACE,
      pods: [
        {
          metadata: { name: 'p1' },
          spec: {
            containers: [{ name: 'c', envFrom: [{ secretRef: { name: 'a' } }] }],
            ephemeralContainers: [
              {
                name: 'dbg',
                env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'b', key: 'k' } } }],
              },
            ],
            imagePullSecrets: [{ name: 'pull' }],
            volumes: [
              { name: 'v', csi: { driver: 'd', nodePublishSecretRef: { name: 'csi-cred' } } },
            ],
          },
        },
      ],
      deployments: [
        {
          metadata: { name: 'api' },
          spec: {
            template: tmpl(
              {
                containers: [{ name: 'c' }],
                volumes: [{ name: 'v', secret: { secretName: 'a' } }],
              },
              { 'cloudtaser.io/inject': 'true' },
            ),
          },
        },
      ],
      replicaSets: [
        {
          metadata: {
            name: 'api-1',
            ownerReferences: [{ kind: 'Deployment', name: 'api', apiVersion: 'apps/v1', uid: 'x' }],
          },
          spec: {
            replicas: 0,
            template: tmpl({
              containers: [{ name: 'c' }],
              volumes: [{ name: 'v', projected: { sources: [{ secret: { name: 'old' } }] } }],
            }),
          },
        },
      ],
      cronJobs: [
        {
          metadata: { name: 'nightly' },
          spec: {
            jobTemplate: {
              spec: {
                template: tmpl({
                  containers: [
                    {
                      name: 'c',
                      env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'a', key: 'k' } } }],
                    },
                  ],
                }),
              },
            },
          },
        },
      ],
      ingresses: [{ metadata: { name: 'web' }, spec: { tls: [{ secretName: 'tls' }] } }],
      serviceAccounts: [
        {
          metadata: { name: 'default' },
          secrets: [{ name: 'tok' }],
          imagePullSecrets: [{ name: 'pull' }],
        },
      ],
    });
    const names = (s: string) =>
      (refs.get(s) ?? []).map((r) => `${r.kind}/${r.name}:${r.via.join('+')}`);
    expect(names('a')).toEqual(['Pod/p1:envFrom', 'Deployment/api:volume', 'CronJob/nightly:env']);
    expect(refs.get('a')?.[1]?.note).toContain('protected by cloudtaser');
    expect(names('b')).toEqual(['Pod/p1:env']);
    expect(names('pull')).toEqual([
      'Pod/p1:imagePullSecrets',
      'ServiceAccount/default:imagePullSecrets',
    ]);
    expect(names('csi-cred')).toEqual(['Pod/p1:volume credentials']);
    expect(names('old')).toEqual(['ReplicaSet/api-1:projected volume']);
    expect(refs.get('old')?.[0]?.note).toContain('old revision of Deployment api');
    expect(names('tls')).toEqual(['Ingress/web:tls']);
    expect(names('tok')).toEqual(['ServiceAccount/default:secrets']);
    expect(refs.has('unrelated')).toBe(false);
  });
});

describe('resolveCleanupMode', () => {
  it('is a dry run unless --yes or --interactive, and takes one of them only', () => {
    expect(resolveCleanupMode({})).toBe('dry-run');
    expect(resolveCleanupMode({ yes: true })).toBe('yes');
    expect(resolveCleanupMode({ interactive: true })).toBe('interactive');
    expect(() => resolveCleanupMode({ yes: true, dryRun: true })).toThrow(
      /only one of --yes, --dry-run/,
    );
  });
});
