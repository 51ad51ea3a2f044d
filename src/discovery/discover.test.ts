import { describe, expect, it } from 'vitest';
import { parsePlan } from '../plan/read.js';
import { renderPlan } from '../plan/write.js';
import type { WorkloadObject } from '../contract/workload.js';
import { discover, envNameFromKey, templateFields } from './discover.js';

const opts = {
  kvMount: 'secret',
  planName: 'p',
  cluster: 'https://k8s',
  createdAt: '2026-04-01T10:00:00Z',
  createdBy: 'me',
};

function deployment(
  name: string,
  spec: NonNullable<NonNullable<WorkloadObject['spec']>['template']>['spec'],
  annotations?: Record<string, string>,
): WorkloadObject {
  return {
    kind: 'Deployment',
    metadata: { name, namespace: 'ns' },
    spec: {
      template: {
        ...(annotations ? { metadata: { annotations } } : {}),
        ...(spec ? { spec } : {}),
      },
    },
  };
}

describe('discover (pure)', () => {
  it('derives env var names from keys', () => {
    expect(envNameFromKey('tls.crt')).toBe('TLS_CRT');
    expect(envNameFromKey('1st-key')).toBe('_1ST_KEY');
    expect(envNameFromKey('already_OK')).toBe('ALREADY_OK');
  });

  it('reads fields from Vault Agent templates', () => {
    expect(
      templateFields(
        '{{ .Data.data.user }}:{{ index .Data.data "pass-word" }} {{ .Data.data.user }}',
      ),
    ).toEqual(['pass-word', 'user']);
  });

  it("skips cloudtaser's own webhook: its serving certificate stays a native Secret", () => {
    const volumes = [{ name: 'tls', secret: { secretName: 'cloudtaser-webhook-tls' } }];
    const webhook = deployment('cloudtaser-webhook', { containers: [{ name: 'w' }], volumes });
    webhook.metadata.labels = { 'app.kubernetes.io/part-of': 'cloudtaser' };
    const app = deployment('app', { containers: [{ name: 'a' }], volumes });
    const secrets = [{ namespace: 'ns', name: 'cloudtaser-webhook-tls', keys: ['tls.crt'] }];
    const { plan, summary } = discover([webhook, app], secrets, opts);
    expect(plan.tenants[0]?.workloads.map((w) => w.name)).toEqual(['app']);
    expect(summary.skipped).toEqual([
      {
        namespace: 'ns',
        kind: 'Deployment',
        name: 'cloudtaser-webhook',
        reason: 'cloudtaser-component',
      },
    ]);
  });

  it('leaves an env var that containers read from different Secrets unmapped, and says so', () => {
    const w = deployment('web', {
      containers: [
        {
          name: 'a',
          env: [{ name: 'PASS', valueFrom: { secretKeyRef: { name: 'one', key: 'p' } } }],
        },
        {
          name: 'b',
          env: [{ name: 'PASS', valueFrom: { secretKeyRef: { name: 'two', key: 'q' } } }],
        },
      ],
    });
    const secrets = [
      { namespace: 'ns', name: 'one', keys: ['p'] },
      { namespace: 'ns', name: 'two', keys: ['q'] },
    ];
    const { plan, notes } = discover([w], secrets, opts);
    const refs = plan.tenants[0]?.workloads[0]?.secrets;
    // Mapping PASS from either Secret would change what the other container
    // reads; the env-map is one per pod.
    expect(refs?.map((s) => s.fields)).toEqual([{}, {}]);
    expect(notes.map((n) => n.text)).toEqual([
      '"PASS" is not mapped: the containers read it from different sources; it stays as it is.',
      '"PASS" is not mapped: the containers read it from different sources; it stays as it is.',
    ]);
    // The plan it writes must pass its own validation.
    expect(() => parsePlan(renderPlan(plan, notes), 'p.yaml')).not.toThrow();
  });

  it('proposes files for mounted Secrets at the paths the app reads now, with their modes', () => {
    const w = deployment('web', {
      containers: [
        {
          name: 'a',
          env: [{ name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'zz', key: 'x' } } }],
          volumeMounts: [
            // Whole Secret, all keys, defaultMode 0440 (288 in the API's decimal).
            { name: 'tls', mountPath: '/etc/tls/', readOnly: true },
            // items[].path and an item's own mode.
            { name: 'cfg', mountPath: '/etc/app' },
            // subPath: the mount point is the file itself.
            { name: 'one', mountPath: '/etc/ssl/private/key.pem', subPath: 'key.pem' },
          ],
        },
      ],
      volumes: [
        { name: 'tls', secret: { secretName: 'tls', defaultMode: 0o440 } },
        {
          name: 'cfg',
          secret: {
            secretName: 'cfg',
            items: [
              { key: 'db.yaml', path: 'conf/db.yaml', mode: 0o600 },
              { key: 'token', path: 'token' },
            ],
          },
        },
        { name: 'one', secret: { secretName: 'one' } },
      ],
    });
    const secrets = [
      { namespace: 'ns', name: 'tls', keys: ['tls.crt', 'tls.key'] },
      { namespace: 'ns', name: 'cfg', keys: ['db.yaml', 'token', 'unused'] },
      { namespace: 'ns', name: 'one', keys: ['key.pem', 'other.pem'] },
      { namespace: 'ns', name: 'zz', keys: ['x'] },
    ];
    const { plan, notes } = discover([w], secrets, opts);
    const refs = plan.tenants[0]?.workloads[0]?.secrets ?? [];
    expect(refs.map((s) => [s.source, s.fields, s.files])).toEqual([
      [
        'k8s-secret/cfg',
        {},
        {
          'db.yaml': { path: '/etc/app/conf/db.yaml', mountPath: '/etc/app', mode: '0600' },
          token: { path: '/etc/app/token', mountPath: '/etc/app' },
        },
      ],
      [
        'k8s-secret/one',
        {},
        {
          'key.pem': { path: '/etc/ssl/private/key.pem', mountPath: '/etc/ssl/private/key.pem' },
        },
      ],
      [
        'k8s-secret/tls',
        {},
        {
          'tls.crt': { path: '/etc/tls/tls.crt', mountPath: '/etc/tls', mode: '0440' },
          'tls.key': { path: '/etc/tls/tls.key', mountPath: '/etc/tls', mode: '0440' },
        },
      ],
      ['k8s-secret/zz', { x: 'DB_PASS' }, undefined],
    ]);
    // No env var is made up for a file any more.
    expect(notes.map((n) => n.text).join('\n')).not.toMatch(/dropped/);
    expect(notes[0]?.text).toContain('delivered as files at the same paths');
    // The plan it writes passes its own validation and reads back equal.
    expect(parsePlan(renderPlan(plan, notes), 'p.yaml').plan).toEqual(plan);
  });

  it('maps a key mounted at two paths once, and says where else it was read', () => {
    const w = deployment('web', {
      containers: [
        { name: 'a', volumeMounts: [{ name: 'v', mountPath: '/a' }] },
        { name: 'b', volumeMounts: [{ name: 'v', mountPath: '/b' }] },
      ],
      volumes: [{ name: 'v', secret: { secretName: 's' } }],
    });
    const { plan, notes } = discover([w], [{ namespace: 'ns', name: 's', keys: ['k'] }], opts);
    expect(plan.tenants[0]?.workloads[0]?.secrets[0]?.files).toEqual({
      k: { path: '/a/k', mountPath: '/a' },
    });
    expect(notes[0]?.text).toContain('key k is also read at /b/k; only /a/k is mapped.');
  });

  it('leaves a Secret key named __proto__ out of the plan, with a note, instead of losing it silently', () => {
    const w = deployment('web', {
      containers: [
        {
          name: 'a',
          env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 's', key: '__proto__' } } }],
        },
      ],
    });
    const { plan, notes } = discover(
      [w],
      [{ namespace: 'ns', name: 's', keys: ['__proto__'] }],
      opts,
    );
    expect(plan.tenants[0]?.workloads[0]?.secrets[0]?.fields).toEqual({});
    expect(notes[0]?.text).toContain('key __proto__ is not mapped');
    expect(() => parsePlan(renderPlan(plan, notes), 'p.yaml')).not.toThrow();
  });

  describe('an env var named __proto__ (a valid name; a Secret key may carry it too)', () => {
    const secrets = [
      { namespace: 'ns', name: 'api-key', keys: ['_x'] },
      { namespace: 'ns', name: 'tls.certs', keys: ['__proto__', 'db_pass'] },
    ];
    const fieldsOf = (r: ReturnType<typeof discover>) =>
      Object.fromEntries(
        (r.plan.tenants[0]?.workloads[0]?.secrets ?? []).map((s) => [s.source, s.fields]),
      );

    it('is not mapped when one container reads it from env and another gets it by envFrom', () => {
      const w = deployment('web', {
        initContainers: [
          {
            name: 'init',
            env: [
              { name: '__proto__', valueFrom: { secretKeyRef: { name: 'api-key', key: '_x' } } },
            ],
          },
        ],
        containers: [{ name: 'sidecar', envFrom: [{ secretRef: { name: 'tls.certs' } }] }],
      });
      const r = discover([w], secrets, opts);
      // Mapping __proto__ from api-key/_x would replace what the sidecar reads.
      expect(fieldsOf(r)).toEqual({
        'k8s-secret/api-key': {},
        'k8s-secret/tls.certs': { db_pass: 'db_pass' },
      });
      const shadowed =
        '"__proto__" is not mapped: the containers read it from different sources; it stays as it is.';
      expect(r.notes.map((n) => n.text.split('\n'))).toEqual([[shadowed], [shadowed]]);
      expect(() => parsePlan(renderPlan(r.plan, r.notes), 'p.yaml')).not.toThrow();
    });

    it('follows env over envFrom within one container', () => {
      const w = deployment('web', {
        containers: [
          {
            name: 'app',
            envFrom: [{ secretRef: { name: 'tls.certs' } }],
            env: [
              { name: '__proto__', valueFrom: { secretKeyRef: { name: 'api-key', key: '_x' } } },
            ],
          },
        ],
      });
      const r = discover([w], secrets, opts);
      // The env entry replaces the Secret key in that container's environment.
      expect(fieldsOf(r)).toEqual({
        'k8s-secret/api-key': { _x: '__proto__' },
        'k8s-secret/tls.certs': { db_pass: 'db_pass' },
      });
      expect(r.notes).toEqual([]);
      expect(() => parsePlan(renderPlan(r.plan, r.notes), 'p.yaml')).not.toThrow();
    });

    it('delivered only by envFrom, is left to the Secret with a note (a plan cannot hold the key)', () => {
      const w = deployment('web', {
        containers: [
          {
            name: 'app',
            envFrom: [
              { secretRef: { name: 'tls.certs' } },
              { secretRef: { name: 'tls.certs' }, prefix: 'P_' },
            ],
          },
        ],
      });
      const r = discover([w], secrets, opts);
      expect(fieldsOf(r)).toEqual({ 'k8s-secret/tls.certs': { db_pass: 'P_db_pass' } });
      expect(r.notes[0]?.text).toContain('key __proto__ is not mapped');
      expect(() => parsePlan(renderPlan(r.plan, r.notes), 'p.yaml')).not.toThrow();
    });
  });

  it('converts a KV v1-style Vault Agent path and says so', () => {
    const w = deployment(
      'agent',
      { containers: [{ name: 'c' }] },
      {
        'openbao.openbao.org/agent-inject-secret-db': 'kv/app/db',
      },
    );
    const { plan, notes } = discover([w], [], opts);
    expect(plan.tenants[0]?.workloads[0]?.secrets[0]?.vaultPath).toBe('kv/data/app/db');
    expect(notes[0]?.text).toContain('converted to the KV v2 API form');
    expect(notes[0]?.text).toContain('the agent rendered the whole secret');
  });

  it('uses --kv-mount for suggested paths and sorts everything', () => {
    const ws: WorkloadObject[] = ['b', 'a'].map((n) =>
      deployment(n, { containers: [{ name: 'c', envFrom: [{ secretRef: { name: `s-${n}` } }] }] }),
    );
    const secrets = ['a', 'b'].map((n) => ({ namespace: 'ns', name: `s-${n}`, keys: ['Z', 'A'] }));
    const { plan } = discover(ws, secrets, { ...opts, kvMount: 'kv/prod' });
    const wl = plan.tenants[0]?.workloads ?? [];
    expect(wl.map((w) => w.name)).toEqual(['a', 'b']);
    expect(wl[0]?.secrets[0]?.vaultPath).toBe('kv/prod/data/ns/s-a');
    expect(Object.keys(wl[0]?.secrets[0]?.fields ?? {})).toEqual(['A', 'Z']);
  });
});
