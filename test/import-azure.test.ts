// `target import --from azure` against a FAKE Azure Key Vault
// (test/fakes/azure-key-vault.ts) over HTTPS with a throwaway CA the CLI
// trusts through NODE_EXTRA_CA_CERTS: no emulator of the service can be had,
// so this proves the official client is driven correctly against the
// documented protocol (bearer challenge, errors, throttling), not the
// service itself. The credential is DefaultAzureCredential's Azure CLI one
// (AZURE_TOKEN_CREDENTIALS=AzureCliCredential), answered by a stand-in `az`
// on PATH that prints a token, as `az account get-access-token` does.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { join } from 'node:path';
import { loopbackPki } from '../testenv/pki.js';
import { startFakeAzureKeyVault, type FakeAzureKeyVault } from './fakes/azure-key-vault.js';
import { tempDir } from './helpers/cli.js';
import { cloudImportSuite } from './helpers/import-cloud.js';

const TOKEN = 'eyJ0eXAiOiJKV1QifQ.fake-key-vault-token.sig';
let vault: FakeAzureKeyVault | undefined;

cloudImportSuite('target import --from azure (fake Key Vault)', async () => {
  const dir = await tempDir('ct-azure-');
  const pki = await loopbackPki(dir);
  const fake = await startFakeAzureKeyVault({ cert: pki.cert, key: pki.key }, TOKEN);
  vault = fake;
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const expires = Math.floor(Date.now() / 1000) + 3600;
  await writeFile(
    join(bin, 'az'),
    `#!/bin/sh\necho '{"accessToken":"${TOKEN}","expires_on":${expires},"tokenType":"Bearer"}'\n`,
  );
  await chmod(join(bin, 'az'), 0o755);
  const caFile = join(dir, 'ca.crt');
  await writeFile(caFile, pki.ca);
  return {
    from: 'azure',
    label: 'Azure secret',
    defaultName: (ns, secret) => `${ns}-${secret}`,
    put: (name, text) => {
      fake.set(name, text);
      return Promise.resolve();
    },
    env: {
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      AZURE_TOKEN_CREDENTIALS: 'AzureCliCredential',
      NODE_EXTRA_CA_CERTS: caFile,
    },
    args: ['--endpoint', fake.url],
    throttleNext: (n) => {
      fake.throttleNext(n);
    },
    throttled: () => fake.stats.throttled,
    reads: () => fake.stats.reads,
    close: () => fake.close(),
  };
});

it('each CLI run went through the bearer challenge and sent only the token the credential gave', () => {
  // One challenge per process: the client caches what it learnt from it.
  expect(vault?.stats.challenged).toBeGreaterThanOrEqual(8);
  expect(vault?.stats.badToken).toBe(0);
});
