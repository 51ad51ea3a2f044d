// sops and age for the SOPS import tests, built (once) from a pinned
// build-only Go module and cached like the sandbox's servers. Not part of the
// sandbox: only the tests that encrypt with sops ask for them.
import { join } from 'node:path';
import { ensureGoTools, type Log } from './build.js';
import { projectRoot } from './paths.js';

export const SOPS_VERSION = 'v3.13.3';

/** Wrapper Go module that pins sops (and age, which encrypts for it). */
export const sopsModuleDir = join(projectRoot, 'testenv', 'go', 'sops');

export interface SopsBinaries {
  sops: string;
  age: string;
  ageKeygen: string;
}

/** Builds sops, age and age-keygen once (about 2 min on 2 cores); returns their paths. */
export async function ensureSops(log: Log = () => undefined): Promise<SopsBinaries> {
  const b = await ensureGoTools(log, {
    id: 'sops',
    label: 'sops/age',
    moduleDir: sopsModuleDir,
    version: SOPS_VERSION,
    tools: [
      { pkg: 'github.com/getsops/sops/v3/cmd/sops', out: 'sops', name: 'sops' },
      { pkg: 'filippo.io/age/cmd/age', out: 'age', name: 'age' },
      { pkg: 'filippo.io/age/cmd/age-keygen', out: 'age-keygen', name: 'age-keygen' },
    ],
    ldflags: '-s -w',
    estimate: 'about 2 min on 2 cores',
  });
  return { sops: b.sops ?? '', age: b.age ?? '', ageKeygen: b['age-keygen'] ?? '' };
}
