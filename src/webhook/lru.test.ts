import { describe, expect, it } from 'vitest';
import { Lru } from './lru.js';

describe('bounded cache', () => {
  it('evicts the least recently used entry past the entry limit', () => {
    const lru = new Lru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('a')).toBe(1); // a is now the most recent
    lru.set('c', 3);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.get('a')).toBe(1);
    expect(lru.get('c')).toBe(3);
    expect(lru.size).toBe(2);
  });

  it('evicts past the byte budget, and never keeps an entry larger than all of it', () => {
    const lru = new Lru<string, string>(100, 10, (v) => v.length);
    lru.set('a', 'xxxx');
    lru.set('b', 'yyyy');
    lru.set('c', 'zzzz'); // 12 bytes: a goes
    expect(lru.get('a')).toBeUndefined();
    expect(lru.bytes).toBe(8);
    lru.set('huge', 'x'.repeat(11));
    expect(lru.get('huge')).toBeUndefined();
    expect([lru.get('b'), lru.get('c')]).toEqual(['yyyy', 'zzzz']);
    lru.set('b', 'y'); // replacing an entry re-counts its bytes
    expect(lru.bytes).toBe(5);
  });
});
