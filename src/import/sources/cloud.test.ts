import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../core/errors.js';
import { checkTemplate, cloudNaming, fieldsOf, readNameMap } from './cloud.js';

const text = (m: ReadonlyMap<string, Buffer>): Record<string, string> =>
  Object.fromEntries([...m].map(([k, v]) => [k, v.toString('utf8')]));

describe('fieldsOf', () => {
  it('gives a JSON object’s members as fields, non-strings as their JSON text', () => {
    const s = fieldsOf(
      Buffer.from('{"user":"u","port":5432,"tls":true,"o":{"a":1}}'),
      'AWS secret x',
      undefined,
    );
    expect(s.kind).toBe('found');
    if (s.kind !== 'found') return;
    expect(text(s.data)).toEqual({ user: 'u', port: '5432', tls: 'true', o: '{"a":1}' });
    expect(s.label).toBe('AWS secret x');
  });

  it('reports a plain string without --string-field, never quoting it', () => {
    for (const payload of ['s3cret-value', '"quoted"', '42', '[1,2]', 'null']) {
      const s = fieldsOf(Buffer.from(payload), 'GCP secret y', undefined);
      expect(s).toEqual({
        kind: 'missing',
        reason:
          'GCP secret y is not a JSON object (pass --string-field FIELD to import a plain string as that one field)',
      });
    }
  });

  it('fills the --string-field field with a plain string, unchanged', () => {
    const s = fieldsOf(Buffer.from('  spaced\nvalue '), 'Azure secret z', 'password');
    expect(s.kind === 'found' && text(s.data)).toEqual({ password: '  spaced\nvalue ' });
  });

  it('a binary payload is not a JSON object; with --string-field its bytes go on (the planner refuses non-UTF-8)', () => {
    const bin = Buffer.from([0xff, 0x00, 0x81]);
    expect(fieldsOf(bin, 'AWS secret b', undefined)).toEqual({
      kind: 'missing',
      reason: 'AWS secret b is binary, not a JSON object',
    });
    const s = fieldsOf(bin, 'AWS secret b', 'blob');
    expect(s.kind === 'found' && s.data.get('blob')).toEqual(bin);
  });
});

describe('naming', () => {
  const o = { namespace: 'payments', secret: 'db-credentials', key: 'password' };

  it('fills the template; the mapping file wins for the paths it lists', () => {
    const map = new Map([['secret/data/payments/special', 'legacy/db']]);
    const name = cloudNaming('prod-{namespace}-{secret}', map);
    expect(name(o, 'secret/data/payments/db-credentials')).toBe('prod-payments-db-credentials');
    expect(name(o, 'secret/data/payments/special')).toBe('legacy/db');
  });

  it('refuses unknown placeholders and a template naming one secret for every path', () => {
    expect(() => {
      checkTemplate('{namespace}/{name}');
    }).toThrow(UserError);
    expect(() => {
      checkTemplate('{namespace}/{name}');
    }).toThrow('unknown placeholder(s) {name}');
    expect(() => {
      checkTemplate('all-in-one');
    }).toThrow('no placeholder');
    expect(() => {
      checkTemplate('{secret}');
    }).not.toThrow();
  });

  it('reads a mapping file and refuses one that is not a mapping of strings', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-namemap-'));
    await writeFile(join(dir, 'ok.yaml'), 'secret/data/a/b: prod/a-b\n"secret/data/c/d": other\n');
    expect([...(await readNameMap('ok.yaml', dir))]).toEqual([
      ['secret/data/a/b', 'prod/a-b'],
      ['secret/data/c/d', 'other'],
    ]);
    await writeFile(join(dir, 'list.yaml'), '- a\n- b\n');
    await expect(readNameMap('list.yaml', dir)).rejects.toThrow('must map plan vault paths');
    await writeFile(join(dir, 'num.yaml'), 'secret/data/a/b: 3\n');
    await expect(readNameMap('num.yaml', dir)).rejects.toThrow('must be a non-empty string');
    await expect(readNameMap('absent.yaml', dir)).rejects.toThrow(
      'cannot read --name-map absent.yaml: ENOENT',
    );
  });
});
