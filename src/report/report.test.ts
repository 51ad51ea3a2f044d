import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { planJsonSchema } from '../plan/schema.js';
import { auditJsonSchema } from './audit-schema.js';
import { judgeProtection } from './inventory.js';
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
