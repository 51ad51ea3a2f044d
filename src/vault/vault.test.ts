import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.js';
import type { MigrationPlan } from '../plan/schema.js';
import {
  requestPath,
  resolveVaultConfig,
  retryWindowFromEnv,
  serverErrors,
  splitAddresses,
  type Method,
} from './client.js';
import { computeChanges, desiredState, policyHcl, type VaultState } from './provision.js';

const plan: MigrationPlan = {
  apiVersion: 'cloudtaser.io/v1',
  kind: 'MigrationPlan',
  metadata: { name: 'p' },
  tenants: [
    {
      name: 'pay',
      namespace: 'payments',
      workloads: [
        {
          kind: 'Deployment',
          name: 'api',
          serviceAccount: 'api',
          status: 'pending',
          secrets: [
            { source: 'k8s-secret/db', vaultPath: 'secret/data/payments/db', fields: { p: 'P' } },
            { source: 'vault-agent/x', vaultPath: 'kv/data/legacy/x', fields: { x: 'X' } },
          ],
        },
        {
          kind: 'Deployment',
          name: 'old',
          serviceAccount: 'old',
          status: 'skipped',
          secrets: [
            { source: 'k8s-secret/old', vaultPath: 'secret/data/payments/old', fields: {} },
          ],
        },
        {
          kind: 'StatefulSet',
          name: 'worker',
          serviceAccount: 'api',
          status: 'migrated',
          secrets: [{ source: 'k8s-secret/db', vaultPath: 'secret/data/payments/db', fields: {} }],
        },
      ],
    },
    { name: 'empty', namespace: 'empty', workloads: [] },
  ],
};

const emptyState = (): VaultState => ({
  mounts: { 'secret/': { type: 'kv', options: { version: '2' } } },
  auths: { 'kubernetes/': { type: 'kubernetes' } },
  authConfigured: true,
  policies: new Map(),
  roles: new Map(),
});

describe('provisioning plan', () => {
  it('grants read on exactly the paths of active workloads, once each', () => {
    const tenant = plan.tenants[0];
    if (!tenant) throw new Error('fixture');
    const hcl = policyHcl(tenant);
    expect(hcl.match(/^path "[^"]+"/gm)).toEqual([
      'path "kv/data/legacy/x"',
      'path "secret/data/payments/db"',
    ]);
    expect(hcl).not.toContain('old');
  });

  it('binds the role to the namespace and the active service accounts only', () => {
    const d = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes' });
    expect(d.roles).toHaveLength(1);
    expect(d.roles[0]?.body.bound_service_account_names).toEqual(['api']);
    expect(d.roles[0]?.body.bound_service_account_namespaces).toEqual(['payments']);
    expect(d.emptyTenants).toEqual(['empty']);
    expect(d.otherMounts).toEqual(['kv']);
  });

  it('classifies create, update and unchanged, and counts writes', () => {
    const d = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes' });
    const fresh = computeChanges(d, emptyState());
    expect(fresh.writes).toBe(2);
    expect(fresh.warnings.some((w) => w.includes('mount kv/, which does not exist'))).toBe(true);
    const state = emptyState();
    const [policy] = d.policies;
    const [role] = d.roles;
    if (!policy || !role) throw new Error('fixture');
    state.policies.set('pay-read', policy.hcl);
    state.roles.set('pay-role', { ...role.body, token_ttl: 3600, extra: 'kept' });
    const again = computeChanges(d, state);
    expect(again.policies[0]?.action).toBe('unchanged');
    expect(again.roles[0]?.action).toBe('update');
    expect(again.roles[0]?.differences).toEqual(['token_ttl']);
    expect(again.writes).toBe(1);
  });

  it('sets the vault token audience on every role and updates a role that lacks it', () => {
    const d = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes' });
    const [role] = d.roles;
    if (!role) throw new Error('fixture');
    expect(role.body).toMatchObject({ audience: 'cloudtaser' });
    // A role written before the audience existed (the server returns "").
    const state = emptyState();
    state.roles.set('pay-role', { ...role.body, audience: '' });
    const before = computeChanges(d, state);
    expect(before.roles[0]?.action).toBe('update');
    expect(before.roles[0]?.differences).toEqual(['audience']);
    state.roles.set('pay-role', { ...role.body });
    expect(computeChanges(d, state).roles[0]?.action).toBe('unchanged');
  });

  it('refuses a KV v1 mount and a non-kubernetes auth method', () => {
    const d = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes' });
    const v1 = emptyState();
    v1.mounts['secret/'] = { type: 'kv', options: { version: '1' } };
    expect(() => computeChanges(d, v1)).toThrow(/KV version 1/);
    const wrongAuth = emptyState();
    wrongAuth.auths['kubernetes/'] = { type: 'approle' };
    expect(() => computeChanges(d, wrongAuth)).toThrow(UserError);
  });
});

describe('vault connection settings', () => {
  it('refuses plain http except to loopback, unless --allow-insecure-vault', () => {
    const env = { VAULT_TOKEN: 't' };
    for (const address of [
      'http://vault.example.com:8200',
      'http://localhost.example.com',
      'http://127.0.0.1@vault.example.com',
      'http://10.0.0.1:8200',
    ]) {
      let message = '';
      try {
        resolveVaultConfig({ address }, env, '--openbao-addr');
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        message = `${e.message} ${e.hint ?? ''}`;
      }
      expect(message, address).toContain('plain http');
      expect(message, address).toContain('--allow-insecure-vault');
    }
    for (const address of [
      'http://127.0.0.1:8200',
      'http://127.1.2.3',
      'http://localhost:8200',
      'http://[::1]:8200',
    ]) {
      expect(resolveVaultConfig({ address }, env, '--x').address, address).toBe(address);
    }
    expect(
      resolveVaultConfig({ address: 'http://vault:8200', allowInsecure: true }, env, '--x').address,
    ).toBe('http://vault:8200');
  });

  it('takes flag, then BAO_*, then VAULT_*, then ~/.vault-token', async () => {
    const home = await mkdtemp(join(tmpdir(), 'ct-home-'));
    const env = { BAO_ADDR: 'https://bao:8200/', VAULT_ADDR: 'https://vault', VAULT_TOKEN: 'vt' };
    expect(resolveVaultConfig({}, env, '--x', home)).toMatchObject({
      address: 'https://bao:8200',
      token: 'vt',
      skipVerify: false,
    });
    expect(
      resolveVaultConfig({ address: 'https://flag', token: 'ft' }, env, '--x', home),
    ).toMatchObject({
      address: 'https://flag',
      token: 'ft',
    });
    await writeFile(join(home, '.vault-token'), 'from-file\n');
    expect(
      resolveVaultConfig({}, { VAULT_ADDR: 'https://v', VAULT_SKIP_VERIFY: 'true' }, '--x', home),
    ).toMatchObject({
      token: 'from-file',
      skipVerify: true,
    });
  });

  it('says which flag or variable is missing, and how to give it', () => {
    const hint = (() => {
      try {
        resolveVaultConfig({}, {}, '--openbao-addr', '/nonexistent');
      } catch (e) {
        return e instanceof UserError ? `${e.message} / ${e.hint ?? ''}` : 'wrong error';
      }
      return 'no error';
    })();
    expect(hint).toBe(
      'no OpenBao/Vault address / pass --openbao-addr https://vault.example.com or set BAO_ADDR',
    );
    expect(() => resolveVaultConfig({ address: 'ftp://x' }, {}, '--x', '/nonexistent')).toThrow(
      /http/,
    );
    expect(() => resolveVaultConfig({ address: 'https://x' }, {}, '--x', '/nonexistent')).toThrow(
      /no vault token/,
    );
  });

  it('flattens Go multierror text from the server', () => {
    expect(serverErrors({ errors: ['1 error occurred:\n\t* permission denied\n\n'] })).toBe(
      'permission denied',
    );
  });
});

describe('request target', () => {
  // What the client sent before it skipped the URL object on its hot path.
  const viaUrl = (address: string, method: Method, path: string): string => {
    const url = new URL(`${address}/v1/${path}`);
    if (method === 'LIST') url.searchParams.set('list', 'true');
    return url.pathname + url.search;
  };

  it('is exactly what a URL would make of the address and path', () => {
    const segment = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/),
      fc.constantFrom('..', '.', '', 'a b', '%2F', 'é', 'x?y', 'a#b', '~u', 'list=1'),
      fc.string({ maxLength: 6 }),
    );
    const path = fc
      .tuple(fc.array(segment, { minLength: 1, maxLength: 5 }), fc.constantFrom('', '?depth=1'))
      .map(([s, q]) => `${s.join('/')}${q}`);
    const prefix = fc.constantFrom('', '/vault', '/a/b');
    const method = fc.constantFrom<Method>('GET', 'LIST', 'POST', 'DELETE');
    fc.assert(
      fc.property(prefix, method, path, (pre, m, p) => {
        expect(requestPath(pre, m, p)).toBe(viaUrl(`http://127.0.0.1:8200${pre}`, m, p));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps the plain paths the tool builds as they are', () => {
    expect(requestPath('', 'GET', 'sys/policies/acl/payments-read')).toBe(
      '/v1/sys/policies/acl/payments-read',
    );
    expect(requestPath('', 'LIST', 'auth/kubernetes/role')).toBe(
      '/v1/auth/kubernetes/role?list=true',
    );
    expect(requestPath('/p', 'GET', 'secret/subkeys/a/b?depth=1')).toBe(
      '/p/v1/secret/subkeys/a/b?depth=1',
    );
  });
});

describe('several vault addresses', () => {
  it('takes BAO_ADDR as comma-separated nodes, each checked, one scheme for all', () => {
    const env = { BAO_TOKEN: 't' };
    const c = resolveVaultConfig(
      { address: 'https://a:8200/, https://b:8200' },
      env,
      '--openbao-addr',
      '/nonexistent',
    );
    expect(c.address).toBe('https://a:8200,https://b:8200');
    expect(splitAddresses(c.address)).toEqual(['https://a:8200', 'https://b:8200']);
    expect(() =>
      resolveVaultConfig({ address: 'https://a,http://127.0.0.1:1' }, env, '--x', '/n'),
    ).toThrow(/mix http and https/);
    expect(() =>
      resolveVaultConfig({ address: 'https://a,http://b.example' }, env, '--x', '/n'),
    ).toThrow(/plain http/);
  });

  it('reads CLOUDTASER_VAULT_RETRY as a duration', () => {
    expect(retryWindowFromEnv({})).toBeUndefined();
    expect(retryWindowFromEnv({ CLOUDTASER_VAULT_RETRY: '20s' })).toBe(20_000);
    expect(retryWindowFromEnv({ CLOUDTASER_VAULT_RETRY: '500ms' })).toBe(500);
    expect(retryWindowFromEnv({ CLOUDTASER_VAULT_RETRY: '2m' })).toBe(120_000);
    expect(() => retryWindowFromEnv({ CLOUDTASER_VAULT_RETRY: 'soon' })).toThrow(
      /CLOUDTASER_VAULT_RETRY must be a duration/,
    );
  });
});
