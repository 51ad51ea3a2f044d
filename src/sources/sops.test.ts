import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wantedPaths } from '../import/plan.js';
import { parsePlan } from '../plan/read.js';
import { contentValue, diffContent, signedContent } from '../plan/sign/content.js';
import { plannedSecrets } from '../cleanup/decide.js';
import type { MigrationPlan } from '../plan/schema.js';
import { nativeSecretOf } from '../plan/model.js';
import { migratedSecrets } from '../protect/native-refs.js';
import { renderPlan } from '../plan/write.js';
import { applySopsSources, matchSopsDocs, withSopsKeys } from './sops-discover.js';
import { readSopsSecrets, sopsWantedPaths } from './sops-import.js';
import { sopsReason } from './sops-io.js';
import {
  classifyDocument,
  parseManifests,
  parseSopsSource,
  secretValues,
  sopsSource,
  type SopsDoc,
} from './sops.js';

/** Whether a plan text passes the reader (schema and cross-entry rules). */
function valid(text: string): boolean {
  try {
    parsePlan(text, 'p.yaml');
    return true;
  } catch {
    return false;
  }
}

const ENC = 'ENC[AES256_GCM,data:abc=,iv:x=,tag:y=,type:str]';
const SOPS_META = { age: [{ recipient: 'age1x' }], mac: ENC, version: '3.13.3' };

function doc(over: Partial<SopsDoc> = {}): SopsDoc {
  return {
    file: 'apps/db.yaml',
    index: 0,
    encrypted: true,
    kind: 'Secret',
    name: 'db',
    namespace: 'payments',
    metadataEncrypted: false,
    keys: ['password', 'username'],
    clearKeys: [],
    ...over,
  };
}

describe('sops sources', () => {
  it('round-trips sops/<file>#<doc> and refuses other forms', () => {
    expect(parseSopsSource(sopsSource('a/b.enc.yaml', 2))).toEqual({
      file: 'a/b.enc.yaml',
      index: 2,
    });
    for (const bad of [
      'sops/a.yaml',
      'sops/../a.yaml#0',
      'sops/a b.yaml#0',
      'sops/a.yaml#01',
      'k8s-secret/x',
    ]) {
      expect(parseSopsSource(bad)).toBeUndefined();
    }
  });

  it('the plan schema takes the sops form and refuses a path that climbs out', () => {
    const plan = (source: string, secret = 'db'): string =>
      [
        'apiVersion: cloudtaser.io/v1',
        'kind: MigrationPlan',
        'metadata: {name: p}',
        'tenants:',
        '  - name: t',
        '    namespace: t',
        '    workloads:',
        '      - kind: Deployment',
        '        name: w',
        '        secrets:',
        `          - source: ${source}`,
        ...(secret ? [`            secret: ${secret}`] : []),
        '            vaultPath: secret/data/t/db',
        '            fields: {password: DB_PASS}',
        '',
      ].join('\n');
    expect(valid(plan('sops/apps/db.enc.yaml#1'))).toBe(true);
    for (const bad of ['sops/../db.yaml#0', 'sops/db.yaml', 'sops/./db.yaml#0']) {
      expect(valid(plan(bad))).toBe(false);
    }
  });

  it('a sops source must name the Secret its document deploys, and only a sops source may', () => {
    const plan = (source: string, secret?: string): string =>
      [
        'apiVersion: cloudtaser.io/v1',
        'kind: MigrationPlan',
        'metadata: {name: p}',
        'tenants:',
        '  - name: t',
        '    namespace: t',
        '    workloads:',
        '      - kind: Deployment',
        '        name: w',
        '        secrets:',
        `          - source: ${source}`,
        ...(secret === undefined ? [] : [`            secret: ${secret}`]),
        '            vaultPath: secret/data/t/db',
        '            fields: {password: DB_PASS}',
        '',
      ].join('\n');
    const problem = (text: string): string => {
      try {
        parsePlan(text, 'p.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    };
    expect(problem(plan('sops/apps/db.enc.yaml#1', 'db'))).toBe('');
    expect(problem(plan('sops/apps/db.enc.yaml#1'))).toContain(
      'tenants[0].workloads[0].secrets[0].secret: source "sops/apps/db.enc.yaml#1" needs "secret: <name>", the metadata.name of the Secret that document deploys',
    );
    expect(problem(plan('k8s-secret/db', 'db'))).toContain(
      '"secret" belongs only to sops/<file>#<doc> and eso/<externalsecret> sources; "k8s-secret/db" names its Secret itself',
    );
    expect(problem(plan('sealed-secret/db', 'other'))).toContain('"secret" belongs only to');
    expect(problem(plan('sops/apps/db.enc.yaml#1', 'Not_A_Name'))).toContain(
      'secret must be a Kubernetes object name',
    );
  });

  it('a signed plan covers the Secret a sops source records', () => {
    const plan = (secret: string): MigrationPlan =>
      parsePlan(
        [
          'apiVersion: cloudtaser.io/v1',
          'kind: MigrationPlan',
          'metadata: {name: p}',
          'tenants:',
          '  - {name: t, namespace: t, workloads: [{kind: Deployment, name: w, secrets: [',
          `      {source: "sops/a.yaml#0", secret: ${secret}, vaultPath: secret/data/t/db, fields: {p: P}}]}]}`,
          '',
        ].join('\n'),
        'p.yaml',
      ).plan;
    const signed = contentValue(plan('db'));
    expect(signedContent(plan('db')).equals(signedContent(plan('other')))).toBe(false);
    expect(diffContent(signed, contentValue(plan('other')))).toEqual([
      'tenant t, Deployment w, secret sops/a.yaml#0: secret "db" -> "other"',
    ]);
  });

  it('nativeSecretOf reads a sops source as the Secret it records', () => {
    expect(nativeSecretOf({ source: 'sops/apps/db.yaml#1', secret: 'db' })?.name).toBe('db');
    expect(nativeSecretOf({ source: 'sops/apps/db.yaml#1' })).toBeUndefined();
    // The field never renames a Secret another source names itself.
    expect(nativeSecretOf({ source: 'k8s-secret/a', secret: 'b' })?.name).toBe('a');
  });
});

describe('classifyDocument', () => {
  it('reads cleartext metadata and key names of an encrypted Secret', () => {
    const d = classifyDocument(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'db', namespace: 'payments' },
        data: { password: ENC },
        stringData: { username: 'plain-user' },
        sops: SOPS_META,
      },
      'db.yaml',
      1,
    );
    expect(d).toEqual(doc({ file: 'db.yaml', index: 1, clearKeys: ['username'] }));
  });

  it('says when kind or metadata is encrypted, and ignores what is not a Secret', () => {
    const d = classifyDocument(
      { kind: ENC, metadata: { name: ENC }, data: { a: ENC }, sops: SOPS_META },
      'x.yaml',
      0,
    );
    expect(d?.metadataEncrypted).toBe(true);
    expect(d?.name).toBeUndefined();
    expect(d?.keys).toEqual(['a']);
    expect(classifyDocument({ kind: 'Deployment', sops: SOPS_META }, 'x.yaml', 0)).toBeUndefined();
  });

  it('a Secret without sops metadata is not encrypted', () => {
    const d = classifyDocument(
      { kind: 'Secret', metadata: { name: 'x' }, data: { a: 'eA==' } },
      'x.yaml',
      0,
    );
    expect(d?.encrypted).toBe(false);
    // A `sops` key that is not SOPS metadata does not count.
    expect(classifyDocument({ kind: 'Secret', sops: 'yes' }, 'x.yaml', 0)?.encrypted).toBe(false);
  });
});

describe('parseManifests', () => {
  it('splits YAML documents and keeps scalars as written', () => {
    const r = parseManifests('a: 2026-01-01\n---\nb: "x"\n', 'f.yaml');
    expect(r).toEqual({ docs: [{ a: '2026-01-01' }, { b: 'x' }] });
  });

  it('reports a parse error by line, without the text around it', () => {
    const r = parseManifests('a: 1\nb: [planted-secret\n', 'f.yaml');
    expect('error' in r && r.error).toMatch(/^not valid YAML/);
    expect(JSON.stringify(r)).not.toContain('planted');
    expect(JSON.stringify(parseManifests('{"a": "planted', 'f.json'))).not.toContain('planted');
  });
});

describe('secretValues', () => {
  it('decodes data, takes stringData as is (stringData wins)', () => {
    const r = secretValues({
      kind: 'Secret',
      data: { a: Buffer.from('from-data').toString('base64'), b: 'eA==' },
      stringData: { b: 'from-string-data' },
    });
    expect(
      'data' in r && Object.fromEntries([...r.data].map(([k, v]) => [k, v.toString()])),
    ).toEqual({
      a: 'from-data',
      b: 'from-string-data',
    });
  });

  it('refuses what the API server would refuse, naming the key only', () => {
    expect(secretValues({ kind: 'Secret', data: { a: 'not base64!' } })).toEqual({
      reason: 'data key a is not base64 text',
    });
    expect(secretValues({ kind: 'Secret', stringData: { p: 5432 } })).toEqual({
      reason: 'stringData key p is not a string',
    });
    expect(secretValues({ kind: 'ConfigMap' })).toEqual({
      reason: 'the decrypted document is not a Secret',
    });
  });
});

describe('matchSopsDocs', () => {
  it('matches by namespace/name and reports what it cannot use', () => {
    const m = matchSopsDocs([
      doc(),
      doc({ file: 'plain.yaml', name: 'plain', encrypted: false }),
      doc({ file: 'hidden.yaml', name: undefined, metadataEncrypted: true }),
      doc({ file: 'nons.yaml', name: 'nons', namespace: undefined }),
      doc({ file: 'a.yaml', name: 'twice' }),
      doc({ file: 'b.yaml', index: 3, name: 'twice' }),
      doc({ file: 'half.yaml', name: 'half', clearKeys: ['username'] }),
    ]);
    expect([...m.bySecret.keys()].sort()).toEqual(['payments/db', 'payments/half']);
    expect(m.lines).toEqual([
      'warning: plain.yaml#0: Secret payments/plain is not SOPS-encrypted (its values are in the repository in clear); not used as a source',
      'hidden.yaml#0: kind, name or namespace is encrypted; pass --decrypt-metadata to decrypt it with your sops keys and match it',
      'nons.yaml#0: Secret nons has no metadata.namespace; pass -n NAMESPACE to match it there',
      "warning: half.yaml#0: Secret payments/half: key(s) username are not encrypted (check the file's encrypted_regex)",
      "Secret payments/twice is in a.yaml#0 and b.yaml#3; neither is used (keep one, or edit the plan's source by hand)",
    ]);
  });

  it('-n gives a namespace-less document its namespace and leaves other namespaces out', () => {
    const m = matchSopsDocs(
      [doc({ namespace: undefined }), doc({ name: 'x', namespace: 'other' })],
      'payments',
    );
    expect([...m.bySecret.keys()]).toEqual(['payments/db']);
    expect(m.lines).toEqual([]);
  });
});

describe('discover and import wiring', () => {
  const m = matchSopsDocs([doc()]);

  it("the plan maps the document's keys, and the source names the document", () => {
    const secrets = withSopsKeys(
      [{ namespace: 'payments', name: 'db', type: 'Opaque', keys: ['stale'] }],
      m,
    );
    expect(secrets).toEqual([
      { namespace: 'payments', name: 'db', type: 'Opaque', keys: ['password', 'username'] },
    ]);
    const plan: MigrationPlan = {
      apiVersion: 'cloudtaser.io/v1',
      kind: 'MigrationPlan',
      metadata: { name: 'p' },
      tenants: [
        {
          name: 'payments',
          namespace: 'payments',
          workloads: [
            {
              kind: 'Deployment',
              name: 'api',
              serviceAccount: 'default',
              status: 'pending',
              secrets: [
                {
                  source: 'k8s-secret/db',
                  vaultPath: 'secret/data/payments/db',
                  fields: { password: 'DB_PASS' },
                },
                {
                  source: 'k8s-secret/other',
                  vaultPath: 'secret/data/payments/other',
                  fields: { k: 'K' },
                },
                { source: 'vault-agent/x', vaultPath: 'secret/data/payments/agent', fields: {} },
              ],
            },
          ],
        },
      ],
    };
    expect(applySopsSources(plan, m)).toEqual([
      'SOPS: 1 encrypted Secret(s) found, 1 read by workloads (1 plan source(s) now sops/<file>#<doc>).',
    ]);
    expect(plan.tenants[0]?.workloads[0]?.secrets[0]).toEqual({
      source: 'sops/apps/db.yaml#0',
      secret: 'db',
      vaultPath: 'secret/data/payments/db',
      fields: { password: 'DB_PASS' },
    });
    expect(valid(renderPlan(plan))).toBe(true);
    // Protect and cleanup act on the Secret, and cleanup names the manifest.
    const api = plan.tenants[0]?.workloads[0];
    expect(api && [...migratedSecrets(api).keys()]).toEqual(['db', 'other']);
    expect(plannedSecrets(plan).map((p) => [p.name, p.sops])).toEqual([
      ['db', [{ file: 'apps/db.yaml', index: 0 }]],
      ['other', undefined],
    ]);

    const wanted = sopsWantedPaths(plan);
    expect(
      wanted.map((w) => [w.vaultPath, [...w.fields.keys()], w.conflicts, w.vaultAgent]),
    ).toEqual([
      ['secret/data/payments/agent', [], [], true],
      ['secret/data/payments/db', ['password'], [], false],
      [
        'secret/data/payments/other',
        [],
        ['source k8s-secret/other is not a SOPS file; import it with its own --from'],
        false,
      ],
    ]);
    expect(wanted[1]?.fields.get('password')).toEqual({
      namespace: 'sops',
      secret: 'apps/db.yaml#0',
      key: 'password',
    });

    // --from kubernetes on the same plan: the SOPS path is not taken for a Vault Agent one.
    const k8s = wantedPaths(plan).find((w) => w.vaultPath === 'secret/data/payments/db');
    expect(k8s?.vaultAgent).toBe(false);
    expect(k8s?.conflicts).toEqual([
      'source sops/apps/db.yaml#0 is a SOPS file; import it with --from sops',
    ]);
  });
});

describe('sopsReason', () => {
  it("keeps sops's error line, escaped and clipped, and drops manifest lines", () => {
    expect(
      sopsReason('data: planted\nError getting data key: 0 successful groups required, got 0\n'),
    ).toBe('Error getting data key: 0 successful groups required, got 0');
    expect(sopsReason('')).toBe('no reason given');
    const wrongKey = [
      'Failed to get the data key required to decrypt the SOPS file.',
      '',
      'Group 0: FAILED',
      '  age1abc: FAILED',
      '    - | failed to create reader for decrypting sops data key with',
      '      | age: identity did not match any of the recipients',
      '',
      'Recovery failed because no master key was able to decrypt the file.',
    ].join('\n');
    expect(sopsReason(wrongKey)).toBe(
      'Failed to get the data key required to decrypt the SOPS file. (failed to create reader for decrypting sops data key with age: identity did not match any of the recipients)',
    );
    expect(sopsReason(`Error: ${'x'.repeat(500)}`).length).toBeLessThanOrEqual(300);
  });
});

describe('readSopsSecrets, before sops runs', () => {
  const encryptedDoc = (name: string): string =>
    `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\ndata:\n  a: ${ENC}\nsops:\n  mac: ${ENC}\n  version: 3.13.3\n`;

  async function repo(files: Record<string, string>): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), 'ct-sops-unit-'));
    for (const [f, text] of Object.entries(files)) await writeFile(join(root, f), text);
    return root;
  }
  const origin = (secret: string) => ({ namespace: 'sops', secret, key: 'a' });
  const opts = (root: string) => ({
    root,
    display: 'repo/',
    // Never found: any test that reaches sops fails with a UserError.
    runner: { binary: join(root, 'no-such-sops'), ctx: { env: {} } },
  });

  it('refuses a document in clear, a missing document and a missing file without running sops', async () => {
    const root = await repo({
      'plain.yaml': 'kind: Secret\nmetadata:\n  name: p\nstringData:\n  a: in-clear\n',
      'enc.yaml': encryptedDoc('e'),
    });
    const got = await readSopsSecrets(
      [origin('plain.yaml#0'), origin('enc.yaml#1'), origin('gone.yaml#0')],
      opts(root),
    );
    expect(Object.fromEntries(got)).toEqual({
      'sops/plain.yaml#0': {
        kind: 'missing',
        reason:
          'repo/plain.yaml document #0 is not SOPS-encrypted; refusing to import values kept in clear (encrypt it with sops first)',
      },
      'sops/enc.yaml#1': { kind: 'missing', reason: 'repo/enc.yaml has no document #1' },
      'sops/gone.yaml#0': {
        kind: 'missing',
        reason: 'repo/gone.yaml: no such file (is --path the directory discover scanned?)',
      },
    });
    await rm(root, { recursive: true, force: true });
  });

  it('a missing sops binary stops the run with a usage error', async () => {
    const root = await repo({ 'enc.yaml': encryptedDoc('e') });
    await expect(readSopsSecrets([origin('enc.yaml#0')], opts(root))).rejects.toThrow(
      /^sops not found/,
    );
    await rm(root, { recursive: true, force: true });
  });
});
