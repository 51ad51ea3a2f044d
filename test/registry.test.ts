// The webhook's image lookup against a real registry that requires a login
// (Debian's docker-registry with htpasswd): credentials come from a real
// `.dockerconfigjson` the way an imagePullSecret carries them, and the
// registry's Basic or Bearer (token server) challenge is answered.
import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialsFromDockerConfig, RegistryClient } from '../src/webhook/registry.js';
import { tempDir } from './helpers/cli.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';
import { REGISTRY_USER, startRegistry, type LocalRegistry } from './helpers/registry.js';

const run = promisify(execFile);
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

describe('registry token login', () => {
  it('answers a Bearer challenge: a token from the realm, asked with the pull secret, scoped to the image', async () => {
    const dir = await tempDir('ct-registry-token-');
    // The image is pushed while the registry is open, then the same storage
    // is served by a registry that only accepts tokens from our issuer.
    const open = await startRegistry(dir);
    await open.push('private/tool', '3.1', { Entrypoint: ['/usr/bin/tool'], Cmd: [] });
    open.stop();
    const key = join(dir, 'issuer.key');
    const cert = join(dir, 'issuer.crt');
    await run('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
      ...['-keyout', key, '-out', cert, '-subj', '/CN=cloudtaser-test-issuer'],
    ]);
    const certDer = new X509Certificate(await readFile(cert)).raw.toString('base64');
    const signingKey = createPrivateKey(await readFile(key));
    const requests: { scope: string; service: string; authorization: string }[] = [];
    const issuer = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://issuer');
      requests.push({
        scope: u.searchParams.get('scope') ?? '',
        service: u.searchParams.get('service') ?? '',
        authorization: req.headers.authorization ?? '',
      });
      const expected = `Basic ${Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401).end();
        return;
      }
      const [, name = '', actions = ''] = (u.searchParams.get('scope') ?? '').split(':');
      const now = Math.floor(Date.now() / 1000);
      const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
      const unsigned = `${b64({ alg: 'RS256', typ: 'JWT', x5c: [certDer] })}.${b64({
        iss: 'cloudtaser-test-issuer',
        sub: REGISTRY_USER.username,
        aud: 'test-registry',
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString('hex'),
        access: [{ type: 'repository', name, actions: actions.split(',') }],
      })}`;
      const signature = sign('sha256', Buffer.from(unsigned), signingKey).toString('base64url');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `${unsigned}.${signature}` }));
    });
    await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
    const realm = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}/token`;
    const guarded = await startRegistry(dir, {
      extraConfig: [
        'auth:',
        '  token:',
        `    realm: ${realm}`,
        '    service: test-registry',
        '    issuer: cloudtaser-test-issuer',
        `    rootcertbundle: ${cert}`,
      ],
    });
    try {
      const host = guarded.host;
      const image = `${host}/private/tool:3.1`;
      await expect(
        new RegistryClient({ insecure: [host] }).resolve(image, 'ns', []),
      ).rejects.toThrow('registry token request failed (401)');
      const client = new RegistryClient({
        insecure: [host],
        credentials: (_ns, _secrets, reg) =>
          Promise.resolve(
            credentialsFromDockerConfig(
              dockerConfig(host, REGISTRY_USER.username, REGISTRY_USER.password),
              reg,
            ),
          ),
      });
      expect(await client.resolve(image, 'ns', ['regcred'])).toEqual({
        entrypoint: ['/usr/bin/tool'],
        cmd: [],
      });
      expect(requests.at(-1)).toMatchObject({
        scope: 'repository:private/tool:pull',
        service: 'test-registry',
      });
    } finally {
      guarded.stop();
      issuer.close();
    }
  });
});

describe('image lookup limits', () => {
  let open: LocalRegistry | undefined;
  let proxy: FaultProxy | undefined;

  beforeAll(async () => {
    open = await startRegistry(await tempDir('ct-registry-open-'));
    // Forwards everything (no faults) and records what reached the registry.
    proxy = await startFaultProxy(`http://${open.host}`, { faultRate: 0 });
  });

  afterAll(async () => {
    await proxy?.close();
    open?.stop();
  });

  it("picks the index entry for the runtime's platform, not the first linux one", async () => {
    const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const other = arch === 'amd64' ? 'arm64' : 'amd64';
    const platforms = {
      [other]: { Entrypoint: [`/bin/${other}`], Cmd: ['wrong'] },
      [arch]: { Entrypoint: [`/bin/${arch}`], Cmd: ['right'] },
    };
    await open?.push('multi/app', '1', {}, platforms);
    const host = open?.host ?? '';
    const found = await new RegistryClient({ insecure: [host] }).resolve(
      `${host}/multi/app:1`,
      'ns',
      [],
    );
    expect(found).toEqual({ entrypoint: [`/bin/${arch}`], cmd: ['right'] });
  });

  it('refuses an image config larger than the cap, naming the limit', async () => {
    const huge = 'x'.repeat(5 * 1024 * 1024);
    await open?.push('big/app', '1', { Entrypoint: ['/app'], Cmd: [huge] });
    const host = open?.host ?? '';
    await expect(
      new RegistryClient({ insecure: [host] }).resolve(`${host}/big/app:1`, 'ns', []),
    ).rejects.toThrow(`registry ${host}: the config of big/app:1 is larger than 4 MiB`);
  });

  it('keeps at most the configured number of images cached, evicting the least recently used', async () => {
    for (const n of ['a', 'b', 'c']) await open?.push(`lru/${n}`, '1', { Entrypoint: [`/${n}`] });
    const host = new URL(proxy?.url ?? '').host;
    const client = new RegistryClient({ insecure: [host], cacheEntries: 2 });
    const lookups = (n: string): number =>
      (proxy?.requests ?? []).filter((r) => r.url === `/v2/lru/${n}/manifests/1`).length;
    const resolve = (n: string) => client.resolve(`${host}/lru/${n}:1`, 'ns', []);
    await resolve('a');
    await resolve('b');
    await resolve('a'); // a is now the most recently used
    expect(lookups('a')).toBe(1);
    await resolve('c'); // evicts b
    await resolve('a');
    expect(lookups('a')).toBe(1);
    await resolve('b');
    expect(lookups('b')).toBe(2);
    expect(await resolve('c')).toEqual({ entrypoint: ['/c'], cmd: [] });
  });
});
