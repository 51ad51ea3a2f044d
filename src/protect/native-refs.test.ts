import type {
  V1Container,
  V1EnvFromSource,
  V1EnvVar,
  V1PodSpec,
  V1Volume,
} from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ANNOTATION, type FileMapEntry } from '../contract/annotations.js';
import {
  annotationOps,
  appendRecord,
  findNativeRefs,
  readRecord,
  recordedSecrets,
  removalOps,
  restoreOps,
  servedInFull,
  wholeVolumeSecrets,
  type JsonPatchOp,
  type SecretKeyLookup,
} from './native-refs.js';

interface Template {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: V1PodSpec;
}
interface Obj {
  spec: { template: Template };
}

// A small RFC 6902 applier with the API server's semantics for what these
// patches use: add (insert into arrays, set object members), remove,
// replace, and test (deep equality; a failed test fails the whole patch).
function applyPatch(doc: Obj, ops: readonly JsonPatchOp[]): Obj {
  const out = structuredClone(doc) as unknown;
  const segs = (path: string): string[] =>
    path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const parentOf = (path: string): { parent: unknown; key: string } => {
    const s = segs(path);
    let cur: unknown = out;
    for (const k of s.slice(0, -1)) {
      cur = Array.isArray(cur) ? cur[Number(k)] : (cur as Record<string, unknown>)[k];
      if (cur === undefined || cur === null) throw new Error(`no parent for ${path}`);
    }
    return { parent: cur, key: s[s.length - 1] ?? '' };
  };
  for (const op of ops) {
    const { parent, key } = parentOf(op.path);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (op.op === 'add') {
        if (i > parent.length) throw new Error(`index out of range: ${op.path}`);
        parent.splice(i, 0, structuredClone(op.value));
      } else {
        if (i >= parent.length) throw new Error(`index out of range: ${op.path}`);
        if (op.op === 'remove') parent.splice(i, 1);
        else if (op.op === 'replace') parent[i] = structuredClone(op.value);
        else if (JSON.stringify(sorted(parent[i])) !== JSON.stringify(sorted(op.value)))
          throw new Error(`test failed at ${op.path}`);
      }
    } else {
      const o = parent as Record<string, unknown>;
      if (op.op === 'add') o[key] = structuredClone(op.value);
      else {
        if (!(key in o)) throw new Error(`no member ${op.path}`);
        if (op.op === 'remove') Reflect.deleteProperty(o, key);
        else if (op.op === 'replace') o[key] = structuredClone(op.value);
        else if (JSON.stringify(sorted(o[key])) !== JSON.stringify(sorted(op.value)))
          throw new Error(`test failed at ${op.path}`);
      }
    }
  }
  return normalise(out) as Obj;
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sorted((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** As the API server stores objects: empty lists and maps are omitted. */
function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const n = normalise(x);
      if (Array.isArray(n) && n.length === 0) continue;
      if (n && typeof n === 'object' && !Array.isArray(n) && Object.keys(n).length === 0) continue;
      out[k] = n;
    }
    return out;
  }
  return v;
}

const NONE: ReadonlySet<string> = new Set();

/** The volumes taken as served: all of them (true), none (false), or those named. */
function served(
  spec: V1PodSpec | undefined,
  files: boolean | ReadonlySet<string>,
): ReadonlySet<string> {
  if (typeof files !== 'boolean') return files;
  return files ? new Set((spec?.volumes ?? []).map((v) => v.name)) : NONE;
}

const WANTED = { [ANNOTATION.inject]: 'true', [ANNOTATION.vaultRole]: 'a-role' };

/** What protect sends: removals, then the annotations with the record. */
function protect(
  obj: Obj,
  migrated: Map<string, Record<string, string>>,
  keysOf: SecretKeyLookup,
  files: boolean | ReadonlySet<string> = false,
): { after: Obj; kept: string[]; removed: number } {
  const t = obj.spec.template;
  const f = findNativeRefs(t.spec, migrated, keysOf, { files: served(t.spec, files) });
  const record: Record<string, string> =
    f.remove.length > 0
      ? {
          [ANNOTATION.nativeRefs]: JSON.stringify(
            appendRecord(readRecord(t.metadata?.annotations), f.remove),
          ),
        }
      : {};
  const ops = [
    ...removalOps(t.spec, f.remove),
    ...annotationOps(t.metadata, { ...WANTED, ...record }),
  ];
  return { after: applyPatch(obj, ops), kept: f.kept, removed: f.remove.length };
}

/** What unprotect sends: the restores, then the owned annotations removed. */
function unprotect(obj: Obj): Obj {
  const t = obj.spec.template;
  const record = readRecord(t.metadata?.annotations);
  const r = record ? restoreOps(t.spec, record) : { ops: [], restored: [], skipped: [] };
  expect(r.skipped).toEqual([]);
  const owned = [...Object.keys(WANTED), ANNOTATION.nativeRefs].filter(
    (k) => t.metadata?.annotations?.[k] !== undefined,
  );
  return applyPatch(obj, [
    ...r.ops,
    ...annotationOps(t.metadata, Object.fromEntries(owned.map((k) => [k, null]))),
  ]);
}

const keyRef = (name: string, secret: string, key: string, optional?: boolean): V1EnvVar => ({
  name,
  valueFrom: { secretKeyRef: { name: secret, key, ...(optional ? { optional } : {}) } },
});
const KEYS: Record<string, string[]> = {
  db: ['username', 'password'],
  api: ['token'],
  other: ['x'],
};
const keysOf: SecretKeyLookup = (n) => KEYS[n] ?? null;

const objOf = (spec: V1PodSpec, annotations?: Record<string, string>): Obj => ({
  spec: {
    template: {
      metadata: { labels: { app: 'a' }, ...(annotations ? { annotations } : {}) },
      spec,
    },
  },
});

/** Every secretKeyRef/secretRef to these Secrets left in the template. */
function refsTo(obj: Obj, names: string[]): string[] {
  const spec = obj.spec.template.spec;
  const out: string[] = [];
  for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
    for (const e of c.env ?? [])
      if (names.includes(e.valueFrom?.secretKeyRef?.name ?? ''))
        out.push(`${c.name}:env:${e.name}`);
    for (const e of c.envFrom ?? [])
      if (names.includes(e.secretRef?.name ?? ''))
        out.push(`${c.name}:envFrom:${e.secretRef?.name ?? ''}`);
  }
  return out;
}

describe('findNativeRefs', () => {
  type Fields = Record<string, string>;
  const migrated = new Map<string, Fields>([
    ['db', { username: 'DB_USER', password: 'DB_PASS' }],
    ['api', { token: 'API_TOKEN' }],
  ]);

  it('removes mapped env refs and complete envFrom refs in every container, init ones included', () => {
    const obj = objOf({
      initContainers: [{ name: 'migrate', image: 'm', env: [keyRef('DB_USER', 'db', 'username')] }],
      containers: [
        {
          name: 'app',
          image: 'a',
          env: [
            { name: 'MODE', value: 'prod' },
            keyRef('DB_PASS', 'db', 'password', true),
            keyRef('OTHER', 'other', 'x'),
          ],
          envFrom: [{ secretRef: { name: 'api' } }, { configMapRef: { name: 'cfg' } }],
        },
        { name: 'sidecar', image: 's', envFrom: [{ prefix: 'DB_', secretRef: { name: 'db' } }] },
      ],
    });
    // envFrom api reads its key `token` as the variable `token`.
    const m = new Map<string, Fields>([...migrated, ['api', { token: 'token' }]]);
    const { after, kept, removed } = protect(obj, m, keysOf);
    expect(removed).toBe(3);
    // The sidecar's prefixed envFrom reads DB_username/DB_password, which the plan does not map.
    expect(kept).toEqual([
      'envFrom Secret db in container sidecar (keys not mapped in the plan: DB_username, DB_password)',
    ]);
    expect(refsTo(after, ['db', 'api'])).toEqual(['sidecar:envFrom:db']);
    // A Secret the plan does not migrate is never touched, nor are other entries.
    expect(after.spec.template.spec?.containers[0]?.env).toEqual([
      { name: 'MODE', value: 'prod' },
      keyRef('OTHER', 'other', 'x'),
    ]);
    expect(after.spec.template.spec?.containers[0]?.envFrom).toEqual([
      { configMapRef: { name: 'cfg' } },
    ]);
    expect(after.spec.template.spec?.initContainers?.[0]?.env).toBeUndefined();
    expect(recordedSecrets(readRecord(after.spec.template.metadata?.annotations))).toEqual(
      new Set(['db', 'api']),
    );
    expect(unprotect(after)).toEqual(normalise(obj));
  });

  it('removes an envFrom with a prefix when the plan maps every prefixed key', () => {
    const spec: V1PodSpec = {
      containers: [
        { name: 'app', image: 'a', envFrom: [{ prefix: 'P_', secretRef: { name: 'db' } }] },
      ],
    };
    const m = new Map([['db', { username: 'P_username', password: 'P_password' }]]);
    expect(findNativeRefs(spec, m, keysOf, { files: NONE }).remove).toHaveLength(1);
    // One key mapped to another name: kept, and the message names it.
    const renamed = new Map([['db', { username: 'P_username', password: 'PASSWORD' }]]);
    expect(findNativeRefs(spec, renamed, keysOf, { files: NONE }).kept).toEqual([
      'envFrom Secret db in container app (keys not mapped in the plan: P_password)',
    ]);
  });

  it('does not require keys the container env overrides; keeps envFrom it cannot read', () => {
    const spec: V1PodSpec = {
      containers: [
        {
          name: 'app',
          image: 'a',
          env: [{ name: 'password', value: 'literal-override' }],
          envFrom: [{ secretRef: { name: 'db' } }],
        },
      ],
    };
    const m = new Map([['db', { username: 'username' }]]);
    expect(findNativeRefs(spec, m, keysOf, { files: NONE }).remove).toHaveLength(1);
    expect(findNativeRefs(spec, m, () => undefined, { files: NONE }).kept).toEqual([
      'envFrom Secret db in container app (its key names could not be read)',
    ]);
    expect(findNativeRefs(spec, m, () => null, { files: NONE }).kept).toEqual([
      'envFrom Secret db in container app (the Secret does not exist)',
    ]);
    // optional: true and absent: the container reads nothing from it.
    const optional: V1PodSpec = {
      containers: [
        { name: 'app', image: 'a', envFrom: [{ secretRef: { name: 'db', optional: true } }] },
      ],
    };
    expect(findNativeRefs(optional, m, () => null, { files: NONE }).remove).toHaveLength(1);
  });

  it('keeps an env ref whose key the plan maps to another variable, or does not map', () => {
    const spec: V1PodSpec = {
      containers: [
        {
          name: 'app',
          image: 'a',
          env: [keyRef('PASS', 'db', 'password'), keyRef('TOKEN', 'api', 'other-key')],
        },
      ],
    };
    const f = findNativeRefs(spec, migrated, keysOf, { files: NONE });
    expect(f.remove).toEqual([]);
    expect(f.kept).toEqual([
      'env PASS in container app (key password of Secret db is not mapped to PASS in the plan)',
      'env TOKEN in container app (key other-key of Secret api is not mapped to TOKEN in the plan)',
    ]);
  });

  it('keeps secret and projected volumes whose files are not all served, and says why', () => {
    const spec: V1PodSpec = {
      containers: [{ name: 'app', image: 'a', volumeMounts: [{ name: 'certs', mountPath: '/c' }] }],
      volumes: [
        { name: 'certs', secret: { secretName: 'db' } },
        {
          name: 'mix',
          projected: { sources: [{ secret: { name: 'api' } }, { configMap: { name: 'c' } }] },
        },
        { name: 'mine', secret: { secretName: 'other' } },
      ],
    };
    const f = findNativeRefs(spec, migrated, keysOf, { files: NONE });
    expect(f.remove).toEqual([]);
    expect(f.kept).toEqual([
      'secret volume certs (Secret db): not all of its files are served from vault',
      'projected volume mix (Secret api): not all of its files are served from vault',
    ]);
    // A served volume is swapped for the memory emptyDir the webhook fills
    // (the mounts still name it), and put back exactly by unprotect.
    const obj = objOf(spec);
    const { after, removed, kept } = protect(obj, migrated, keysOf, new Set(['certs']));
    expect(removed).toBe(1);
    expect(kept).toEqual([
      'projected volume mix (Secret api): not all of its files are served from vault',
    ]);
    expect(after.spec.template.spec?.volumes).toEqual([
      { name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
      spec.volumes?.[1],
      { name: 'mine', secret: { secretName: 'other' } },
    ]);
    expect(after.spec.template.spec?.containers[0]?.volumeMounts).toEqual([
      { name: 'certs', mountPath: '/c' },
    ]);
    expect(unprotect(after)).toEqual(normalise(obj));
    // Both projected and secret volumes go when served.
    const all = protect(obj, migrated, keysOf, true);
    expect(all.removed).toBe(2);
    expect(unprotect(all.after)).toEqual(normalise(obj));
  });

  it('serves a volume without items in full only when the file-map has every key its Secret has', () => {
    const spec: V1PodSpec = {
      containers: [
        { name: 'app', image: 'a', volumeMounts: [{ name: 'certs', mountPath: '/etc/certs/' }] },
      ],
      volumes: [
        { name: 'certs', secret: { secretName: 'certs' } },
        {
          name: 'listed',
          secret: { secretName: 'db', items: [{ key: 'password', path: 'p' }] },
        },
      ],
    };
    const served = new Set(['certs', 'listed']);
    expect(wholeVolumeSecrets(spec, served)).toEqual(['certs']);
    const file = (name: string): FileMapEntry => ({
      path: 'secret/data/x/certs',
      field: name,
      file: `/etc/certs/${name}`,
      mount: '/etc/certs',
      mode: '0400',
    });
    const files = [file('tls.crt'), file('tls.key')];
    const keys =
      (k: readonly string[] | null | undefined): SecretKeyLookup =>
      (n) =>
        n === 'certs' ? k : undefined;
    // Items name their files: the webhook's check is the whole story.
    expect([...servedInFull(spec, served, files, keys(['tls.key', 'tls.crt']))]).toEqual([
      'certs',
      'listed',
    ]);
    // A key added since discover would be a file the app loses.
    expect([...servedInFull(spec, served, files, keys(['tls.key', 'tls.crt', 'ca.crt']))]).toEqual([
      'listed',
    ]);
    // Keys unknown (unreadable, or no such Secret): kept.
    expect([...servedInFull(spec, served, files, keys(undefined))]).toEqual(['listed']);
    expect([...servedInFull(spec, served, files, keys(null))]).toEqual(['listed']);
  });

  it('guards each removal with a test of the exact entry, highest index first', () => {
    const spec: V1PodSpec = {
      containers: [
        {
          name: 'a',
          image: 'a',
          env: [keyRef('DB_USER', 'db', 'username'), keyRef('DB_PASS', 'db', 'password')],
        },
      ],
    };
    const f = findNativeRefs(spec, migrated, keysOf, { files: NONE });
    expect(removalOps(spec, f.remove)).toEqual([
      { op: 'test', path: '/spec/template/spec/containers/0/name', value: 'a' },
      {
        op: 'test',
        path: '/spec/template/spec/containers/0/env/1',
        value: keyRef('DB_PASS', 'db', 'password'),
      },
      { op: 'remove', path: '/spec/template/spec/containers/0/env/1' },
      {
        op: 'test',
        path: '/spec/template/spec/containers/0/env/0',
        value: keyRef('DB_USER', 'db', 'username'),
      },
      { op: 'remove', path: '/spec/template/spec/containers/0/env/0' },
    ]);
    // Against a template edited since it was read, the patch fails as a whole.
    const edited = objOf({
      containers: [
        {
          name: 'a',
          image: 'a',
          env: [{ name: 'NEW', value: '1' }, keyRef('DB_USER', 'db', 'username')],
        },
      ],
    });
    expect(() => applyPatch(edited, removalOps(spec, f.remove))).toThrow(/test failed/);
  });

  it('records references only: no value of any kind lands in the annotation', () => {
    const obj = objOf({
      containers: [{ name: 'app', image: 'a', env: [keyRef('DB_PASS', 'db', 'password')] }],
    });
    const { after } = protect(obj, migrated, keysOf);
    const raw = after.spec.template.metadata?.annotations?.[ANNOTATION.nativeRefs] ?? '';
    expect(JSON.parse(raw)).toEqual({
      v: 1,
      batches: [
        [
          {
            container: 'app',
            init: false,
            list: 'env',
            index: 0,
            entry: keyRef('DB_PASS', 'db', 'password'),
          },
        ],
      ],
    });
  });

  it('puts back two protect batches newest first, and nothing already present twice', () => {
    const obj = objOf(
      {
        containers: [
          {
            name: 'app',
            image: 'a',
            env: [
              keyRef('DB_USER', 'db', 'username'),
              { name: 'X', value: '1' },
              keyRef('DB_PASS', 'db', 'password'),
            ],
            envFrom: [{ secretRef: { name: 'api' } }],
          },
        ],
      },
      { 'team.example.com/owner': 'a' },
    );
    // First run: the plan maps only the username.
    const first = protect(obj, new Map([['db', { username: 'DB_USER' }]]), keysOf);
    expect(first.removed).toBe(1);
    // Second run (annotations already there, plan now complete): removes the rest.
    const second = protect(
      first.after,
      new Map<string, Fields>([...migrated, ['api', { token: 'token' }]]),
      keysOf,
    );
    expect(second.removed).toBe(2);
    expect(refsTo(second.after, ['db', 'api'])).toEqual([]);
    expect(readRecord(second.after.spec.template.metadata?.annotations)?.batches).toHaveLength(2);
    expect(unprotect(second.after)).toEqual(normalise(obj));
    // An entry someone already put back by hand is not added again.
    const t = second.after.spec.template;
    const record = readRecord(t.metadata?.annotations);
    if (!record) throw new Error('no record');
    const byHand = applyPatch(second.after, [
      {
        op: 'add',
        path: '/spec/template/spec/containers/0/envFrom',
        value: [{ secretRef: { name: 'api' } }],
      },
    ]);
    const r = restoreOps(byHand.spec.template.spec, record);
    expect(r.restored.map((x) => x.list)).toEqual(['env', 'env']);
  });

  it('does not protect twice: a second run on the result finds nothing to remove', () => {
    const obj = objOf({
      containers: [{ name: 'app', image: 'a', env: [keyRef('DB_USER', 'db', 'username')] }],
    });
    const once = protect(obj, migrated, keysOf);
    expect(
      findNativeRefs(once.after.spec.template.spec, migrated, keysOf, { files: NONE }).remove,
    ).toEqual([]);
  });
});

describe('unprotect(protect(t)) == t', () => {
  const secrets = ['db', 'api', 'other'];
  const keys = ['username', 'password', 'token'];
  const secretKeys: Record<string, string[]> = { db: keys, api: ['token'], other: ['username'] };
  const envName = fc.constantFrom('DB_USER', 'DB_PASS', 'TOKEN', 'username', 'P_token', 'X');
  const env: fc.Arbitrary<V1EnvVar> = fc.oneof(
    fc.record({ name: envName, value: fc.constantFrom('v', '') }),
    fc
      .tuple(envName, fc.constantFrom(...secrets), fc.constantFrom(...keys), fc.boolean())
      .map(([name, s, key, optional]) => keyRef(name, s, key, optional)),
    envName.map((name) => ({ name, valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } })),
  );
  const envFrom: fc.Arbitrary<V1EnvFromSource> = fc.oneof(
    fc
      .tuple(
        fc.constantFrom(...secrets),
        fc.option(fc.constantFrom('P_', 'DB_'), { nil: undefined }),
        fc.boolean(),
      )
      .map(([name, prefix, optional]) => ({
        ...(prefix ? { prefix } : {}),
        secretRef: { name, ...(optional ? { optional } : {}) },
      })),
    fc.constant({ configMapRef: { name: 'cm' } }),
  );
  const container = (name: string): fc.Arbitrary<V1Container> =>
    fc
      .record({
        env: fc.array(env, { maxLength: 4 }),
        envFrom: fc.array(envFrom, { maxLength: 3 }),
      })
      .map((c) => ({
        name,
        image: 'i',
        ...(c.env.length ? { env: c.env } : {}),
        ...(c.envFrom.length ? { envFrom: c.envFrom } : {}),
      }));
  const volume: fc.Arbitrary<V1Volume> = fc.oneof(
    fc.constantFrom(...secrets).map((s) => ({ name: `s-${s}`, secret: { secretName: s } })),
    fc.constantFrom(...secrets).map((s) => ({
      name: `p-${s}`,
      projected: { sources: [{ secret: { name: s } }, { configMap: { name: 'cm' } }] },
    })),
    fc.constant({ name: 'tmp', emptyDir: {} }),
  );
  const spec: fc.Arbitrary<V1PodSpec> = fc
    .record({
      init: fc.array(container('init'), { maxLength: 1 }),
      main: container('app'),
      side: fc.array(container('sidecar'), { maxLength: 1 }),
      volumes: fc.uniqueArray(volume, { maxLength: 3, selector: (v) => v.name }),
    })
    .map((r) => ({
      ...(r.init.length ? { initContainers: r.init } : {}),
      containers: [r.main, ...r.side],
      ...(r.volumes.length ? { volumes: r.volumes } : {}),
    }));
  // The plan migrates some of the Secrets, mapping some of their keys to some names.
  const plan = fc.dictionary(
    fc.constantFrom('db', 'api'),
    fc.dictionary(fc.constantFrom(...keys), envName, { maxKeys: 3 }),
    { maxKeys: 2 },
  );
  const annotations = fc.option(fc.constant({ 'team.example.com/owner': 'a' }), { nil: undefined });

  it('puts back both of two identical envFrom entries it removed (found by the property below)', () => {
    const twice = { prefix: 'P_', secretRef: { name: 'api' } };
    const obj = objOf(
      { containers: [{ name: 'sidecar', image: 'i', envFrom: [twice, { ...twice }] }] },
      undefined,
    );
    const lookup: SecretKeyLookup = (n) => secretKeys[n] ?? null;
    const { after, removed } = protect(
      obj,
      new Map([['api', { token: 'P_token' }]]),
      lookup,
      false,
    );
    expect(removed).toBe(2);
    expect(unprotect(after)).toEqual(normalise(obj));
  });

  it('holds for varied env, envFrom and volumes, with and without served files', () => {
    fc.assert(
      fc.property(spec, plan, annotations, fc.boolean(), (s, p, a, files) => {
        const obj = objOf(s, a);
        const migrated = new Map(Object.entries(p));
        const lookup: SecretKeyLookup = (n) => secretKeys[n] ?? null;
        const { after, removed } = protect(obj, migrated, lookup, files);
        // Nothing that stays refers to a removed entry's Secret and key pair
        // the plan maps, and Secrets outside the plan are untouched.
        expect(refsTo(after, ['other'])).toEqual(refsTo(obj, ['other']));
        // Idempotent: what protect left behind, it would leave again.
        expect(
          findNativeRefs(after.spec.template.spec, migrated, lookup, {
            files: served(after.spec.template.spec, files),
          }).remove,
        ).toEqual([]);
        if (removed === 0)
          expect(
            after.spec.template.metadata?.annotations?.[ANNOTATION.nativeRefs],
          ).toBeUndefined();
        expect(unprotect(after)).toEqual(normalise(obj));
      }),
      { numRuns: 500 },
    );
  });
});
