import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../core/errors.js';
import { provider } from './index.js';

/**
 * The error Node itself raises when a module outside this checkout imports
 * `specifier`, found nowhere: as in an install made without the optional
 * SDKs. Taken from a child process because the test runner resolves bare
 * imports from the project root, where the SDKs are installed.
 */
async function importFailure(specifier: string): Promise<NodeJS.ErrnoException> {
  const dir = await mkdtemp(join(tmpdir(), 'ct-sdk-'));
  const file = join(dir, 'source.mjs');
  await writeFile(file, `import ${JSON.stringify(specifier)};\n`);
  const script = `import(${JSON.stringify(file)}).catch((e) => { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); });`;
  const out = await new Promise<string>((done) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], (_err, stdout) => {
      done(stdout);
    });
  });
  expect(out, 'the child printed the import error').not.toBe('');
  const { code, message } = JSON.parse(out) as { code: string; message: string };
  return Object.assign(new Error(message), { code });
}

describe('cloud sources without their SDK', () => {
  it('say which packages to install instead of a module-resolution error', async () => {
    const e = await importFailure('@google-cloud/secret-manager');
    expect(e.code).toBe('ERR_MODULE_NOT_FOUND');
    const missing = provider('gcp', () => Promise.reject(e));
    await expect(missing).rejects.toThrow(UserError);
    await expect(missing).rejects.toMatchObject({
      message:
        '--from gcp needs the Google Cloud SDK, which this installation of cloudtaser lacks (installed without optional dependencies)',
      hint: 'install it where cloudtaser is installed (with -g for a global install): npm install @google-cloud/secret-manager google-auth-library',
    });
  });

  it('passes other failures on unchanged, a missing module that is not the SDK too', async () => {
    const broken = new Error('boom');
    await expect(provider('aws', () => Promise.reject(broken))).rejects.toBe(broken);
    const other = await importFailure('@aws-sdk/client-secrets-manager-but-not-quite');
    await expect(provider('aws', () => Promise.reject(other))).rejects.toBe(other);
  });
});
