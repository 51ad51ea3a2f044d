import type { V1Container, V1Pod, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseFileMap, type FileMapEntry } from '../contract/annotations.js';
import {
  containersNeedingImageConfig,
  decide,
  effectiveArgv,
  filesVolume,
  servedVolumes,
  type JsonPatchOp,
} from './mutate.js';
import { budgetFor, review } from './server.js';

const cfg = {
  initImage: 'registry.example.com/cloudtaser-init:1',
  authMountPath: 'auth/kubernetes',
};
const path = 'secret/data/payments/db';
const annotated = (extra: Record<string, string> = {}): Record<string, string> => ({
  'cloudtaser.io/inject': 'true',
  'cloudtaser.io/vault-address': 'https://vault.eu.example.com',
  'cloudtaser.io/vault-role': 'payments-role',
  'cloudtaser.io/secret-paths': path,
  'cloudtaser.io/env-map': `${path}:password=DB_PASS`,
  ...extra,
});

function pod(annotations?: Record<string, string>, container: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    metadata: { name: 'p', ...(annotations ? { annotations } : {}) },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'app:1',
          command: ['/app'],
          args: ['--port', '8080'],
          env: [
            { name: 'LOG', value: 'info' },
            { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
          ],
        },
      ],
      ...container,
    },
  };
}

/** Applies a JSON Patch (add/replace/remove with '-' appends) to a copy. */
function apply(doc: unknown, ops: JsonPatchOp[]): V1Pod {
  const out = structuredClone(doc) as Record<string, unknown>;
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() ?? '';
    let parent: Record<string, unknown> | unknown[] = out;
    for (const p of parts) parent = parent[p] as Record<string, unknown>;
    if (Array.isArray(parent)) {
      if (op.op === 'remove') parent.splice(Number(last), 1);
      else if (last === '-') parent.push(op.value);
      else parent.splice(Number(last), op.op === 'replace' ? 1 : 0, op.value);
    } else if (op.op === 'remove') Reflect.deleteProperty(parent, last);
    else parent[last] = op.value;
  }
  return out;
}

function decideOrThrow(p: V1Pod): JsonPatchOp[] {
  const d = decide(p, cfg);
  if (!d.allowed) throw new Error(d.message);
  return d.patch;
}

describe('admission decision', () => {
  it('leaves pods without the annotation untouched', () => {
    expect(decide(pod(), cfg)).toEqual({ allowed: true, patch: [], reason: 'not annotated' });
    expect(decide(pod({ 'cloudtaser.io/inject': 'false' }), cfg)).toMatchObject({ patch: [] });
  });

  it('adds the volume, the init container first, the wrapper command and the env', () => {
    const input = pod(annotated(), {
      initContainers: [{ name: 'migrate', image: 'm', command: ['/m'] }],
    });
    const d = decide(input, cfg);
    if (!d.allowed) throw new Error(d.message);
    const out = apply(input, d.patch);
    expect(out.spec?.volumes?.map((v) => v.name)).toEqual([
      'cloudtaser-bin',
      'cloudtaser-token',
      'cloudtaser-run',
    ]);
    expect(out.spec?.volumes?.[2]).toEqual({
      name: 'cloudtaser-run',
      emptyDir: { medium: 'Memory', sizeLimit: '1Mi' },
    });
    expect(out.spec?.volumes?.[0]).toEqual({
      name: 'cloudtaser-bin',
      emptyDir: { medium: 'Memory', sizeLimit: '32Mi' },
    });
    expect(out.spec?.initContainers?.map((c) => c.name)).toEqual(['cloudtaser-init', 'migrate']);
    expect(out.spec?.initContainers?.[0]?.command).toEqual([
      '/cloudtaser-wrapper',
      '--install',
      '/cloudtaser/bin/cloudtaser-wrapper',
    ]);
    const app = out.spec?.containers[0];
    expect(app?.command).toEqual(['/cloudtaser/bin/cloudtaser-wrapper', '/app', '--port', '8080']);
    expect(app?.args).toBeUndefined();
    expect(app?.volumeMounts).toEqual([
      { name: 'cloudtaser-bin', mountPath: '/cloudtaser/bin', readOnly: true },
      {
        name: 'cloudtaser-token',
        mountPath: '/var/run/secrets/cloudtaser.io/serviceaccount',
        readOnly: true,
      },
      { name: 'cloudtaser-run', mountPath: '/cloudtaser/run' },
    ]);
    // DB_PASS no longer comes from the native Secret (it would sit in PID 1's environ).
    expect(app?.env).toEqual([
      { name: 'LOG', value: 'info' },
      { name: 'VAULT_ADDR', value: 'https://vault.eu.example.com' },
      { name: 'VAULT_AUTH_ROLE', value: 'payments-role' },
      { name: 'VAULT_AUTH_MOUNT_PATH', value: 'auth/kubernetes' },
      { name: 'CLOUDTASER_SECRET_PATHS', value: path },
      { name: 'CLOUDTASER_ENV_MAP', value: `${path}:password=DB_PASS` },
      {
        name: 'CLOUDTASER_SA_TOKEN_FILE',
        value: '/var/run/secrets/cloudtaser.io/serviceaccount/token',
      },
      { name: 'CLOUDTASER_STARTED_FILE', value: '/cloudtaser/run/app' },
    ]);
    // Not Ready until the wrapper has started the app (see the next test).
    expect(app?.startupProbe).toEqual({
      exec: { command: ['/cloudtaser/bin/cloudtaser-wrapper', '--started', '/cloudtaser/run/app'] },
      periodSeconds: 1,
      failureThreshold: 300,
      timeoutSeconds: 5,
    });
    // Reinvocation finds the init container and changes nothing.
    expect(decide(out, cfg)).toEqual({ allowed: true, patch: [], reason: 'already injected' });
  });

  it("adds a startup probe on the wrapper's marker to each app container that has none", () => {
    const own = { exec: { command: ['/ready'] }, periodSeconds: 3 };
    const input = pod(annotated(), {
      initContainers: [{ name: 'migrate', image: 'm', command: ['/m'] }],
      containers: [
        { name: 'app', image: 'app:1', command: ['/app'] },
        { name: 'side', image: 'side:1', command: ['/side'], startupProbe: own },
      ],
    });
    const out = apply(input, decideOrThrow(input));
    const [app, side] = out.spec?.containers ?? [];
    expect(app?.startupProbe?.exec?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '--started',
      '/cloudtaser/run/app',
    ]);
    // Its own probe already waits for the app, which starts only after the login.
    expect(side?.startupProbe).toEqual(own);
    // Each container its own marker, so one started app does not make another Ready.
    expect(side?.env?.find((e) => e.name === 'CLOUDTASER_STARTED_FILE')?.value).toBe(
      '/cloudtaser/run/side',
    );
    // Init containers cannot have probes, and need no marker.
    const migrate = out.spec?.initContainers?.find((c) => c.name === 'migrate');
    expect(migrate?.startupProbe).toBeUndefined();
    expect(migrate?.env?.some((e) => e.name === 'CLOUDTASER_STARTED_FILE')).toBe(false);
    expect(migrate?.volumeMounts?.some((m) => m.name === 'cloudtaser-run')).toBe(false);
  });

  it('rejects malformed annotations, naming the annotation', () => {
    const cases: [Record<string, string>, string][] = [
      [{ 'cloudtaser.io/vault-address': 'vault:8200' }, 'cloudtaser.io/vault-address'],
      [{ 'cloudtaser.io/vault-role': '' }, 'cloudtaser.io/vault-role'],
      [{ 'cloudtaser.io/secret-paths': 'secret/db' }, 'cloudtaser.io/secret-paths'],
      [{ 'cloudtaser.io/env-map': 'garbage' }, 'cloudtaser.io/env-map'],
      [{ 'cloudtaser.io/env-map': 'secret/data/other:x=X' }, 'cloudtaser.io/env-map'],
    ];
    for (const [bad, name] of cases) {
      const d = decide(pod(annotated(bad)), cfg);
      expect(d.allowed, name).toBe(false);
      if (!d.allowed) expect(d.message).toContain(name);
    }
  });

  it("takes the command from the image when the spec has none, and refuses when it can't", () => {
    const noCommand = pod(annotated());
    const c = noCommand.spec?.containers[0];
    if (c) {
      delete c.command;
      c.args = ['serve'];
    }
    const image = { entrypoint: ['/entry'], cmd: ['default'] };
    expect(effectiveArgv(c ?? { name: 'x' }, image)).toEqual(['/entry', 'serve']);
    const d = decide(noCommand, cfg, new Map([['app:1', image]]));
    expect(d.allowed && apply(noCommand, d.patch).spec?.containers[0]?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '/entry',
      'serve',
    ]);
    const refused = decide(noCommand, cfg, new Map([['app:1', 'registry said 401']]));
    expect(refused).toEqual({
      allowed: false,
      message:
        'cloudtaser: cannot find the command of container app (image app:1): registry said 401; set command in the pod spec',
    });
  });

  it('answers an AdmissionReview with a base64 JSON Patch and the request uid', async () => {
    const out = await review(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'u1',
          operation: 'CREATE',
          namespace: 'payments',
          object: pod(annotated()),
        },
      },
      cfg,
    );
    expect(out.response).toMatchObject({ uid: 'u1', allowed: true, patchType: 'JSONPatch' });
    const patch = JSON.parse(
      Buffer.from(String(out.response.patch), 'base64').toString(),
    ) as JsonPatchOp[];
    // The patch, applied to the pod under review, gives the injected pod.
    const injected = apply(pod(annotated()), patch);
    expect(injected.spec?.initContainers?.map((c) => c.name)).toEqual(['cloudtaser-init']);
    expect(injected.spec?.containers[0]?.command).toEqual([
      '/cloudtaser/bin/cloudtaser-wrapper',
      '/app',
      '--port',
      '8080',
    ]);
    expect(injected.spec?.containers[0]?.args).toBeUndefined();
    expect(injected.metadata?.annotations?.['cloudtaser.io/injected-by']).toBe(
      'cloudtaser-webhook',
    );
    expect(injected).toEqual(apply(pod(annotated()), decideOrThrow(pod(annotated()))));
    const denied = await review(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid: 'u2',
          operation: 'CREATE',
          object: pod(annotated({ 'cloudtaser.io/vault-role': '' })),
        },
      },
      cfg,
    );
    expect(denied.response).toMatchObject({ uid: 'u2', allowed: false, status: { code: 400 } });
  });
});

describe('the token the wrapper presents to vault', () => {
  it('is a projected service-account token with the cloudtaser audience and a short expiry, not the API token', () => {
    const input = pod(annotated(), { volumes: [{ name: 'data', emptyDir: {} }] });
    const d = decide(input, cfg);
    if (!d.allowed) throw new Error(d.message);
    const out = apply(input, d.patch);
    expect(out.spec?.volumes?.find((v) => v.name === 'cloudtaser-token')).toEqual({
      name: 'cloudtaser-token',
      projected: {
        sources: [
          {
            serviceAccountToken: { audience: 'cloudtaser', expirationSeconds: 600, path: 'token' },
          },
        ],
      },
    });
    const app = out.spec?.containers[0];
    expect(app?.volumeMounts).toContainEqual({
      name: 'cloudtaser-token',
      mountPath: '/var/run/secrets/cloudtaser.io/serviceaccount',
      readOnly: true,
    });
    expect(app?.env).toContainEqual({
      name: 'CLOUDTASER_SA_TOKEN_FILE',
      value: '/var/run/secrets/cloudtaser.io/serviceaccount/token',
    });
    // The init container that copies the wrapper needs no token at all.
    expect(out.spec?.initContainers?.[0]?.volumeMounts).toEqual([
      { name: 'cloudtaser-bin', mountPath: '/cloudtaser/bin' },
    ]);
  });
});

describe('plain-http vault addresses', () => {
  it('are refused unless the pod template opts in with cloudtaser.io/allow-insecure-vault', () => {
    const plain = pod(
      annotated({ 'cloudtaser.io/vault-address': 'http://vault.eu.example.com:8200' }),
    );
    const refused = decide(plain, cfg);
    expect(refused.allowed).toBe(false);
    if (!refused.allowed) {
      expect(refused.message).toContain('plain http');
      expect(refused.message).toContain('cloudtaser.io/allow-insecure-vault');
    }
    const optedIn = pod(
      annotated({
        'cloudtaser.io/vault-address': 'http://vault.eu.example.com:8200',
        'cloudtaser.io/allow-insecure-vault': 'true',
      }),
    );
    const d = decide(optedIn, cfg);
    if (!d.allowed) throw new Error(d.message);
    expect(apply(optedIn, d.patch).spec?.containers[0]?.env).toContainEqual({
      name: 'CLOUDTASER_ALLOW_INSECURE_VAULT',
      value: 'true',
    });
    // https needs no opt-in, and gets no opt-in variable.
    const tls = pod(annotated());
    const t = decide(tls, cfg);
    if (!t.allowed) throw new Error(t.message);
    const env = apply(tls, t.patch).spec?.containers[0]?.env ?? [];
    expect(env.map((e) => e.name)).not.toContain('CLOUDTASER_ALLOW_INSECURE_VAULT');
  });
});

describe('init containers', () => {
  const withInit = (): V1Pod =>
    pod(annotated(), {
      initContainers: [
        {
          name: 'migrate',
          image: 'migrate:1',
          command: ['/migrate'],
          args: ['--up'],
          env: [
            { name: 'MODE', value: 'up' },
            { name: 'DB_PASS', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
          ],
        },
        { name: 'warm', image: 'warm:1' },
      ],
    });

  it('start through the wrapper after cloudtaser-init, without the native Secret env', () => {
    const input = withInit();
    const d = decide(input, cfg, new Map([['warm:1', { entrypoint: ['/warm'], cmd: [] }]]));
    if (!d.allowed) throw new Error(d.message);
    const out = apply(input, d.patch);
    const inits = out.spec?.initContainers ?? [];
    // Init containers run one after another: the copy must come first.
    expect(inits.map((c) => c.name)).toEqual(['cloudtaser-init', 'migrate', 'warm']);
    const migrate = inits[1];
    expect(migrate?.command).toEqual(['/cloudtaser/bin/cloudtaser-wrapper', '/migrate', '--up']);
    expect(migrate?.args).toBeUndefined();
    expect(migrate?.env?.map((e) => e.name)).toEqual([
      'MODE',
      'VAULT_ADDR',
      'VAULT_AUTH_ROLE',
      'VAULT_AUTH_MOUNT_PATH',
      'CLOUDTASER_SECRET_PATHS',
      'CLOUDTASER_ENV_MAP',
      'CLOUDTASER_SA_TOKEN_FILE',
    ]);
    expect(migrate?.volumeMounts?.map((m) => m.name)).toEqual([
      'cloudtaser-bin',
      'cloudtaser-token',
    ]);
    expect(inits[2]?.command).toEqual(['/cloudtaser/bin/cloudtaser-wrapper', '/warm']);
    // The app container is wrapped as before.
    expect(out.spec?.containers[0]?.command?.[0]).toBe('/cloudtaser/bin/cloudtaser-wrapper');
    expect(decide(out, cfg)).toEqual({ allowed: true, patch: [], reason: 'already injected' });
  });

  it("need their image's command looked up like app containers, and are refused by name without one", () => {
    expect(containersNeedingImageConfig(withInit()).map((c) => c.name)).toEqual(['warm']);
    const refused = decide(withInit(), cfg, new Map([['warm:1', 'registry said 404']]));
    expect(refused).toEqual({
      allowed: false,
      message:
        'cloudtaser: cannot find the command of init container warm (image warm:1): registry said 404; set command in the pod spec',
    });
  });
});

describe('review budget', () => {
  it("fits the configured budget inside the API server's timeout, with a margin", () => {
    expect(budgetFor('/mutate', 8000)).toBe(8000);
    expect(budgetFor('/mutate?timeout=10s', 8000)).toBe(8000);
    expect(budgetFor('/mutate?timeout=4s', 8000)).toBe(3000);
    expect(budgetFor('/mutate?timeout=1s', 8000)).toBe(500);
    expect(budgetFor('/mutate?timeout=1500ms', undefined)).toBe(750);
    expect(budgetFor('/mutate?timeout=junk', 5000)).toBe(5000);
  });
});

describe('files from vault', () => {
  const tls = 'secret/data/payments/tls';
  const fileMap = `${tls}:tls.key=/etc/tls/tls.key;mount=/etc/tls;mode=0400,${tls}:tls.crt=/etc/tls/tls.crt;mount=/etc/tls;mode=0444`;
  const withTls = (
    extra: Record<string, string> = {},
    volume: V1Volume = { name: 'tls', secret: { secretName: 'tls', defaultMode: 0o440 } },
    mounts: V1VolumeMount[] = [{ name: 'tls', mountPath: '/etc/tls', readOnly: true }],
  ): V1Pod =>
    pod(
      annotated({
        'cloudtaser.io/secret-paths': `${path},${tls}`,
        'cloudtaser.io/file-map': fileMap,
        ...extra,
      }),
      {
        containers: [
          {
            name: 'app',
            image: 'app:1',
            command: ['/app'],
            volumeMounts: [{ name: 'cache', mountPath: '/cache' }, ...mounts],
          },
          // Mounts nothing of the Secret: its wrapper writes no file.
          { name: 'sidecar', image: 's:1', command: ['/s'] },
        ],
        volumes: [{ name: 'cache', emptyDir: {} }, volume],
      },
    );
  const parsed = (): FileMapEntry[] => parseFileMap(fileMap) ?? [];
  const envOf = (c: V1Container | undefined): Record<string, string> =>
    Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? '']));

  it('replaces the Secret volume with a memory-backed emptyDir at the same mount path, writable, and tells each wrapper its files', () => {
    const input = withTls();
    const d = decide(input, cfg);
    if (!d.allowed) throw new Error(d.message);
    expect(d.warnings).toBeUndefined();
    const out = apply(input, d.patch);
    expect(out.spec?.volumes?.slice(0, 2)).toEqual([
      { name: 'cache', emptyDir: {} },
      { name: 'tls', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } },
    ]);
    expect(JSON.stringify(out.spec?.volumes)).not.toContain('secretName');
    const app = out.spec?.containers[0];
    expect(app?.volumeMounts?.slice(0, 2)).toEqual([
      { name: 'cache', mountPath: '/cache' },
      { name: 'tls', mountPath: '/etc/tls' },
    ]);
    expect(envOf(app).CLOUDTASER_FILE_MAP).toBe(fileMap);
    expect(envOf(app).CLOUDTASER_ENV_MAP).toBe(`${path}:password=DB_PASS`);
    expect(envOf(out.spec?.containers[1])).not.toHaveProperty('CLOUDTASER_FILE_MAP');
    expect(out.metadata?.annotations).not.toHaveProperty('cloudtaser.io/native-secret-volumes');
  });

  it('fills the memory emptyDir protect left in place of the Secret volume, as it fills one it replaces itself', () => {
    // The pod protect's template makes once it swapped the Secret volume out
    // (the containers' mounts still name the volume).
    const input = withTls({}, filesVolume('tls'));
    const d = decide(input, cfg);
    if (!d.allowed) throw new Error(d.message);
    expect(d.warnings).toBeUndefined();
    // Nothing to replace: the volume is already what the webhook would make.
    expect(d.patch.filter((op) => op.path.startsWith('/spec/volumes/') && op.op !== 'add')).toEqual(
      [],
    );
    const out = apply(input, d.patch);
    // The same pod as from a template that still had the Secret volume.
    const native = apply(withTls(), decideOrThrow(withTls()));
    expect(out.spec).toEqual(native.spec);
    expect(envOf(out.spec?.containers[0]).CLOUDTASER_FILE_MAP).toBe(fileMap);
    expect(out.metadata?.annotations).not.toHaveProperty('cloudtaser.io/native-secret-volumes');
    // Both shapes count as served for protect, which shares this rule.
    expect([...servedVolumes(withTls().spec, parsed())]).toEqual(['tls']);
    expect([...servedVolumes(input.spec, parsed())]).toEqual(['tls']);
    const partial = withTls(
      {},
      { name: 'tls', secret: { secretName: 'tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
    );
    expect([...servedVolumes(partial.spec, parsed())]).toEqual([]);
  });

  it('accepts a pod whose plan maps files only, and leaves a container with nothing to fetch unwrapped', () => {
    const input = withTls({ 'cloudtaser.io/env-map': '' });
    const d = decide(input, cfg);
    if (!d.allowed) throw new Error(d.message);
    const out = apply(input, d.patch);
    expect(out.spec?.containers[0]?.command?.[0]).toBe('/cloudtaser/bin/cloudtaser-wrapper');
    expect(out.spec?.containers[1]).toEqual(input.spec?.containers[1]);
  });

  it('keeps a Secret volume whose items are not all mapped, or that a container mounts by subPath, and says so', () => {
    const partial = withTls(
      {},
      {
        name: 'tls',
        secret: {
          secretName: 'tls',
          items: [
            { key: 'tls.key', path: 'tls.key' },
            { key: 'tls.crt', path: 'tls.crt' },
            { key: 'ca.crt', path: 'ca.crt' },
          ],
        },
      },
    );
    const sub = withTls({}, undefined, [
      { name: 'tls', mountPath: '/etc/tls' },
      { name: 'tls', mountPath: '/etc/tls.key', subPath: 'tls.key' },
    ]);
    // A second mount of the volume with no file of its own would go empty.
    const twice = withTls({}, undefined, [
      { name: 'tls', mountPath: '/etc/tls' },
      { name: 'tls', mountPath: '/srv/tls' },
    ]);
    for (const [input, why] of [
      [partial, 'its file /etc/tls/ca.crt is not in cloudtaser.io/file-map'],
      [sub, 'a container mounts it with subPath'],
      [twice, 'its mounts do not all have the same files in the file-map'],
    ] as const) {
      const d = decide(input, cfg);
      if (!d.allowed) throw new Error(d.message);
      const out = apply(input, d.patch);
      expect(out.spec?.volumes?.[1]?.secret?.secretName).toBe('tls');
      expect(out.metadata?.annotations?.['cloudtaser.io/native-secret-volumes']).toBe('tls');
      expect(d.warnings?.join('\n')).toContain(why);
      // The native files are still there: the wrapper must not write over them.
      expect(envOf(out.spec?.containers[0])).not.toHaveProperty('CLOUDTASER_FILE_MAP');
    }
  });

  it('refuses malformed file-maps, files on a mount no container has, and files under another volume mount', () => {
    for (const [bad, message] of [
      [`${tls}:k=/etc/tls/../x;mount=/etc/tls;mode=0400`, 'cloudtaser.io/file-map must be'],
      [`${tls}:k=/other/x;mount=/etc/tls;mode=0400`, 'cloudtaser.io/file-map must be'],
      [
        `${tls}:k=/etc/tls/x;mount=/etc/tls;mode=0400,${tls}:j=/etc/tls/x;mount=/etc/tls;mode=0400`,
        'named once',
      ],
      [
        `secret/data/other/x:k=/etc/tls/x;mount=/etc/tls;mode=0400`,
        'which is not in cloudtaser.io/secret-paths',
      ],
      [
        `${tls}:k=/srv/x;mount=/srv;mode=0400`,
        'names mount /srv, which no container of the pod mounts',
      ],
      [
        `${tls}:k=/cloudtaser/bin/x;mount=/cloudtaser/bin;mode=0400`,
        'overlaps a volume cloudtaser mounts',
      ],
    ] as const) {
      const d = decide(withTls({ 'cloudtaser.io/file-map': bad }), cfg);
      expect(d, bad).toMatchObject({ allowed: false });
      if (!d.allowed) expect(d.message, bad).toContain(message);
    }
    const nested = withTls({}, undefined, [
      { name: 'tls', mountPath: '/etc/tls' },
      { name: 'cache', mountPath: '/etc/tls/tls.key' },
    ]);
    const d = decide(nested, cfg);
    expect(d).toMatchObject({ allowed: false });
    if (!d.allowed) {
      expect(d.message).toContain(
        'file /etc/tls/tls.key overlaps the mount /etc/tls/tls.key (volume cache) of container app',
      );
    }
  });

  it('passes the kept-volume warnings on in the AdmissionReview answer', async () => {
    const input = withTls({}, undefined, [{ name: 'tls', mountPath: '/etc/tls', subPath: 'x' }]);
    const res = await review(
      {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { uid: 'u1', operation: 'CREATE', namespace: 'payments', object: input },
      },
      cfg,
    );
    expect(res.response).toMatchObject({ uid: 'u1', allowed: true });
    expect(res.response.warnings).toEqual([
      expect.stringContaining(
        'Secret volume tls kept as it is (a container mounts it with subPath',
      ),
    ]);
  });
});
