import { describe, expect, it } from 'vitest';
import type { MigrationPlan } from '../plan/schema.js';
import { needsSource, planPath, wantedPaths, type SourceSecret, type WantedPath } from './plan.js';

function plan(
  workloads: {
    ns: string;
    name: string;
    secrets: MigrationPlan['tenants'][number]['workloads'][number]['secrets'];
  }[],
): MigrationPlan {
  const byNs = new Map<string, MigrationPlan['tenants'][number]>();
  for (const w of workloads) {
    let t = byNs.get(w.ns);
    if (!t) {
      t = { name: w.ns, namespace: w.ns, workloads: [] };
      byNs.set(w.ns, t);
    }
    t.workloads.push({
      kind: 'Deployment',
      name: w.name,
      serviceAccount: 'default',
      status: 'pending',
      secrets: w.secrets,
    });
  }
  return {
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'p' },
    tenants: [...byNs.values()],
  };
}

const db = {
  source: 'k8s-secret/db',
  vaultPath: 'secret/data/pay/db',
  fields: { user: 'U', pass: 'P' },
};
const secrets = (data: Record<string, string | Buffer>): Map<string, SourceSecret> =>
  new Map([
    [
      'pay/db',
      {
        kind: 'found',
        data: new Map(
          Object.entries(data).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]),
        ),
      },
    ],
  ]);
const one = (p: MigrationPlan): WantedPath => {
  const [w] = wantedPaths(p);
  if (!w) throw new Error('no path');
  return w;
};
const none = { overwrite: false, merge: false };

describe('wantedPaths', () => {
  it('dedupes a path two workloads map from the same Secret and unions their fields', () => {
    const w = wantedPaths(
      plan([
        { ns: 'pay', name: 'a', secrets: [{ ...db, fields: { user: 'U' } }] },
        { ns: 'pay', name: 'b', secrets: [{ ...db, fields: { pass: 'DB_PASS' } }] },
      ]),
    );
    expect(w).toHaveLength(1);
    expect([...(w[0]?.fields.keys() ?? [])].sort()).toEqual(['pass', 'user']);
    expect(w[0]?.conflicts).toEqual([]);
  });

  it('imports the fields a plan delivers as files, as well as those it delivers as env vars', () => {
    const w = one(
      plan([
        {
          ns: 'pay',
          name: 'a',
          secrets: [
            {
              ...db,
              fields: { user: 'U' },
              files: { 'tls.key': { path: '/etc/tls/tls.key', mountPath: '/etc/tls' } },
            },
          ],
        },
      ]),
    );
    expect([...w.fields.keys()].sort()).toEqual(['tls.key', 'user']);
  });

  it('reports the same path and field mapped from two different Secrets', () => {
    const w = one(
      plan([
        { ns: 'pay', name: 'a', secrets: [db] },
        { ns: 'pay', name: 'b', secrets: [{ ...db, source: 'k8s-secret/other' }] },
      ]),
    );
    expect(w.conflicts.join()).toMatch(
      /field (user|pass) is mapped from Secret pay\/db key \w+ and from Secret pay\/other/,
    );
    const p = planPath(w, secrets({ user: 'u', pass: 'p' }), { kind: 'missing' }, none);
    expect(p.action).toBe('fail');
    expect(p.data).toBeUndefined();
  });
});

describe('planPath', () => {
  const w = one(plan([{ ns: 'pay', name: 'a', secrets: [db] }]));

  it('creates a missing path with cas 0 and exactly the mapped fields', () => {
    const p = planPath(w, secrets({ user: 'u', pass: 'p', extra: 'x' }), { kind: 'missing' }, none);
    expect(p.action).toBe('create');
    expect(p.cas).toBe(0);
    expect(Object.fromEntries(p.data ?? [])).toEqual({ user: 'u', pass: 'p' });
  });

  it('keeps a complete path without --overwrite and needs no Secret for it', () => {
    const state = { kind: 'found' as const, version: 3, keys: ['user', 'pass'] };
    expect(needsSource(w, state, none)).toBe(false);
    const p = planPath(w, new Map(), state, none);
    expect(p.action).toBe('keep');
    expect(p.data).toBeUndefined();
  });

  it('overwrites with cas = current version', () => {
    const p = planPath(
      w,
      secrets({ user: 'u', pass: 'p' }),
      { kind: 'found', version: 3, keys: ['user', 'pass'] },
      { overwrite: true, merge: false },
    );
    expect([p.action, p.cas, p.keepExisting]).toEqual(['overwrite', 3, false]);
  });

  it('refuses a partial path without --merge, and adds only the missing field with it', () => {
    const state = { kind: 'found' as const, version: 2, keys: ['user'] };
    const refused = planPath(w, secrets({ user: 'u', pass: 'p' }), state, none);
    expect(refused.action).toBe('fail');
    expect(refused.reason).toMatch(/without pass; pass --merge/);
    const merged = planPath(w, secrets({ user: 'u', pass: 'p' }), state, {
      overwrite: false,
      merge: true,
    });
    expect([merged.action, merged.cas, merged.keepExisting]).toEqual(['merge', 2, true]);
    expect(Object.fromEntries(merged.data ?? [])).toEqual({ pass: 'p' });
  });

  it('writes a new version over a deleted latest version with cas = that version', () => {
    const p = planPath(
      w,
      secrets({ user: 'u', pass: 'p' }),
      { kind: 'gone', version: 4, how: 'deleted' },
      none,
    );
    expect([p.action, p.cas]).toEqual(['create', 4]);
  });

  it('names the missing Secret or key, and refuses binary values by field, never by value', () => {
    const missing = planPath(
      w,
      new Map([['pay/db', { kind: 'missing', reason: 'Secret pay/db not found' }]]),
      { kind: 'missing' },
      none,
    );
    expect(missing).toMatchObject({ action: 'fail', reason: 'Secret pay/db not found' });
    const noKey = planPath(w, secrets({ user: 'u' }), { kind: 'missing' }, none);
    expect(noKey.reason).toBe('Secret pay/db has no key pass (field pass)');
    const binary = planPath(
      w,
      secrets({ user: 'u', pass: Buffer.from([0xff, 0xfe, 0x00]) }),
      { kind: 'missing' },
      none,
    );
    expect(binary.action).toBe('fail');
    expect(binary.reason).toMatch(/^field pass \(Secret pay\/db key pass\) is binary, not UTF-8/);
    expect(binary.data).toBeUndefined();
  });

  it('leaves a Vault Agent source alone', () => {
    const va = one(
      plan([
        {
          ns: 'pay',
          name: 'a',
          secrets: [{ source: 'vault-agent/x', vaultPath: 'kv/data/x', fields: { a: 'A' } }],
        },
      ]),
    );
    expect(planPath(va, new Map(), { kind: 'missing' }, none).action).toBe('skip-vault-agent');
  });
});
