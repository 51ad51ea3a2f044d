// A FAKE Azure Key Vault, written here because no emulator of the service can
// be had (lowkey-vault's jar is not obtainable from the registries this
// project can reach). It keeps to the documented REST protocol (data plane,
// api-version 7.x / 2025-07-01) for the calls the import and these tests
// make: the bearer challenge (a request without a token gets 401 with
// `WWW-Authenticate: Bearer authorization=…, resource=…`), set a secret
// (PUT), get a secret's latest or a given version, list secrets with
// `maxresults` and `nextLink` pagination; 404 SecretNotFound and 429
// Throttled (with Retry-After) in Key Vault's JSON error shape. HTTPS only,
// as the client requires for bearer tokens. Driven only through the official
// client. Not a real server: it proves the client is used correctly against
// the documented protocol, not that the service behaves so.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAKE_TENANT = '72f988bf-0000-4000-8000-00000000f4ce';

export interface FakeAzureKeyVault {
  /** `https://127.0.0.1:PORT`: the vault URL. */
  url: string;
  /** Sets a secret as the vault would on PUT (a new version each time). */
  set(name: string, value: string): void;
  /** The next `n` secret reads answer 429 Throttled. */
  throttleNext(n: number): void;
  stats: { challenged: number; reads: number; throttled: number; badToken: number };
  close(): Promise<void>;
}

interface Version {
  id: string;
  value: string;
  created: number;
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function error(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  send(res, status, { error: { code, message } }, headers);
}

export async function startFakeAzureKeyVault(
  tls: { cert: string; key: string },
  token: string,
): Promise<FakeAzureKeyVault> {
  const secrets = new Map<string, Version[]>();
  const stats = { challenged: 0, reads: 0, throttled: 0, badToken: 0 };
  let throttle = 0;
  let base = '';
  const bundle = (name: string, v: Version) => ({
    value: v.value,
    id: `${base}/secrets/${name}/${v.id}`,
    attributes: {
      enabled: true,
      created: v.created,
      updated: v.created,
      recoveryLevel: 'Recoverable+Purgeable',
    },
  });
  const set = (name: string, value: string): Version => {
    const v: Version = {
      id: randomBytes(16).toString('hex'),
      value,
      created: Math.floor(Date.now() / 1000),
    };
    secrets.set(name, [...(secrets.get(name) ?? []), v]);
    return v;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const u = new URL(req.url ?? '/', base);
    if (!u.searchParams.get('api-version')) {
      error(
        res,
        400,
        'BadParameter',
        'The request URI contains an invalid name: api-version is missing.',
      );
      return;
    }
    const auth = req.headers.authorization;
    if (auth === undefined) {
      // The challenge the client starts with: it learns the tenant and resource from it.
      stats.challenged++;
      error(res, 401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.', {
        'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${FAKE_TENANT}", resource="https://vault.azure.net"`,
      });
      return;
    }
    if (auth !== `Bearer ${token}`) {
      stats.badToken++;
      error(res, 401, 'Unauthorized', 'AKV10032: Invalid issuer.');
      return;
    }
    const path = decodeURIComponent(u.pathname).replace(/\/$/, '');
    let m: RegExpMatchArray | null;
    if ((m = path.match(/^\/secrets\/([^/]+)(?:\/([^/]*))?$/))) {
      const [, name = '', version = ''] = m;
      if (req.method === 'PUT' && !version) {
        const b = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { value?: unknown };
        if (typeof b.value !== 'string' || !/^[0-9A-Za-z-]{1,127}$/.test(name)) {
          error(res, 400, 'BadParameter', 'The request is invalid.');
          return;
        }
        send(res, 200, bundle(name, set(name, b.value)));
        return;
      }
      if (req.method === 'GET') {
        stats.reads++;
        if (throttle > 0) {
          throttle--;
          stats.throttled++;
          error(
            res,
            429,
            'Throttled',
            'Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached',
            { 'retry-after': '0' },
          );
          return;
        }
        const versions = secrets.get(name) ?? [];
        const v = version ? versions.find((x) => x.id === version) : versions.at(-1);
        if (!v) {
          error(
            res,
            404,
            'SecretNotFound',
            `A secret with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
          );
          return;
        }
        send(res, 200, bundle(name, v));
        return;
      }
    }
    if (req.method === 'GET' && path === '/secrets') {
      const max = Math.min(Number(u.searchParams.get('maxresults') ?? '25') || 25, 25);
      const skip = Number(u.searchParams.get('$skiptoken') ?? '0') || 0;
      const names = [...secrets.keys()].sort();
      const page = names.slice(skip, skip + max);
      const next = new URL(`${base}/secrets`);
      next.searchParams.set('api-version', u.searchParams.get('api-version') ?? '');
      next.searchParams.set('$skiptoken', String(skip + max));
      next.searchParams.set('maxresults', String(max));
      send(res, 200, {
        value: page.map((n) => {
          const { value: _v, ...props } = bundle(n, (secrets.get(n) ?? []).at(-1) as Version);
          return { ...props, id: `${base}/secrets/${n}` };
        }),
        nextLink: skip + max < names.length ? next.toString() : null,
      });
      return;
    }
    error(res, 404, 'NotFound', 'The requested resource was not found.');
  };

  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch(() => {
      error(res, 500, 'InternalServerError', 'fake failed');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: base,
    set: (name, value) => {
      set(name, value);
    },
    throttleNext: (n) => {
      throttle = n;
    },
    stats,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
