// A FAKE GCP Secret Manager, written here because no emulator of the service
// can be had (none on the registries this project can reach). It keeps to the
// documented REST protocol (v1, HTTP/JSON) the official client's REST mode
// speaks, for the calls the import and these tests make: create a secret, add
// a version, access a version (`latest` too), list secrets with pagination;
// bearer auth (401 UNAUTHENTICATED), 404 NOT_FOUND and 429 RESOURCE_EXHAUSTED
// in Google's JSON error shape. It is driven only through the official client.
// Not a real server: it proves the client is used correctly against the
// documented protocol, not that the service behaves so.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeGcpSecretManager {
  /** `http://127.0.0.1:PORT`, for the client's apiEndpoint/port/protocol. */
  url: string;
  token: string;
  /** The next `n` access calls answer 429 RESOURCE_EXHAUSTED. */
  throttleNext(n: number): void;
  stats: { accessed: number; throttled: number; unauthenticated: number };
  close(): Promise<void>;
}

interface Secret {
  created: string;
  versions: Buffer[];
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
}

function error(res: ServerResponse, code: number, status: string, message: string): void {
  send(res, code, { error: { code, message, status } });
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

export async function startFakeGcpSecretManager(token: string): Promise<FakeGcpSecretManager> {
  const projects = new Map<string, Map<string, Secret>>();
  const stats = { accessed: 0, throttled: 0, unauthenticated: 0 };
  let throttle = 0;
  const secretsOf = (p: string): Map<string, Secret> => {
    let m = projects.get(p);
    if (!m) projects.set(p, (m = new Map<string, Secret>()));
    return m;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      stats.unauthenticated++;
      error(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
      return;
    }
    const u = new URL(req.url ?? '/', 'http://fake');
    const path = decodeURIComponent(u.pathname);
    let m: RegExpMatchArray | null;
    // GET /v1/projects/P/secrets/S/versions/V:access
    if (
      req.method === 'GET' &&
      (m = path.match(/^\/v1\/projects\/([^/]+)\/secrets\/([^/]+)\/versions\/([^/:]+):access$/))
    ) {
      const [, project = '', id = '', version = ''] = m;
      stats.accessed++;
      if (throttle > 0) {
        throttle--;
        stats.throttled++;
        error(
          res,
          429,
          'RESOURCE_EXHAUSTED',
          "Quota exceeded for quota metric 'Access requests' of service 'secretmanager.googleapis.com'.",
        );
        return;
      }
      const s = secretsOf(project).get(id);
      const n = version === 'latest' ? (s?.versions.length ?? 0) : Number(version);
      const data = s?.versions[n - 1];
      if (!s || !data) {
        error(
          res,
          404,
          'NOT_FOUND',
          `Secret Version [projects/${project}/secrets/${id}/versions/${version}] not found.`,
        );
        return;
      }
      send(res, 200, {
        name: `projects/${project}/secrets/${id}/versions/${n}`,
        payload: { data: data.toString('base64') },
      });
      return;
    }
    // POST /v1/projects/P/secrets?secretId=S
    if (req.method === 'POST' && (m = path.match(/^\/v1\/projects\/([^/]+)\/secrets$/))) {
      const project = m[1] ?? '';
      const id = u.searchParams.get('secretId') ?? '';
      await body(req);
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) {
        error(res, 400, 'INVALID_ARGUMENT', 'Invalid secret id.');
        return;
      }
      if (secretsOf(project).has(id)) {
        error(
          res,
          409,
          'ALREADY_EXISTS',
          `Secret [projects/${project}/secrets/${id}] already exists.`,
        );
        return;
      }
      const created = new Date().toISOString();
      secretsOf(project).set(id, { created, versions: [] });
      send(res, 200, {
        name: `projects/${project}/secrets/${id}`,
        createTime: created,
        replication: { automatic: {} },
      });
      return;
    }
    // POST /v1/projects/P/secrets/S:addVersion
    if (
      req.method === 'POST' &&
      (m = path.match(/^\/v1\/projects\/([^/]+)\/secrets\/([^/:]+):addVersion$/))
    ) {
      const [, project = '', id = ''] = m;
      const b = await body(req);
      const s = secretsOf(project).get(id);
      if (!s) {
        error(res, 404, 'NOT_FOUND', `Secret [projects/${project}/secrets/${id}] not found.`);
        return;
      }
      const payload = b.payload as { data?: string } | undefined;
      s.versions.push(Buffer.from(payload?.data ?? '', 'base64'));
      send(res, 200, {
        name: `projects/${project}/secrets/${id}/versions/${s.versions.length}`,
        state: 'ENABLED',
      });
      return;
    }
    // GET /v1/projects/P/secrets?pageSize=N&pageToken=T
    if (req.method === 'GET' && (m = path.match(/^\/v1\/projects\/([^/]+)\/secrets$/))) {
      const project = m[1] ?? '';
      const size = Math.min(Number(u.searchParams.get('pageSize') ?? '25') || 25, 25000);
      const start = Number(u.searchParams.get('pageToken') ?? '0') || 0;
      const ids = [...secretsOf(project).keys()].sort();
      const page = ids.slice(start, start + size);
      send(res, 200, {
        secrets: page.map((id) => ({
          name: `projects/${project}/secrets/${id}`,
          replication: { automatic: {} },
        })),
        ...(start + size < ids.length ? { nextPageToken: String(start + size) } : {}),
        totalSize: ids.length,
      });
      return;
    }
    error(res, 404, 'NOT_FOUND', `The requested URL ${path} was not found on this server.`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      error(res, 500, 'INTERNAL', 'fake failed');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
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
