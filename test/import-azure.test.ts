// `target import --from azure` against a FAKE Azure Key Vault
// (test/fakes/azure-key-vault.ts) over HTTPS with a throwaway CA the CLI
// trusts through NODE_EXTRA_CA_CERTS: no emulator of the service can be had,
// so this proves the official client is driven correctly against the
// documented protocol (bearer challenge, errors, throttling), not the
// service itself. The credential is DefaultAzureCredential's Azure CLI one
// (AZURE_TOKEN_CREDENTIALS=AzureCliCredential), answered by a stand-in `az`
// on PATH that prints a token, as `az account get-access-token` does.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { SecretClient } from '@azure/keyvault-secrets';
import { expect, it } from 'vitest';
import { join } from 'node:path';
import { loopbackPki } from '../testenv/pki.js';
import { startFakeAzureKeyVault, type FakeAzureKeyVault } from './fakes/azure-key-vault.js';
import { tempDir } from './helpers/cli.js';
import { cloudImportSuite } from './helpers/import-cloud.js';

const TOKEN = 'eyJ0eXAiOiJKV1QifQ.fake-key-vault-token.sig';
let vault: FakeAzureKeyVault | undefined;

/** A credential as the client sees one: anything with getToken. */
const credential: ConstructorParameters<typeof SecretClient>[1] = {
  getToken: () => Promise.resolve({ token: TOKEN, expiresOnTimestamp: Date.now() + 3600_000 }),
};

/** The official client in this process, trusting the fake's throwaway CA. */
function officialClient(url: string, ca: string): SecretClient {
  return new SecretClient(url, credential, {
    disableChallengeResourceVerification: true,
    tlsOptions: { ca },
    retryOptions: { maxRetries: 0 },
  });
}

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
  const client = officialClient(fake.url, pki.ca);
  return {
    from: 'azure',
    label: 'Azure secret',
    defaultName: (ns, secret) => `${ns}-${secret}`,
    put: async (name, text) => {
      await client.setSecret(name, text);
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

it('the fake challenges, pages its list with nextLink and answers 404 as the protocol says, through the official client', async () => {
  const dir = await tempDir('ct-azure-list-');
  const pki = await loopbackPki(dir);
  const fake = await startFakeAzureKeyVault({ cert: pki.cert, key: pki.key }, TOKEN);
  try {
    const client = officialClient(fake.url, pki.ca);
    for (let i = 0; i < 30; i++) await client.setSecret(`s${String(i).padStart(2, '0')}`, `v${i}`);
    expect(fake.stats.challenged).toBe(1);
    const names: string[] = [];
    let pages = 0;
    for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 7 })) {
      pages++;
      names.push(...page.map((p) => p.name));
    }
    expect(names).toEqual(Array.from({ length: 30 }, (_, i) => `s${String(i).padStart(2, '0')}`));
    expect(pages).toBeGreaterThan(1);
    expect((await client.getSecret('s07')).value).toBe('v7');
    await expect(client.getSecret('absent')).rejects.toMatchObject({
      statusCode: 404,
      code: 'SecretNotFound',
    });
    fake.throttleNext(1);
    await expect(client.getSecret('s07')).rejects.toMatchObject({ statusCode: 429 });
  } finally {
    await fake.close();
  }
});
