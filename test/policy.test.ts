// The policy analysis that `target validate` and `audit` rely on, checked
// against the real OpenBao: generated policies with overlapping exact, glob
// and `+` rules (deny included) are written to the server, a token holding
// them is created, and for every path the analysis must say exactly what the
// server says the token may do — and the token's real reads must agree.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { effectiveCapabilities, grantsRead, parsePolicy } from '../src/report/policy.js';
import { bao, eventually } from './helpers/sandbox.js';

const mount = `pol${randomBytes(3).toString('hex')}`;
const base = `${mount}/data`;
const SEGMENTS = ['a', 'ab', 'b'];
const CAPABILITIES = ['read', 'list', 'update', 'create', 'delete', 'patch', 'sudo', 'scan'];

/** A small deterministic generator, so a failure names a seed that reproduces it. */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every path of depth 1 to 3 under the KV data prefix: the paths each trial asks about. */
const PATHS: string[] = (() => {
  const out: string[][] = [];
  let level: string[][] = [[]];
  for (let depth = 1; depth <= 3; depth++) {
    level = level.flatMap((p) => SEGMENTS.map((s) => [...p, s]));
    out.push(...level);
  }
  return out.map((p) => `${base}/${p.join('/')}`);
})();

/** One rule pattern: a path with some segments turned into `+`, maybe ending in a glob. */
function pattern(rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const depth = 1 + Math.floor(rnd() * 3);
  const segs = Array.from({ length: depth }, () => (rnd() < 0.3 ? '+' : pick(SEGMENTS)));
  // Sometimes the mount's `data` segment itself is a wildcard, moving the first wildcard earlier.
  const head = rnd() < 0.15 ? `${mount}/+` : base;
  const glob = rnd();
  if (glob < 0.2) return `${head}/${segs.slice(0, -1).join('/')}${depth > 1 ? '/' : ''}*`;
  const last = segs[segs.length - 1] ?? 'a';
  if (glob < 0.4 && last !== '+') {
    // A prefix of the last segment ('a*' matches a, ab, and anything below).
    segs[segs.length - 1] = `${last.slice(0, 1)}*`;
  }
  return `${head}/${segs.join('/')}`;
}

function capabilities(rnd: () => number): string[] {
  if (rnd() < 0.2) return ['deny'];
  const caps = CAPABILITIES.filter(() => rnd() < 0.3);
  return caps.length > 0 ? caps : ['read'];
}

/** Two policies drawing from one pool of patterns, so the same pattern often appears in both. */
function policies(seed: number): string[] {
  const rnd = generator(seed);
  const pool = Array.from({ length: 7 }, () => pattern(rnd));
  return [0, 1].map(() => {
    const count = 2 + Math.floor(rnd() * 4);
    const lines: string[] = [];
    for (let i = 0; i < count; i++) {
      const path = pool[Math.floor(rnd() * pool.length)] ?? base;
      lines.push(`path "${path}" { capabilities = ${JSON.stringify(capabilities(rnd))} }`);
    }
    return lines.join('\n');
  });
}

async function ok(method: string, path: string, body?: unknown): Promise<unknown> {
  const r = await bao(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

beforeAll(async () => {
  await ok('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
  // A KV v2 mount answers data requests only once its set-up has finished.
  await eventually('the KV v2 mount', async () =>
    (await bao('POST', `${base}/a`, { data: { k: 'v' } })).status === 200 ? true : undefined,
  );
});

afterAll(async () => {
  await bao('DELETE', `sys/mounts/${mount}`);
});

describe('policy analysis against the real OpenBao', () => {
  it('gives every path the capabilities a token holding the generated policies has', async () => {
    const TRIALS = 40;
    let compared = 0;
    let readable = 0;
    for (let seed = 1; seed <= TRIALS; seed++) {
      const texts = policies(seed);
      const names = texts.map((_, i) => `${mount}-s${seed}-p${i}`);
      for (const [i, text] of texts.entries()) {
        await ok('POST', `sys/policies/acl/${names[i] ?? ''}`, { policy: text });
      }
      const created = (await ok('POST', 'auth/token/create', {
        policies: names,
        no_default_policy: true,
        ttl: '10m',
      })) as { auth: { client_token: string } };
      const token = created.auth.client_token;
      try {
        const answer = (await ok('POST', 'sys/capabilities', { token, paths: PATHS })) as Record<
          string,
          unknown
        >;
        const rules = texts.flatMap(parsePolicy);
        for (const path of PATHS) {
          const server = [...((answer[path] as string[] | undefined) ?? ['(missing)'])].sort();
          const ours = [...effectiveCapabilities(rules, path)].sort();
          const context = `seed ${seed}, ${path}\n${texts.join('\n---\n')}`;
          expect(ours, context).toEqual(server);
          // And what the token can really do: a read refused with 403, or not.
          const read = await bao('GET', path, undefined, token);
          expect(read.status === 403 ? false : true, context).toBe(grantsRead(rules, path));
          expect([200, 403, 404], context).toContain(read.status);
          if (read.status !== 403) readable++;
          compared++;
        }
      } finally {
        await bao('POST', 'auth/token/revoke', { token });
        for (const n of names) await bao('DELETE', `sys/policies/acl/${n}`);
      }
    }
    expect(compared).toBe(TRIALS * PATHS.length);
    // The generated policies exercise both outcomes, not only refusals.
    expect(readable).toBeGreaterThan(compared / 10);
    expect(readable).toBeLessThan(compared - compared / 10);
  });
});
