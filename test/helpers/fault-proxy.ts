// An HTTP proxy on loopback that misbehaves on purpose, in front of a real
// server: it drops connections before forwarding, drops them after the
// server has answered (so the client never learns a write succeeded), and
// answers 503 (or, with `throttle`, only answers 429 as a rate-limited server
// does). Seeded and bounded: at most `maxFaults` faults, then it only
// forwards, so any client with sane retries finishes.
import { createServer, request, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

export interface FaultProxy {
  url: string;
  stats: {
    forwarded: number;
    dropBefore: number;
    dropAfter: number;
    unavailable: number;
    throttled: number;
  };
  /** Every request that reached the proxy, in order. */
  requests: { method: string; url: string }[];
  close(): Promise<void>;
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startFaultProxy(
  upstream: string,
  opts: {
    seed?: number;
    faultRate?: number;
    maxFaults?: number;
    throttle?: boolean;
    /** Runs before each request is forwarded: a test's way to act "in between". */
    beforeForward?: (method: string, url: string) => Promise<void>;
  } = {},
): Promise<FaultProxy> {
  const target = new URL(upstream);
  const random = mulberry32(opts.seed ?? 42);
  const rate = opts.faultRate ?? 0.3;
  const maxFaults = opts.maxFaults ?? 60;
  const stats = { forwarded: 0, dropBefore: 0, dropAfter: 0, unavailable: 0, throttled: 0 };
  const faults = (): number =>
    stats.dropBefore + stats.dropAfter + stats.unavailable + stats.throttled;

  const requests: { method: string; url: string }[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '' });
    const r = random();
    const fault =
      faults() < maxFaults && r < rate ? (opts.throttle ? 3 : Math.floor((r / rate) * 3)) : -1;
    if (fault === 3) {
      stats.throttled++;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end('{"errors":["injected: request rate limit exceeded"]}');
      return;
    }
    if (fault === 0) {
      stats.dropBefore++;
      req.socket.destroy();
      return;
    }
    if (fault === 1) {
      stats.unavailable++;
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end('{"errors":["injected: service unavailable"]}');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (opts.beforeForward?.(req.method ?? '', req.url ?? '') ?? Promise.resolve()).then(
        forward,
        forward,
      );
    });
    const forward = (): void => {
      const up = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('end', () => {
            if (fault === 2) {
              // The server did the work; the client never hears about it.
              stats.dropAfter++;
              req.socket.destroy();
              return;
            }
            stats.forwarded++;
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(Buffer.concat(chunks));
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

export interface StallProxy {
  /** `https://127.0.0.1:PORT` for an https upstream: the TLS session passes through untouched. */
  url: string;
  /** From now on, new connections are accepted and never answered, and open ones go silent. */
  stall(): void;
  close(): Promise<void>;
}

/**
 * A TCP pass-through to a real server (TLS and all) that can be told to stop
 * answering: the API server that hangs rather than refuses. Nothing is ever
 * closed by the proxy while stalled, so only the client's own timeout ends a
 * request.
 */
export async function startStallProxy(upstream: string): Promise<StallProxy> {
  const target = new URL(upstream);
  let stalled = false;
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (stalled) return;
    const up = connect(Number(target.port), target.hostname);
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
    client.on('data', (c: Buffer) => {
      if (!stalled) up.write(c);
    });
    up.on('data', (c: Buffer) => {
      if (!stalled) client.write(c);
    });
    client.on('end', () => up.end());
    up.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${target.protocol}//127.0.0.1:${port}`,
    stall: () => {
      stalled = true;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
