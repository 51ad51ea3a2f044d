import { describe, expect, it } from 'vitest';
import { captureContext } from '../testing/context.js';
import { packageVersion } from '../version.js';
import { parseDuration, runCli } from './program.js';

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

  it('refuses a plain-http --vault-address for protect unless --allow-insecure-vault, loopback included', async () => {
    for (const address of ['http://vault.eu.example.com:8200', 'http://127.0.0.1:8200']) {
      const ctx = captureContext();
      const args = ['target', 'protect', '--plan', 'no-such-plan.yaml', '--yes'];
      expect(await runCli([...args, '--vault-address', address], ctx)).toBe(2);
      expect(ctx.err()).toContain('plain http');
      expect(ctx.err()).toContain('--allow-insecure-vault');
      // With the opt-in it gets as far as reading the plan.
      const opted = captureContext();
      const code = await runCli(
        [...args, '--vault-address', address, '--allow-insecure-vault'],
        opted,
      );
      expect(code).toBe(2);
      expect(opted.err()).toContain('no-such-plan.yaml');
      expect(opted.err()).not.toContain('plain http');
    }
  });

  it('reads --request-timeout as kubectl does, and rejects a bad one with exit 2', async () => {
    expect(parseDuration('30s', 'f')).toBe(30_000);
    expect(parseDuration('2m', 'f')).toBe(120_000);
    expect(parseDuration('500ms', 'f')).toBe(500);
    expect(parseDuration('1.5', 'f')).toBe(1500);
    expect(parseDuration('0', 'f')).toBe(0);
    const ctx = captureContext();
    expect(await runCli(['--request-timeout', 'soon', 'plan', 'schema'], ctx)).toBe(2);
    expect(ctx.err()).toContain(
      '--request-timeout must be a duration such as 30s, 2m or 0, not "soon"',
    );
    const env = captureContext({ env: { CLOUDTASER_REQUEST_TIMEOUT: '-1' } });
    expect(await runCli(['plan', 'schema'], env)).toBe(2);
    expect(env.err()).toContain('CLOUDTASER_REQUEST_TIMEOUT must be a duration');
  });
});
