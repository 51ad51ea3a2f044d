import { describe, expect, it } from 'vitest';
import { UserError } from '../../core/errors.js';
import { provider } from './index.js';

describe('cloud sources without their SDK', () => {
  it('say which packages to install instead of a module-resolution error', async () => {
    // A real failed import, as when npm installed cloudtaser without its optional dependencies.
    const absent: string = '@google-cloud/no-such-package';
    const missing = provider('gcp', (): Promise<unknown> => import(absent));
    await expect(missing).rejects.toThrow(UserError);
    await expect(missing).rejects.toMatchObject({
      message: '--from gcp needs the GCP SDK, which this installation of cloudtaser lacks',
      hint: 'install it beside cloudtaser: npm install @google-cloud/secret-manager google-auth-library',
    });
  });

  it('passes other failures on unchanged', async () => {
    const broken = new Error('boom');
    await expect(provider('aws', () => Promise.reject(broken))).rejects.toBe(broken);
  });
});
