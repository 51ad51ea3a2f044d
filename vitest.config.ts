import { defineConfig } from 'vitest/config';

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
          exclude: ['test/setup/**', 'test/fixtures/**', '**/node_modules/**'],
          globalSetup: ['test/setup/sandbox.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
