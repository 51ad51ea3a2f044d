// The pure part of the Sealed Secrets source. Values here are sealed by the
// test itself following the documented format; that kubeseal's output opens
// the same way is tested against the real kubeseal in
// test/sealed-secrets.test.ts.
import {
  constants,
  createCipheriv,
  generateKeyPairSync,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { plannedSecrets, decide } from '../cleanup/decide.js';
import { wantedPaths } from '../import/plan.js';
import { MigrationPlanSchema, type MigrationPlan } from '../plan/schema.js';
import { nativeSecretOf } from '../plan/model.js';
import { markSealedSources } from './sealed-secrets-kube.js';
import {
  manifestsFor,
  parseSealingKeys,
  scanManifests,
  sealedDocuments,
  sealedFromManifests,
  sealingLabel,
  unseal,
  type SealedSecretObject,
} from './sealed-secrets.js';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** The documented hybrid format, written here only to feed the reader. */
function seal(pub: KeyObject, value: Buffer, label: Buffer): string {
  const session = randomBytes(32);
  const wrapped = publicEncrypt(
    { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
    session,
  );
  const c = createCipheriv('aes-256-gcm', session, Buffer.alloc(12));
  const body = Buffer.concat([c.update(value), c.final(), c.getAuthTag()]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(wrapped.length);
  return Buffer.concat([len, wrapped, body]).toString('base64');
}

function sealed(
  ns: string,
  name: string,
  values: Record<string, string>,
  scope?: 'namespace-wide' | 'cluster-wide',
  pub: KeyObject = publicKey,
): SealedSecretObject {
  const annotations = scope ? { [`sealedsecrets.bitnami.com/${scope}`]: 'true' } : {};
  const s: SealedSecretObject = { metadata: { name, namespace: ns, annotations } };
  const label = sealingLabel(s);
  s.spec = {
    encryptedData: Object.fromEntries(
      Object.entries(values).map(([k, v]) => [k, seal(pub, Buffer.from(v), label)]),
    ),
  };
  return s;
}

const text = (u: ReturnType<typeof unseal>): Record<string, string> =>
  u.kind === 'found' ? Object.fromEntries([...u.data].map(([k, v]) => [k, v.toString()])) : {};

describe('sealingLabel', () => {
  it('is namespace/name, namespace or empty by scope annotation', () => {
    expect(sealingLabel({ metadata: { name: 'a', namespace: 'n' } }).toString()).toBe('n/a');
    expect(
      sealingLabel({
        metadata: {
          name: 'a',
          namespace: 'n',
          annotations: { 'sealedsecrets.bitnami.com/namespace-wide': 'true' },
        },
      }).toString(),
    ).toBe('n');
    expect(
      sealingLabel({
        metadata: {
          name: 'a',
          namespace: 'n',
          annotations: { 'sealedsecrets.bitnami.com/cluster-wide': 'true' },
        },
      }).length,
    ).toBe(0);
  });
});

describe('unseal', () => {
  it('opens every value of each scope with the right key', () => {
    for (const scope of [undefined, 'namespace-wide', 'cluster-wide'] as const) {
      const u = unseal(sealed('ns', 'db', { password: 'pw-1', user: 'ü' }, scope), [privateKey]);
      expect(text(u)).toEqual({ password: 'pw-1', user: 'ü' });
    }
  });

  it('tries every key (a backup after rotation holds several)', () => {
    const u = unseal(sealed('ns', 'db', { k: 'v' }), [other.privateKey, privateKey]);
    expect(text(u)).toEqual({ k: 'v' });
  });

  it('refuses a value moved to another name (strict scope), naming the key, not the value', () => {
    const s = sealed('ns', 'db', { password: 'secret-value-1' });
    s.metadata = { ...s.metadata, name: 'elsewhere' };
    const u = unseal(s, [privateKey]);
    expect(u.kind).toBe('missing');
    const reason = u.kind === 'missing' ? u.reason : '';
    expect(reason).toContain('SealedSecret ns/elsewhere key password could not be unsealed');
    expect(reason).not.toContain('secret-value-1');
  });

  it('refuses with a wrong key, and a truncated or tampered value', () => {
    expect(unseal(sealed('ns', 'db', { k: 'v' }), [other.privateKey]).kind).toBe('missing');
    const s = sealed('ns', 'db', { k: 'value' });
    const enc = s.spec?.encryptedData ?? {};
    const raw = Buffer.from(enc.k ?? '', 'base64');
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    expect(
      unseal({ ...s, spec: { encryptedData: { k: raw.toString('base64') } } }, [privateKey]).kind,
    ).toBe('missing');
    expect(unseal({ ...s, spec: { encryptedData: { k: 'AAE=' } } }, [privateKey]).kind).toBe(
      'missing',
    );
  });

  it('names the old single-blob form instead of guessing', () => {
    const u = unseal({ metadata: { name: 'a', namespace: 'n' }, spec: { data: 'AAAA' } }, [
      privateKey,
    ]);
    expect(u.kind === 'missing' ? u.reason : '').toContain('pre-v0.7 spec.data form');
  });
});

describe('parseSealingKeys', () => {
  const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const pkcs8 = other.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  it('reads PEM keys, PKCS#1 and PKCS#8, several in one file', () => {
    expect(parseSealingKeys(`${pkcs1}\n${pkcs8}`, 'k')).toHaveLength(2);
  });

  it("reads the controller's key Secrets as kubectl -o yaml prints them (a List)", () => {
    const b64 = Buffer.from(pkcs1).toString('base64');
    const yaml = [
      'apiVersion: v1',
      'kind: List',
      'items:',
      '- apiVersion: v1',
      '  kind: Secret',
      '  type: kubernetes.io/tls',
      '  data:',
      `    tls.crt: ${Buffer.from('not a key').toString('base64')}`,
      `    tls.key: ${b64}`,
    ].join('\n');
    const keys = parseSealingKeys(yaml, 'k');
    expect(text(unseal(sealed('n', 's', { a: 'b' }), keys))).toEqual({ a: 'b' });
  });

  it('says what it expected for a file with no key, and never echoes a broken key', () => {
    expect(() => parseSealingKeys('hello: world', 'FILE')).toThrow(/FILE holds no private key/);
    const broken =
      '-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END RSA PRIVATE KEY-----';
    let msg = '';
    try {
      parseSealingKeys(broken, 'FILE');
    } catch (e) {
      msg = e instanceof Error ? e.message : '';
    }
    expect(msg).toBe('FILE: private key #1 is not a readable RSA private key');
  });
});

describe('manifests in a git checkout', () => {
  it('finds SealedSecrets in multi-document files and Lists, by namespace/name', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'ct-sealed-repo-'));
    await mkdir(join(repo, 'apps', 'db'), { recursive: true });
    await mkdir(join(repo, '.git'), { recursive: true });
    await writeFile(
      join(repo, 'apps', 'db', 'sealed.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: x}',
        '---',
        'apiVersion: bitnami.com/v1alpha1',
        'kind: SealedSecret',
        'metadata: {name: db, namespace: pay}',
        'spec: {encryptedData: {password: AgB}}',
      ].join('\n'),
    );
    await writeFile(
      join(repo, 'list.json'),
      JSON.stringify({
        kind: 'List',
        items: [
          { apiVersion: 'bitnami.com/v1alpha1', kind: 'SealedSecret', metadata: { name: 'api' } },
        ],
      }),
    );
    await writeFile(
      join(repo, '.git', 'x.yaml'),
      'kind: SealedSecret\napiVersion: bitnami.com/v1alpha1\nmetadata: {name: db, namespace: pay}\n',
    );
    await writeFile(join(repo, 'broken.yaml'), 'kind: SealedSecret\n  : : [\n');
    const index = await scanManifests(repo);
    expect(manifestsFor(index, 'pay', 'db')).toEqual([join('apps', 'db', 'sealed.yaml')]);
    // No namespace in the file (kustomize or -n sets it): matched by name.
    expect(manifestsFor(index, 'any', 'api')).toEqual(['list.json']);
    expect(manifestsFor(index, 'pay', 'nope')).toEqual([]);
    await expect(scanManifests(join(repo, 'missing'))).rejects.toThrow(/no such directory/);
  });

  it('gives the SealedSecret itself for an offline unseal, and does not guess between copies', async () => {
    const repo = await mkdtemp(join(tmpdir(), 'ct-sealed-repo-'));
    const yamlOf = (o: object): string =>
      JSON.stringify({ apiVersion: 'bitnami.com/v1alpha1', kind: 'SealedSecret', ...o });
    const db = sealed('pay', 'db', { password: 'pw-git', user: 'u-git' });
    // Sealed for namespace pay, kept in git without one (kustomize sets it).
    const api = sealed('pay', 'api', { token: 'tok-git' });
    const apiNoNs = { ...api, metadata: { ...api.metadata, namespace: undefined } };
    await mkdir(join(repo, 'base'), { recursive: true });
    await mkdir(join(repo, 'overlays', 'a'), { recursive: true });
    await mkdir(join(repo, 'overlays', 'b'), { recursive: true });
    await writeFile(join(repo, 'base', 'db.json'), yamlOf(db));
    // The same sealed values, keys in another order and a label added to the template: one copy.
    const reordered = {
      ...db,
      spec: {
        encryptedData: Object.fromEntries(Object.entries(db.spec?.encryptedData ?? {}).reverse()),
        template: { metadata: { labels: { team: 'pay' } } },
      },
    };
    await writeFile(join(repo, 'overlays', 'a', 'db.json'), yamlOf(reordered));
    await writeFile(join(repo, 'base', 'api.json'), yamlOf(apiNoNs));
    const other = sealed('pay', 'cache', { pw: 'one' });
    await writeFile(join(repo, 'overlays', 'a', 'cache.json'), yamlOf(other));
    await writeFile(
      join(repo, 'overlays', 'b', 'cache.json'),
      yamlOf(sealed('pay', 'cache', { pw: 'two' })),
    );
    const index = await scanManifests(repo);
    const open = (ns: string, name: string): Record<string, string> | string => {
      const found = sealedFromManifests(index, ns, name, 'repo');
      return 'missing' in found ? found.missing : text(unseal(found.sealed, [privateKey]));
    };
    expect(open('pay', 'db')).toEqual({ password: 'pw-git', user: 'u-git' });
    expect(manifestsFor(index, 'pay', 'db')).toEqual([
      join('base', 'db.json'),
      join('overlays', 'a', 'db.json'),
    ]);
    // The namespace the plan names is the one it was sealed for: it opens.
    expect(open('pay', 'api')).toEqual({ token: 'tok-git' });
    // Another namespace: the strict scope refuses, naming the key only.
    expect(open('shop', 'api')).toEqual({});
    expect(open('pay', 'cache')).toBe(
      `SealedSecret pay/cache is defined differently in ${join('overlays', 'a', 'cache.json')}, ${join('overlays', 'b', 'cache.json')} under repo; pass --repo the directory of one environment`,
    );
    expect(open('pay', 'nope')).toBe('SealedSecret pay/nope not found under repo');
  });

  it('ignores documents that are not SealedSecrets', () => {
    expect(sealedDocuments('kind: SealedSecret\napiVersion: example.com/v1\n')).toEqual([]);
  });
});

describe('sealed-secret/<name> plan sources', () => {
  const raw = (source: string): unknown => ({
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'p' },
    tenants: [
      {
        name: 'pay',
        namespace: 'pay',
        workloads: [
          {
            kind: 'Deployment',
            name: 'api',
            status: 'migrated',
            secrets: [{ source, vaultPath: 'secret/data/pay/db', fields: { password: 'DB_PASS' } }],
          },
        ],
      },
    ],
  });
  const plan = (source: string): MigrationPlan => MigrationPlanSchema.parse(raw(source));

  it('validates, and names the Secret the controller unseals (same name)', () => {
    const ref = (source: string) => ({ source, vaultPath: 'secret/data/db', fields: {} });
    expect(nativeSecretOf(ref('sealed-secret/db'))?.name).toBe('db');
    expect(nativeSecretOf(ref('k8s-secret/db'))?.name).toBe('db');
    expect(nativeSecretOf(ref('vault-agent/db'))).toBeUndefined();
    expect(MigrationPlanSchema.safeParse(raw('sealed-secret/db')).success).toBe(true);
    expect(MigrationPlanSchema.safeParse(raw('sealed/db')).success).toBe(false);
  });

  it('import reads it as a Secret origin marked sealed', () => {
    const [w] = wantedPaths(plan('sealed-secret/db'));
    expect(w?.vaultAgent).toBe(false);
    expect(w?.fields.get('password')).toEqual({
      namespace: 'pay',
      secret: 'db',
      key: 'password',
      sealed: true,
    });
  });

  it('cleanup plans it, and its own SealedSecret owner does not block the delete', () => {
    const [p] = plannedSecrets(plan('sealed-secret/db'));
    expect(p?.sealed).toBe(true);
    const facts = {
      uid: 'u',
      resourceVersion: '1',
      type: 'Opaque',
      keys: [],
      owners: [{ kind: 'SealedSecret', name: 'db', controller: true }],
    };
    expect(p && decide(p, facts, [], new Map(), new Map()).action).toBe('delete');
    // Planned as a plain Secret, the same owner is a refusal (the controller would recreate it).
    const [plain] = plannedSecrets(plan('k8s-secret/db'));
    const v = plain && decide(plain, facts, [], new Map(), new Map());
    expect(v?.action === 'refuse' ? v.reasons.join() : '').toMatch(/delete the SealedSecret first/);
  });

  it('discover rewrites the sources a SealedSecret delivers and notes it for the reviewer', () => {
    const p = plan('k8s-secret/db');
    const notes: { path: (string | number)[]; text: string }[] = [];
    const n = markSealedSources(
      p,
      notes,
      new Map([['pay/db', { namespace: 'pay', name: 'db', notUnsealed: false }]]),
    );
    expect(n).toBe(1);
    expect(p.tenants[0]?.workloads[0]?.secrets[0]?.source).toBe('sealed-secret/db');
    expect(notes[0]?.text).toContain('unsealed from SealedSecret pay/db');
    expect(markSealedSources(plan('k8s-secret/other'), [], new Map())).toBe(0);
  });
});
