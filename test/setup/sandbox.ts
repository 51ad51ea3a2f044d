// Vitest global setup for the integration project: one real sandbox per test
// run, shared by every integration test file (each test uses its own
// namespaces and vault paths, so files can run in parallel).
import type { TestProject } from 'vitest/node';
import { startSandbox, type SandboxInfo } from '../../testenv/sandbox.js';

declare module 'vitest' {
  export interface ProvidedContext {
    sandbox: SandboxInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const sb = await startSandbox({
    log: (line) => {
      console.error(line);
    },
  });
  project.provide('sandbox', sb.info);
  return () => sb.stop();
}
