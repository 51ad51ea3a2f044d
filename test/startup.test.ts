// What the built CLI loads before it does anything. The Kubernetes client
// alone costs about 0.4 s of start-up on these machines (it loads ~800
// files), and zod most of what is left; a command that never talks to the
// cluster must not pay for the client, and a re-run on a plan validated
// before (plan/cache.ts) must not pay for zod. A static import added in the
// wrong place undoes that silently, so the built CLI is run with a module
// hook that records every package it resolves.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderPlan } from '../src/plan/write.js';
import { planFor } from '../src/testing/plan.js';
import { projectRoot } from '../testenv/paths.js';
import { sandboxEnv, tempDir } from './helpers/cli.js';
import { sandbox, uniqueName } from './helpers/sandbox.js';

const HEAVY = ['@kubernetes/client-node', '@aws-sdk/', '@google-cloud/', '@azure/'];

let dir = '';
let register = '';

beforeAll(async () => {
  dir = await tempDir('ct-startup-');
  const hooks = join(dir, 'hooks.mjs');
  await writeFile(
    hooks,
    [
      "import { appendFileSync } from 'node:fs';",
      'export async function resolve(specifier, context, next) {',
      '  const r = await next(specifier, context);',
      "  appendFileSync(process.env.MODULE_LOG, r.url + '\\n');",
      '  return r;',
      '}',
      '',
    ].join('\n'),
  );
  register = join(dir, 'register.mjs');
  await writeFile(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
});

/** The packages (under node_modules) one run of the built CLI resolved, and its exit code. */
async function packagesLoaded(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; packages: Set<string>; stderr: string }> {
  const log = join(dir, `${uniqueName('modules')}.log`);
  await writeFile(log, '');
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((done) => {
    execFile(
      process.execPath,
      ['--import', register, join(projectRoot, 'dist', 'bin', 'cloudtaser.js'), ...argv],
      { env: { PATH: process.env.PATH, ...env, MODULE_LOG: log }, timeout: 60_000 },
      (err, _stdout, stderr) => {
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
      },
    );
  });
  const packages = new Set<string>();
  for (const url of (await readFile(log, 'utf8')).split('\n')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m?.[1]) packages.add(m[1]);
  }
  return { code, packages, stderr };
}

const heavyIn = (packages: Set<string>): string[] =>
  [...packages].filter((p) => HEAVY.some((h) => p === h || p.startsWith(h)));

describe('start-up of the built CLI', () => {
  it('--version and the help of every vault command load no cluster or cloud client', async () => {
    for (const argv of [
      ['--version'],
      ['source', 'apply-plan', '--help'],
      ['source', 'verify-plan', '--help'],
      ['target', 'protect', '--help'],
      ['target', 'status', '--help'],
    ]) {
      const run = await packagesLoaded(argv, {});
      expect(run.code, argv.join(' ')).toBe(0);
      // The hook saw the CLI's own framework, so an empty list below means something.
      expect(run.packages, argv.join(' ')).toContain('@commander-js/extra-typings');
      expect(heavyIn(run.packages), argv.join(' ')).toEqual([]);
    }
  });

  it('apply-plan loads no Kubernetes client, and on a re-run of a validated plan no zod', async () => {
    const tenant = uniqueName('startup');
    const plan = join(dir, 'plan.yaml');
    await writeFile(
      plan,
      renderPlan(
        planFor(
          tenant,
          [
            {
              kind: 'Deployment',
              name: 'app',
              replicas: 1,
              serviceAccount: 'app',
              status: 'pending',
              secrets: [
                {
                  source: 'k8s-secret/db',
                  vaultPath: `secret/data/${tenant}/db`,
                  fields: { password: 'DB_PASS' },
                },
              ],
            },
          ],
          { name: 'startup', cluster: sandbox().apiServer },
        ),
      ),
    );
    const env = sandboxEnv({ CLOUDTASER_CACHE_DIR: join(dir, 'cache') });
    const first = await packagesLoaded(['source', 'apply-plan', plan], env);
    expect(first.code, first.stderr).toBe(0);
    // The first run validates the plan: zod is loaded, and the hook saw it.
    expect(first.packages).toContain('zod');
    expect(heavyIn(first.packages)).toEqual([]);

    const again = await packagesLoaded(['source', 'apply-plan', plan], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.packages).not.toContain('zod');
    expect(heavyIn(again.packages)).toEqual([]);

    const verify = await packagesLoaded(['source', 'verify-plan', plan], env);
    // No values were written, so verify reports the path missing (exit 1), after reading the plan from the cache.
    expect(verify.code, verify.stderr).toBe(1);
    expect(verify.packages).not.toContain('zod');
    expect(heavyIn(verify.packages)).toEqual([]);
  });
});
