import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { planJsonSchema } from '../plan/schema.js';
import { planFor } from '../testing/plan.js';
import { auditJsonSchema } from './audit-schema.js';
import { migratedValueFindings, migratedValueSecrets, validateWorkload } from './findings.js';
import { judgeProtection, rolloutState, type WorkloadFacts } from './inventory.js';
import { excessGrants, grantsRead, parsePolicy } from './policy.js';

describe('policy reading', () => {
  const rules = parsePolicy(`
# comment with path "nope" { capabilities = ["read"] }
path "secret/data/a/db" { capabilities = ["read"] }
path "secret/data/b/*" {
  capabilities = ["read", "list"]
}
path "secret/data/+/shared" { capabilities = ["read"] }
path "secret/data/b/blocked" { capabilities = ["deny"] }
`);

  it('matches exact paths, prefix globs and + segments; deny wins', () => {
    expect(grantsRead(rules, 'secret/data/a/db')).toBe(true);
    expect(grantsRead(rules, 'secret/data/a/other')).toBe(false);
    expect(grantsRead(rules, 'secret/data/b/anything/deep')).toBe(true);
    expect(grantsRead(rules, 'secret/data/z/shared')).toBe(true);
    expect(grantsRead(rules, 'secret/data/b/blocked')).toBe(false);
    expect(grantsRead(rules, 'nope')).toBe(false);
  });

  it('names grants wider than the paths in use', () => {
    expect(excessGrants(rules, ['secret/data/a/db'])).toEqual([
      'secret/data/b/* (wildcard)',
      'secret/data/+/shared (wildcard)',
    ]);
    expect(
      excessGrants(parsePolicy('path "x/data/y" { capabilities = ["read", "update"] }'), [
        'x/data/y',
      ]),
    ).toEqual(['x/data/y (update)']);
    expect(parsePolicy('{"path":{"a/data/b":{"capabilities":["read"]}}}')).toEqual([
      { path: 'a/data/b', capabilities: ['read'] },
    ]);
  });
});

describe('policy precedence (OpenBao applies one rule per path, not the union)', () => {
  const can = (policy: string, path: string): boolean => grantsRead(parsePolicy(policy), path);

  it('an exact rule is the only one that counts, with or without read', () => {
    const shadowed = `
path "secret/data/a/db" { capabilities = ["list"] }
path "secret/data/a/*" { capabilities = ["read"] }`;
    expect(can(shadowed, 'secret/data/a/db')).toBe(false);
    expect(can(shadowed, 'secret/data/a/other')).toBe(true);
    const exactBeatsDeny = `
path "secret/data/*" { capabilities = ["deny"] }
path "secret/data/a/db" { capabilities = ["read"] }`;
    expect(can(exactBeatsDeny, 'secret/data/a/db')).toBe(true);
  });

  it('among globs the longest prefix wins, whether it grants or denies', () => {
    const policy = `
path "secret/*" { capabilities = ["deny"] }
path "secret/data/a/*" { capabilities = ["read"] }
path "secret/data/a/locked/*" { capabilities = ["deny"] }`;
    expect(can(policy, 'secret/data/a/db')).toBe(true);
    expect(can(policy, 'secret/data/a/locked/db')).toBe(false);
    expect(can(policy, 'secret/data/b/db')).toBe(false);
  });

  it('follows the documented order: first wildcard, then glob vs +, then + count, then length', () => {
    // The documentation's own example: secret/* outranks secret/+/+/foo/*.
    const documented = `
path "secret/*" { capabilities = ["list"] }
path "secret/+/+/foo/*" { capabilities = ["read"] }`;
    expect(can(documented, 'secret/x/y/foo/z')).toBe(false);
    // Same first wildcard position: the rule not ending in * wins.
    const plusOverGlob = `
path "secret/data/*" { capabilities = ["deny"] }
path "secret/data/+/db" { capabilities = ["read"] }`;
    expect(can(plusOverGlob, 'secret/data/a/db')).toBe(true);
    expect(can(plusOverGlob, 'secret/data/a/other')).toBe(false);
    // A later first wildcard wins.
    const laterGlob = `
path "secret/data/+/db" { capabilities = ["read"] }
path "secret/data/a*" { capabilities = ["list"] }`;
    expect(can(laterGlob, 'secret/data/a/db')).toBe(false);
    // Fewer + segments win.
    const fewerPlus = `
path "secret/+/+/db" { capabilities = ["deny"] }
path "secret/+/a/db" { capabilities = ["read"] }`;
    expect(can(fewerPlus, 'secret/x/a/db')).toBe(true);
    // Then the longer pattern.
    const longer = `
path "secret/+/a*" { capabilities = ["deny"] }
path "secret/+/ab*" { capabilities = ["read"] }`;
    expect(can(longer, 'secret/x/abc')).toBe(true);
    expect(can(longer, 'secret/x/ac')).toBe(false);
  });

  it('the same pattern in several policies is one rule: union, and deny alone wins', () => {
    const union = parsePolicy('path "secret/data/a/*" { capabilities = ["list"] }');
    const more = parsePolicy('path "secret/data/a/*" { capabilities = ["read"] }');
    expect(grantsRead([...union, ...more], 'secret/data/a/db')).toBe(true);
    const deny = parsePolicy('path "secret/data/a/*" { capabilities = ["deny"] }');
    expect(grantsRead([...union, ...more, ...deny], 'secret/data/a/db')).toBe(false);
  });

  it('reads blocks with nested maps and old-style policy values', () => {
    expect(
      parsePolicy(`
path "secret/data/a" {
  allowed_parameters = { "x" = [] }
  capabilities = ["read"]
}
path "secret/data/b" { policy = "write" }`),
    ).toEqual([
      { path: 'secret/data/a', capabilities: ['read'] },
      { path: 'secret/data/b', capabilities: ['create', 'read', 'update', 'delete', 'list'] },
    ]);
  });
});

describe('protection state', () => {
  const full = {
    'cloudtaser.io/inject': 'true',
    'cloudtaser.io/vault-address': 'https://v',
    'cloudtaser.io/vault-role': 'r',
    'cloudtaser.io/secret-paths': 'secret/data/a/b',
    'cloudtaser.io/env-map': 'secret/data/a/b:f=F',
  };
  it('classifies protected, partial, unprotected and not applicable', () => {
    expect(judgeProtection(full, true).state).toBe('protected');
    expect(judgeProtection({ ...full, 'cloudtaser.io/inject': 'false' }, true).problems).toEqual([
      'cloudtaser.io/inject is "false", not "true"',
    ]);
    expect(
      judgeProtection({ ...full, 'cloudtaser.io/env-map': 'secret/data/x/y:f=F' }, true).problems,
    ).toEqual([
      'cloudtaser.io/env-map reads paths not in cloudtaser.io/secret-paths: secret/data/x/y',
    ]);
    expect(judgeProtection({ 'cloudtaser.io/restartedAt': 'x' }, true).state).toBe('unprotected');
    expect(judgeProtection(undefined, false).state).toBe('not-applicable');
  });

  it('counts a plain-http vault address without the opt-in as partial: the webhook refuses those pods', () => {
    const plain = { ...full, 'cloudtaser.io/vault-address': 'http://v' };
    expect(judgeProtection(plain, true)).toMatchObject({
      state: 'partial',
      problems: [
        'cloudtaser.io/vault-address is plain http without cloudtaser.io/allow-insecure-vault: "true" (the webhook refuses these pods)',
      ],
    });
    expect(
      judgeProtection({ ...plain, 'cloudtaser.io/allow-insecure-vault': 'true' }, true).state,
    ).toBe('protected');
  });
});

describe('role findings', () => {
  const w: WorkloadFacts = {
    kind: 'Deployment',
    namespace: 'payments',
    name: 'api',
    serviceAccount: 'api',
    sources: [],
    protection: {
      state: 'protected',
      problems: [],
      role: 'pay-role',
      paths: ['secret/data/payments/db'],
      envMap: [{ path: 'secret/data/payments/db', field: 'p', env: 'P' }],
    },
    pods: { total: 0, injected: 0, ready: 0 },
    rollout: 'no-pods',
  };
  const facts = (audience: string) => ({
    authPath: 'kubernetes',
    authEnabled: true,
    roles: new Map([
      [
        'pay-role',
        {
          exists: true,
          namespaces: ['payments'],
          serviceAccounts: ['api'],
          policies: ['pay-read'],
          audience,
          noDefaultPolicy: false,
        },
      ],
    ]),
    policies: new Map([
      ['pay-read', parsePolicy('path "secret/data/payments/db" { capabilities = ["read"] }')],
    ]),
    paths: new Map([['secret/data/payments/db', { kind: 'found' as const, keys: ['p'] }]]),
  });

  it('flag a role without the vault token audience, and pass one with it', () => {
    expect(validateWorkload(w, facts(''))).toEqual([
      {
        severity: 'error',
        code: 'role-audience',
        subject: 'Deployment payments/api',
        message:
          'role pay-role sets no audience: it accepts the pods\' Kubernetes-API token, not only their vault token (audience "cloudtaser"); run source apply-plan',
      },
    ]);
    expect(validateWorkload(w, facts('other')).map((f) => f.message)).toEqual([
      'role pay-role requires audience "other", not "cloudtaser" (the pods\' vault token); run source apply-plan',
    ]);
    expect(validateWorkload(w, facts('cloudtaser'))).toEqual([]);
  });
});

describe('published schemas', () => {
  it('are the ones the code derives (regenerate with npm run schemas)', async () => {
    const plan = JSON.parse(
      await readFile(new URL('../../schema/migration-plan-v1.json', import.meta.url), 'utf8'),
    ) as unknown;
    const audit = JSON.parse(
      await readFile(new URL('../../schema/audit-report-v1.json', import.meta.url), 'utf8'),
    ) as unknown;
    expect(plan).toEqual(planJsonSchema());
    expect(audit).toEqual(auditJsonSchema());
  });
});

describe('native Secrets still holding migrated values', () => {
  const workload = (over: Partial<WorkloadFacts>): WorkloadFacts => ({
    kind: 'Deployment',
    namespace: 'shop',
    name: 'api',
    serviceAccount: 'default',
    sources: [],
    protection: {
      state: 'protected',
      problems: [],
      paths: ['secret/data/shop/db'],
      envMap: [
        { path: 'secret/data/shop/db', field: 'pass', env: 'DB_PASS' },
        { path: 'secret/data/shop/db', field: 'user', env: 'DB_USER' },
      ],
    },
    pods: { total: 0, injected: 0, ready: 0 },
    rollout: 'no-pods',
    ...over,
  });
  const inv = (...workloads: WorkloadFacts[]) => ({ server: 's', clusterUid: 'u', workloads });

  it('finds the Secret a vault path is named after, and one the workload still names', () => {
    const found = migratedValueSecrets(inv(workload({ sources: ['k8s-secret/legacy'] })), [
      { namespace: 'shop', name: 'db', keys: ['pass', 'user', 'x'] },
      { namespace: 'shop', name: 'legacy', keys: ['user'] },
      { namespace: 'shop', name: 'unrelated', keys: ['pass'] },
      { namespace: 'other', name: 'db', keys: ['pass'] },
    ]);
    expect(found).toEqual([
      {
        namespace: 'shop',
        name: 'db',
        keys: ['pass', 'user'],
        vaultPaths: ['secret/data/shop/db'],
      },
      { namespace: 'shop', name: 'legacy', keys: ['user'], vaultPaths: ['secret/data/shop/db'] },
    ]);
    expect(migratedValueFindings(found)[0]).toMatchObject({
      severity: 'warning',
      code: 'native-secret-remains',
      subject: 'Secret shop/db',
    });
  });

  it('with the plan, finds the Secret an ExternalSecret wrote under its renamed keys, files too', () => {
    const esoWorkload = workload({
      protection: {
        state: 'protected',
        problems: [],
        paths: ['secret/data/legacy/payments'],
        envMap: [{ path: 'secret/data/legacy/payments', field: 'password', env: 'DB_PASS' }],
      },
    });
    const plan = planFor('shop', [
      {
        kind: 'Deployment',
        name: 'api',
        serviceAccount: 'default',
        status: 'migrated',
        secrets: [
          {
            source: 'eso/payments',
            secret: 'db-credentials',
            secretKeys: { password: 'db-pass' },
            vaultPath: 'secret/data/legacy/payments',
            fields: { password: 'DB_PASS' },
            files: { 'ca.crt': { path: '/etc/db/ca.crt', mountPath: '/etc/db' } },
          },
        ],
      },
    ]);
    const secrets = [
      { namespace: 'shop', name: 'db-credentials', keys: ['ca.crt', 'db-pass', 'other'] },
    ];
    // Neither named by the workload nor after the vault path: found only through the plan.
    expect(migratedValueSecrets(inv(esoWorkload), secrets)).toEqual([]);
    expect(migratedValueSecrets(inv(esoWorkload), secrets, plan)).toEqual([
      {
        namespace: 'shop',
        name: 'db-credentials',
        keys: ['ca.crt', 'db-pass'],
        vaultPaths: ['secret/data/legacy/payments'],
      },
    ]);
  });

  it('counts nothing once the Secrets are gone, or for unprotected workloads', () => {
    expect(migratedValueSecrets(inv(workload({})), [])).toEqual([]);
    const unprotected = workload({
      protection: { state: 'unprotected', problems: [], paths: [], envMap: [] },
    });
    expect(
      migratedValueSecrets(inv(unprotected), [{ namespace: 'shop', name: 'db', keys: ['pass'] }]),
    ).toEqual([]);
  });
});

describe('rollout state', () => {
  it('rolled out only when every pod carries cloudtaser-init and is Ready', () => {
    expect(rolloutState({ total: 0, injected: 0, ready: 0 })).toBe('no-pods');
    expect(rolloutState({ total: 3, injected: 2, ready: 3 })).toBe('old-template');
    expect(rolloutState({ total: 3, injected: 3, ready: 2 })).toBe('not-ready');
    expect(rolloutState({ total: 3, injected: 3, ready: 3 })).toBe('rolled-out');
  });
});
