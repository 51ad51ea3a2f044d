import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatEnvMap,
  formatFileMap,
  parseEnvMap,
  parseFileMap,
  type EnvMapEntry,
  type FileMapEntry,
} from './annotations.js';
import { FILE_PATH } from '../plan/model.js';

describe('env-map annotation', () => {
  it('round-trips any valid entries', () => {
    const seg = fc
      .stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}$/)
      .filter((s) => s !== '.' && s !== '..');
    const entry = fc.record({
      path: fc.tuple(seg, seg).map(([m, p]) => `${m}/data/${p}`),
      field: fc.stringMatching(/^[-._a-zA-Z0-9]{1,10}$/),
      env: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,10}$/),
    });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 6 }), (entries: EnvMapEntry[]) => {
        expect(parseEnvMap(formatEnvMap(entries))).toEqual(entries);
      }),
    );
  });

  it('rejects malformed values', () => {
    for (const bad of [
      'secret/data/x',
      'secret/data/x:f',
      'nodata:f=E',
      'secret/data/x:f=1E',
      'secret/data/x:f=E,',
    ]) {
      expect(parseEnvMap(bad), bad).toBeUndefined();
    }
  });
});

describe('file-map annotation', () => {
  const seg = fc.stringMatching(/^[A-Za-z0-9_.+@-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
  const entry = fc
    .record({
      path: fc.tuple(seg, seg).map(([m, p]) => `${m}/data/${p}`),
      field: fc.stringMatching(/^[-._a-zA-Z0-9]{1,10}$/),
      mount: fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => `/${s.join('/')}`),
      rest: fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => s.join('/')),
      mode: fc.stringMatching(/^0[0-7]{3}$/),
    })
    .map(({ rest, ...e }): FileMapEntry => ({ ...e, file: `${e.mount}/${rest}` }));

  it('round-trips any valid entries, each file a plan path inside its mount', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(entry, { maxLength: 6, selector: (e) => e.file }),
        (entries: FileMapEntry[]) => {
          for (const e of entries) expect(FILE_PATH.test(e.file)).toBe(true);
          expect(parseFileMap(formatFileMap(entries))).toEqual(entries);
        },
      ),
    );
  });

  it('rejects malformed values, paths outside their mount, and a file named twice', () => {
    const ok = 'secret/data/a:k=/etc/tls/k;mount=/etc/tls;mode=0400';
    expect(parseFileMap(ok)).toHaveLength(1);
    expect(parseFileMap('')).toEqual([]);
    for (const bad of [
      'secret/data/a:k=/etc/tls/k',
      'secret/data/a:k=/etc/tls/k;mount=/etc/tls',
      'secret/data/a:k=/etc/tls/k;mount=/etc/tls;mode=400;mode=400',
      'secret/data/a:k=/etc/tls/k;mount=/etc/tls;mode=0800',
      'secret/data/a:k=/etc/tls/../k;mount=/etc/tls;mode=0400',
      'secret/data/a:k=etc/tls/k;mount=etc/tls;mode=0400',
      'secret/data/a:k=/etc/other/k;mount=/etc/tls;mode=0400',
      'secret/data/a:k=/etc/tls/k/;mount=/etc/tls;mode=0400',
      `${ok},${ok.replace(':k=', ':j=')}`,
      'nodata:k=/etc/tls/k;mount=/etc/tls;mode=0400',
    ]) {
      expect(parseFileMap(bad), bad).toBeUndefined();
    }
  });
});
