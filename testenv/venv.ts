// Python tools the tests and the bench run (moto's server, the AWS CLI), each
// in its own virtualenv under the testenv cache, keyed by its pinned
// requirements file and the Python version: a fresh machine installs them
// once, later runs reuse them. A venv holds its own absolute path in its
// scripts, so it is built in place, marked complete only at the end, and
// rebuilt when a previous attempt died half-way.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError, hashFiles, run, tail, which, withBuildLock, type Log } from './build.js';
import { cacheRoot, projectRoot } from './paths.js';

export interface VenvSpec {
  /** Cache entry name prefix, e.g. `moto`. */
  id: string;
  label: string;
  /** Requirements file, relative to the project root. */
  requirements: string;
  estimate: string;
}

/** Installs (once) the pinned requirements into a cached venv; returns its bin directory. */
export async function ensureVenv(log: Log, spec: VenvSpec): Promise<string> {
  if (!(await which('python3'))) {
    throw new BuildError(
      spec.label,
      'python3 is not installed',
      'Install it: apt-get install python3 python3-venv',
    );
  }
  const req = join(projectRoot, spec.requirements);
  const py = (await run('python3', ['-c', 'import sys; print(sys.version)'])).stdout.trim();
  const key = hashFiles([await readFile(req), py, process.arch]);
  const dir = join(cacheRoot(), `${spec.id}-${key}`);
  const bin = join(dir, 'bin');
  if (existsSync(join(dir, '.complete'))) return bin;
  return withBuildLock(dir, log, async () => {
    if (existsSync(join(dir, '.complete'))) return bin;
    await mkdir(cacheRoot(), { recursive: true });
    await rm(dir, { recursive: true, force: true });
    const logFile = join(cacheRoot(), `install-${spec.id}-${key}.log`);
    const started = Date.now();
    log(`testenv: installing ${spec.label} into a cached venv (${spec.estimate}; log: ${logFile})`);
    const venv = await run('python3', ['-m', 'venv', dir], { logFile });
    if (venv.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new BuildError(
        spec.label,
        `python3 -m venv exited ${venv.code}:\n${await tail(logFile)}`,
        'Install the venv module: apt-get install python3-venv',
      );
    }
    const pip = await run(
      join(bin, 'pip'),
      ['install', '--disable-pip-version-check', '--no-input', '-r', req],
      { logFile },
    );
    if (pip.code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new BuildError(
        spec.label,
        `pip install exited ${pip.code}:\n${await tail(logFile)}`,
        `Check that PyPI is reachable; the versions are pinned in ${spec.requirements}.`,
      );
    }
    await writeFile(join(dir, '.complete'), new Date().toISOString());
    log(`testenv: ${spec.label} installed in ${Math.round((Date.now() - started) / 1000)} s`);
    return bin;
  });
}
