import { describe, expect, it } from 'vitest';
import { captureContext } from '../testing/context.js';
import { packageVersion } from '../version.js';
import { runCli } from './program.js';

describe('cloudtaser CLI', () => {
  it('prints help listing both command groups, exit 0', async () => {
    const ctx = captureContext();
    expect(await runCli(['--help'], ctx)).toBe(0);
    expect(ctx.out()).toMatch(/^Usage: cloudtaser/m);
    expect(ctx.out()).toMatch(/^\s+target\s/m);
    expect(ctx.out()).toMatch(/^\s+source\s/m);
  });

  it('prints the package version', async () => {
    const ctx = captureContext();
    expect(await runCli(['--version'], ctx)).toBe(0);
    expect(ctx.out().trim()).toBe(packageVersion());
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('rejects an unknown flag with exit 2 and no stack trace', async () => {
    const ctx = captureContext();
    expect(await runCli(['--no-such-flag'], ctx)).toBe(2);
    expect(ctx.err()).toContain("unknown option '--no-such-flag'");
    expect(ctx.err()).not.toMatch(/\n\s+at /);
  });

  it('rejects an unknown command with exit 2', async () => {
    const ctx = captureContext();
    expect(await runCli(['frobnicate'], ctx)).toBe(2);
    expect(ctx.err()).toContain("unknown command 'frobnicate'");
  });
});
