import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  MAX_ENTRIES,
  planCache,
  planCacheDir,
  readerFingerprint,
  type PlanCache,
} from './cache.js';
import { parsePlan, PlanError, readPlan } from './read.js';

const PLAN = `apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata:
  name: migration-plan
tenants:
  - name: payments
    namespace: payments
    workloads:
      - kind: Deployment
        name: payment-api
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            fields:
              username: DB_USER
        status: pending
`;

interface Setup {
  cache: PlanCache;
  lines: string[];
  file: string;
  dir: string;
}

async function setup(text = PLAN): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'ct-plan-cache-'));
  const lines: string[] = [];
  const cache = planCache({ CLOUDTASER_CACHE_DIR: join(root, 'cache') }, (l) => lines.push(l));
  if (!cache) throw new Error('cache unexpectedly off');
  const file = join(root, 'plan.yaml');
  await writeFile(file, text);
  return { cache, lines, file, dir: cache.dir };
}

const entries = async (dir: string): Promise<string[]> =>
  (await readdir(dir).catch(() => [])).filter((n) => n.endsWith('.json'));

describe('validated-plan cache', () => {
  it('validates once, then serves the same plan from the cache', async () => {
    const s = await setup();
    const first = await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const second = await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    expect(s.lines).toEqual(['plan cache: miss', 'plan cache: hit']);
    // Defaults filled by validation survive the round trip.
    expect(second.plan).toEqual(parsePlan(PLAN, 'plan.yaml').plan);
    expect(second.plan.tenants[0]?.workloads[0]?.serviceAccount).toBe('default');
    expect(second).toEqual(first);
    expect(await entries(s.dir)).toHaveLength(1);
  });

  it('stores entries readable and writable by the user only', async () => {
    const s = await setup();
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const [name] = await entries(s.dir);
    const { stat } = await import('node:fs/promises');
    expect((await stat(s.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(s.dir, name ?? ''))).mode & 0o777).toBe(0o600);
  });

  it('misses when the content changes, by a single byte', async () => {
    const s = await setup();
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    await writeFile(s.file, PLAN.replace('status: pending', 'status: skipped'));
    const changed = await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    expect(s.lines).toEqual(['plan cache: miss', 'plan cache: miss']);
    expect(changed.plan.tenants[0]?.workloads[0]?.status).toBe('skipped');
    await writeFile(s.file, `${PLAN} `);
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    expect(s.lines[2]).toBe('plan cache: miss');
  });

  it('misses when the reader changed (another fingerprint)', async () => {
    const s = await setup();
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const other = { ...s.cache, fingerprint: `${s.cache.fingerprint}-next` };
    await readPlan(s.file, 'plan.yaml', { cache: other });
    expect(s.lines).toEqual(['plan cache: miss', 'plan cache: miss']);
  });

  it('ignores a corrupt entry, validates, and replaces it', async () => {
    const s = await setup();
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const [name] = await entries(s.dir);
    const path = join(s.dir, name ?? '');
    const good = await readFile(path, 'utf8');
    for (const bad of [good.slice(0, good.length / 2), '', 'null', '{"format":1}', '[]']) {
      await writeFile(path, bad);
      const loaded = await readPlan(s.file, 'plan.yaml', { cache: s.cache });
      expect(loaded.plan).toEqual(parsePlan(PLAN, 'plan.yaml').plan);
      expect(await readFile(path, 'utf8')).toBe(good);
    }
    expect(s.lines.filter((l) => l.includes('unusable entry'))).toHaveLength(5);
  });

  it("never serves another text's entry put under this text's name", async () => {
    const s = await setup();
    const otherText = PLAN.replace('payment-api', 'ledger');
    await writeFile(s.file, otherText);
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const [otherName] = await entries(s.dir);
    const swapped = await readFile(join(s.dir, otherName ?? ''), 'utf8');
    await writeFile(s.file, PLAN);
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    const mine = (await entries(s.dir)).find((n) => n !== otherName) ?? '';
    await writeFile(join(s.dir, mine), swapped);
    const loaded = await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    expect(loaded.plan.tenants[0]?.workloads[0]?.name).toBe('payment-api');
  });

  it('never caches a plan that fails validation', async () => {
    const s = await setup(PLAN.replace('status: pending', 'status: done'));
    for (let i = 0; i < 2; i++) {
      await expect(readPlan(s.file, 'plan.yaml', { cache: s.cache })).rejects.toBeInstanceOf(
        PlanError,
      );
    }
    expect(await entries(s.dir)).toEqual([]);
  });

  it('is not used when its directory is writable by others', async () => {
    const s = await setup();
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    await chmod(s.dir, 0o777);
    await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    expect(s.lines[1]).toMatch(/not used/);
  });

  it(`keeps at most ${MAX_ENTRIES} entries`, async () => {
    const s = await setup();
    for (let i = 0; i < MAX_ENTRIES + 3; i++) {
      await writeFile(s.file, PLAN.replace('payment-api', `api-${i}`));
      await readPlan(s.file, 'plan.yaml', { cache: s.cache });
    }
    expect(await entries(s.dir)).toHaveLength(MAX_ENTRIES);
  });

  it('still reads plans when the cache cannot be written', async () => {
    const s = await setup();
    // A file where the cache directory would be created.
    const blocker = join(s.file, '..', 'blocker');
    await writeFile(blocker, '');
    const blocked = { ...s.cache, dir: join(blocker, 'plans') };
    for (let i = 0; i < 2; i++) {
      const loaded = await readPlan(s.file, 'plan.yaml', { cache: blocked });
      expect(loaded.plan.metadata.name).toBe('migration-plan');
    }
    expect(s.lines).toEqual([
      'plan cache: miss',
      'plan cache: could not store the validated plan',
      'plan cache: miss',
      'plan cache: could not store the validated plan',
    ]);
  });
});

describe('plan cache location', () => {
  it('follows CLOUDTASER_CACHE_DIR, then XDG_CACHE_HOME, then ~/.cache; off switches it off', () => {
    expect(planCacheDir({ CLOUDTASER_CACHE_DIR: '/c' }, '/home/u')).toBe('/c/plans');
    expect(planCacheDir({ XDG_CACHE_HOME: '/x' }, '/home/u')).toBe('/x/cloudtaser/plans');
    expect(planCacheDir({}, '/home/u')).toBe('/home/u/.cache/cloudtaser/plans');
    for (const off of ['off', '0', 'false', 'NO']) {
      expect(planCacheDir({ CLOUDTASER_PLAN_CACHE: off }, '/home/u')).toBeUndefined();
      expect(planCache({ CLOUDTASER_PLAN_CACHE: off })).toBeUndefined();
    }
  });

  it('fingerprints the reader code', () => {
    expect(readerFingerprint()).toMatch(/^[0-9a-f]{64}$/);
  });
});
