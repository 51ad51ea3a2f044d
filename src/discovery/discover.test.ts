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

  it('gives names the containers read priority over names made up for mounted files', () => {
    const w = deployment('web', {
      containers: [
        {
          name: 'a',
          env: [
            { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'zz', key: 'x' } } },
            { name: 'TOKEN', value: 'literal' },
          ],
          volumeMounts: [{ name: 'v', mountPath: '/s' }],
        },
      ],
      volumes: [{ name: 'v', secret: { secretName: 'aa' } }],
    });
    const secrets = [
      { namespace: 'ns', name: 'aa', keys: ['db-pass', 'token'] },
      { namespace: 'ns', name: 'zz', keys: ['x'] },
    ];
    const { plan, notes } = discover([w], secrets, opts);
    expect(plan.tenants[0]?.workloads[0]?.secrets.map((s) => s.fields)).toEqual([
      {},
      { x: 'DB_PASS' },
    ]);
    expect(notes[0]?.text).toContain(
      'db-pass → DB_PASS dropped: DB_PASS is already mapped from k8s-secret/zz:x.',
    );
    expect(notes[0]?.text).toContain(
      'token → TOKEN dropped: TOKEN is already set by the pod spec.',
    );
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
