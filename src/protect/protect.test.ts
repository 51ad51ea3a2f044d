import { spawnSync } from 'node:child_process';
import {
  appendFile,
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rmdir,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../core/errors.js';
import { readPlan } from '../plan/read.js';
import { journalPath, lockPath, PlanLock, PlanStore } from './plan-store.js';
import { protectAnnotations } from './annotations.js';
import { OWNED_ANNOTATIONS } from '../contract/annotations.js';

const PLAN = `# reviewer note
apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata: {name: p}
tenants:
  - name: a
    namespace: a
    workloads:
      - {kind: Deployment, name: one, status: pending}   # first
      - {kind: Deployment, name: two, status: pending}
`;

async function planFile(text = PLAN): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ct-store-'));
  const file = join(dir, 'plan.yaml');
  await writeFile(file, text);
  return file;
}

const one = { namespace: 'a', kind: 'Deployment', name: 'one' } as const;
const two = { namespace: 'a', kind: 'Deployment', name: 'two' } as const;

describe('plan store', () => {
  it('journals each status at once and writes the plan on close, keeping comments', async () => {
    const file = await planFile();
    const store = await PlanStore.open(await readPlan(file), 'plan.yaml', {
      compactEveryMs: 60_000,
    });
    await store.record(one, 'migrated');
    // Durable before the plan is rewritten.
    expect(await readFile(journalPath(file), 'utf8')).toContain('"status":"migrated"');
    expect(await readFile(file, 'utf8')).toBe(PLAN);
    await store.record(two, 'skipped');
    await store.close();
    expect(existsSync(journalPath(file))).toBe(false);
    expect(await readFile(file, 'utf8')).toBe(
      PLAN.replace('one, status: pending}', 'one, status: migrated}').replace(
        'two, status: pending}',
        'two, status: skipped}',
      ),
    );
  });

  it('replays a journal left by a killed run, ignoring a torn last line', async () => {
    const file = await planFile();
    await appendFile(
      journalPath(file),
      '{"namespace":"a","kind":"Deployment","name":"two","status":"migrated"}\n{"namespace":"a","ki',
    );
    const store = await PlanStore.open(await readPlan(file), 'plan.yaml');
    expect(existsSync(journalPath(file))).toBe(false);
    expect(await readFile(file, 'utf8')).toContain('two, status: migrated}');
    expect(store.loaded().plan.tenants[0]?.workloads.map((w) => w.status)).toEqual([
      'pending',
      'migrated',
    ]);
    await store.close();
  });

  it('keeps edits a person makes to the plan during a run', async () => {
    const file = await planFile();
    const store = await PlanStore.open(await readPlan(file), 'plan.yaml', { compactEveryMs: 0 });
    await store.record(one, 'migrated');
    // The person edits the plan as it is on disk once the run has rewritten it.
    while (!(await readFile(file, 'utf8')).includes('one, status: migrated}')) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const edited = (await readFile(file, 'utf8')).replace(
      '# reviewer note',
      '# reviewer note\n# approved by CAB-7',
    );
    await writeFile(file, edited);
    await store.record(two, 'migrated');
    await store.close();
    const text = await readFile(file, 'utf8');
    expect(text).toContain('# approved by CAB-7');
    expect(text).toContain('one, status: migrated}');
    expect(text).toContain('two, status: migrated}');
  });
});

describe('protection annotations', () => {
  const tenant = { name: 'pay', namespace: 'payments', workloads: [] };
  const workload = {
    kind: 'Deployment' as const,
    name: 'api',
    serviceAccount: 'api',
    status: 'pending' as const,
    secrets: [
      { source: 'k8s-secret/db', vaultPath: 'secret/data/payments/db', fields: { p: 'P' } },
    ],
  };

  it('carry the plain-http opt-in only when asked, and unprotect owns it', () => {
    const https = protectAnnotations(tenant, workload, 'https://vault.eu.example.com');
    expect(Object.keys(https)).not.toContain('cloudtaser.io/allow-insecure-vault');
    const http = protectAnnotations(tenant, workload, 'http://vault:8200', true);
    expect(http['cloudtaser.io/allow-insecure-vault']).toBe('true');
    expect(OWNED_ANNOTATIONS).toContain('cloudtaser.io/allow-insecure-vault');
  });
});

describe('plan store: journal failures', () => {
  it('stops on a journal it cannot read, and keeps it', async () => {
    const file = await planFile();
    // A journal that exists but cannot be read (a symlink to itself: ELOOP).
    await symlink(journalPath(file), journalPath(file));
    await expect(PlanStore.open(await readPlan(file), 'plan.yaml')).rejects.toThrow(
      /cannot read plan\.yaml\.journal \(ELOOP\)/,
    );
    expect((await lstat(journalPath(file))).isSymbolicLink()).toBe(true);
  });

  it('never writes a status into the plan whose journal record failed', async () => {
    const file = await planFile();
    const store = await PlanStore.open(await readPlan(file), 'plan.yaml', { compactEveryMs: 0 });
    // The journal cannot be created while a directory sits at its path.
    await mkdir(journalPath(file));
    await expect(store.record(one, 'migrated')).rejects.toThrow(/EISDIR/);
    await rmdir(journalPath(file));
    await store.record(two, 'migrated');
    await store.close();
    const text = await readFile(file, 'utf8');
    expect(text).toContain('two, status: migrated}');
    expect(text).toContain('one, status: pending}');
  });

  it("gives the journal the plan's file mode", async () => {
    const file = await planFile();
    await chmod(file, 0o600);
    const store = await PlanStore.open(await readPlan(file), 'plan.yaml', {
      compactEveryMs: 60_000,
    });
    await store.record(one, 'migrated');
    expect((await stat(journalPath(file))).mode & 0o777).toBe(0o600);
    await store.close();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

describe('plan lock', () => {
  const holder = { command: 'cloudtaser target protect', started: new Date() };

  it('refuses a second holder, naming the first, until it is released', async () => {
    const file = await planFile();
    const first = await PlanLock.acquire(file, 'plan.yaml', holder);
    const second = PlanLock.acquire(file, 'plan.yaml', holder);
    await expect(second).rejects.toThrow(UserError);
    await expect(second).rejects.toThrow(
      `plan.yaml is in use by another run: pid ${process.pid} on ${hostname()}, started ${holder.started.toISOString()} (cloudtaser target protect)`,
    );
    await first.release();
    expect(existsSync(lockPath(file))).toBe(false);
    const third = await PlanLock.acquire(file, 'plan.yaml', holder);
    expect(JSON.parse(await readFile(lockPath(file), 'utf8'))).toMatchObject({
      pid: process.pid,
      host: hostname(),
    });
    await third.release();
  });

  it('takes over a lock whose process is dead on this host', async () => {
    const file = await planFile();
    // A pid that certainly belonged to a process that has exited.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(
      lockPath(file),
      JSON.stringify({ pid: dead, host: hostname(), started: 'then', command: 'x' }),
    );
    const lock = await PlanLock.acquire(file, 'plan.yaml', holder);
    expect(JSON.parse(await readFile(lockPath(file), 'utf8'))).toMatchObject({ pid: process.pid });
    await lock.release();
  });

  it('does not take over a lock held on another host', async () => {
    const file = await planFile();
    await writeFile(
      lockPath(file),
      JSON.stringify({ pid: 1, host: 'elsewhere.example', started: 'then', command: 'x' }),
    );
    await expect(PlanLock.acquire(file, 'plan.yaml', holder)).rejects.toThrow(
      /in use by another run: pid 1 on elsewhere\.example/,
    );
  });
});
