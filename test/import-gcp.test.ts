// `target import --from gcp` against a FAKE GCP Secret Manager
// (test/fakes/gcp-secret-manager.ts): no emulator of the service can be had,
// so this proves the official client (REST mode) is driven correctly against
// the documented protocol, not the service itself. Secrets are created and
// listed through the official client too.
import { SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { OAuth2Client } from 'google-auth-library';
import { expect, it } from 'vitest';
import { startFakeGcpSecretManager } from './fakes/gcp-secret-manager.js';
import { cloudImportSuite } from './helpers/import-cloud.js';

const PROJECT = 'cloudtaser-test';
const TOKEN = 'ya29.fake-access-token-for-tests';

function officialClient(url: string): SecretManagerServiceClient {
  const u = new URL(url);
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: TOKEN });
  return new SecretManagerServiceClient({
    fallback: true,
    apiEndpoint: u.hostname,
    port: Number(u.port),
    protocol: 'http',
    authClient: auth,
  });
}

cloudImportSuite('target import --from gcp (fake Secret Manager)', async () => {
  const fake = await startFakeGcpSecretManager(TOKEN);
  const client = officialClient(fake.url);
  return {
    from: 'gcp',
    label: 'GCP secret',
    defaultName: (ns, secret) => `${ns}-${secret}`,
    put: async (name, text) => {
      await client.createSecret({
        parent: `projects/${PROJECT}`,
        secretId: name,
        secret: { replication: { automatic: {} } },
      });
      await client.addSecretVersion({
        parent: `projects/${PROJECT}/secrets/${name}`,
        payload: { data: Buffer.from(text) },
      });
    },
    env: { GOOGLE_OAUTH_ACCESS_TOKEN: TOKEN, GOOGLE_CLOUD_PROJECT: PROJECT },
    args: ['--endpoint', fake.url],
    throttleNext: (n) => {
      fake.throttleNext(n);
    },
    throttled: () => fake.stats.throttled,
    reads: () => fake.stats.accessed,
    close: async () => {
      await client.close();
      await fake.close();
    },
  };
});

it('the fake pages its list, refuses a wrong token and answers 404 as the protocol says, through the official client', async () => {
  const fake = await startFakeGcpSecretManager(TOKEN);
  const client = officialClient(fake.url);
  try {
    for (let i = 0; i < 7; i++) {
      await client.createSecret({ parent: `projects/${PROJECT}`, secretId: `s${i}`, secret: {} });
    }
    const [all] = await client.listSecrets({ parent: `projects/${PROJECT}`, pageSize: 3 });
    expect(all.map((s) => s.name)).toEqual(
      [0, 1, 2, 3, 4, 5, 6].map((i) => `projects/${PROJECT}/secrets/s${i}`),
    );
    await expect(
      client.accessSecretVersion({ name: `projects/${PROJECT}/secrets/absent/versions/latest` }),
    ).rejects.toMatchObject({ status: 404 });
    const wrongAuth = new OAuth2Client();
    wrongAuth.setCredentials({ access_token: 'not-the-token' });
    const anonymous = new SecretManagerServiceClient({
      fallback: true,
      apiEndpoint: '127.0.0.1',
      port: Number(new URL(fake.url).port),
      protocol: 'http',
      authClient: wrongAuth,
    });
    await expect(anonymous.listSecrets({ parent: `projects/${PROJECT}` })).rejects.toMatchObject({
      status: 401,
    });
    expect(fake.stats.unauthenticated).toBeGreaterThan(0);
    await anonymous.close();
  } finally {
    await client.close();
    await fake.close();
  }
});
