import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatEnvMap, parseEnvMap, type EnvMapEntry } from './annotations.js';

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
