// The webhook's image lookup against a real registry that requires a login
// (Debian's docker-registry with htpasswd): credentials come from a real
// `.dockerconfigjson` the way an imagePullSecret carries them, and the
// registry's Basic challenge is answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialsFromDockerConfig, RegistryClient } from '../src/webhook/registry.js';
import { tempDir } from './helpers/cli.js';
import { REGISTRY_USER, startRegistry, type LocalRegistry } from './helpers/registry.js';

let registry: LocalRegistry | undefined;

beforeAll(async () => {
  registry = await startRegistry(await tempDir('ct-registry-'), { auth: true });
  await registry.push('private/app', '2.0', { Entrypoint: ['/srv/app'], Cmd: ['run'] });
});

afterAll(() => {
  registry?.stop();
});

/** A `.dockerconfigjson` as `kubectl create secret docker-registry` writes it. */
function dockerConfig(host: string, username: string, password: string): string {
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  return JSON.stringify({ auths: { [host]: { username, password, auth } } });
}

describe('registry login', () => {
  it('answers the Basic challenge with the pull secret that names the registry', async () => {
    const host = registry?.host ?? '';
    const asked: string[] = [];
    const client = new RegistryClient({
      insecure: [host],
      credentials: (namespace, pullSecrets, reg) => {
        asked.push(`${namespace}:${pullSecrets.join(',')}:${reg}`);
        // Only the `auth` field, as some tools write it.
        const json = JSON.stringify({
          auths: {
            'other.example.com': { auth: Buffer.from('x:y').toString('base64') },
            [`http://${host}/v2/`]: {
              auth: Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString(
                'base64',
              ),
            },
          },
        });
        return Promise.resolve(credentialsFromDockerConfig(json, reg));
      },
    });
    const found = await client.resolve(`${host}/private/app:2.0`, 'team-a', ['regcred']);
    expect(found).toEqual({ entrypoint: ['/srv/app'], cmd: ['run'] });
    expect(asked).toEqual([`team-a:regcred:${host}`]);
  });

  it('is refused without credentials or with a wrong password, and says so', async () => {
    const host = registry?.host ?? '';
    const image = `${host}/private/app:2.0`;
    const anonymous = new RegistryClient({ insecure: [host] });
    await expect(anonymous.resolve(image, 'team-a', [])).rejects.toThrow(
      `registry ${host} answered 401 for private/app:2.0`,
    );
    const wrong = new RegistryClient({
      insecure: [host],
      credentials: (_ns, _secrets, reg) =>
        Promise.resolve(
          credentialsFromDockerConfig(dockerConfig(host, REGISTRY_USER.username, 'nope'), reg),
        ),
    });
    await expect(wrong.resolve(image, 'team-a', ['regcred'])).rejects.toThrow('answered 401');
  });
});
