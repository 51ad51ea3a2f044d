// Vitest global setup for the integration project: one real sandbox per test
// run, shared by every integration test file (each test uses its own
// namespaces and vault paths, so files can run in parallel).
//
// The sandbox has the real node when this machine can run one. When it
// cannot (no root, no mount namespaces, packages it may not install), the
// control plane still comes up, the reason is printed once, and it travels
// in the provided sandbox info: every test that needs the node fails with
// that line (requireNode in test/helpers/sandbox.ts), none is skipped.
import type { TestProject } from 'vitest/node';
import { startSandbox, type SandboxInfo } from '../../testenv/sandbox.js';

declare module 'vitest' {
  export interface ProvidedContext {
    sandbox: SandboxInfo;
  }
}

// CLOUDTASER_TEST_NODE=0 starts the sandbox without its node, for a run of
// tests that need no pods while another sandbox on this machine holds the
// one node; the pod tests then fail with that reason (never skipped).
const NODE_OFF = 'the test sandbox was started without a node (CLOUDTASER_TEST_NODE=0)';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const noNode = process.env['CLOUDTASER_TEST_NODE'] === '0';
  const sb = await startSandbox({
    node: noNode ? false : 'auto',
    log: (line) => {
      console.error(line);
    },
  });
  project.provide('sandbox', noNode ? { ...sb.info, nodeUnavailable: NODE_OFF } : sb.info);
  return () => sb.stop();
}
