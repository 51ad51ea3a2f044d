import { defineConfig } from 'vitest/config';

/**
 * Test files that need nodes of their own rather than the test sandbox's:
 * node start/stop and teardown, and the image test that asserts exactly
 * what a fresh node pulled.
 */
const NODE_LIFECYCLE = ['test/node.test.ts', 'test/images-node.test.ts', 'test/wait-node.test.ts'];

export default defineConfig({
  test: {
    reporters: ['default', './test/setup/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          // test/setup/ holds the test run's own machinery; its tests need no sandbox.
          include: ['src/**/*.test.ts', 'test/setup/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...NODE_LIFECYCLE, 'test/setup/**', 'test/fixtures/**', '**/node_modules/**'],
          // One sandbox for the run, with the machine's one node.
          globalSetup: ['test/setup/sandbox.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          // Tests that start, stop and kill nodes of their own. Only one node
          // runs per machine, so they run in a vitest run of their own after
          // the integration run has stopped its sandbox (test/setup/run-vitest.sh).
          name: 'node',
          include: NODE_LIFECYCLE,
          testTimeout: 400_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
