// Minimal HTTP(S) helper for the sandbox's own bootstrap calls (readiness
// probes, OpenBao auth setup). The product has its own clients; this file
// only exists so testenv has no dependency on the code it tests.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpResponse {
  status: number;
  body: string;
}

export function httpCall(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: unknown;
    ca?: string;
    timeoutMs?: number;
  } = {},
): Promise<HttpResponse> {
  const u = new URL(url);
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { ...opts.headers };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const requester = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = requester(
      u,
      {
        method: opts.method ?? 'GET',
        headers,
        ca: opts.ca,
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: data });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout calling ${u.origin}${u.pathname}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Polls `probe` until it returns true or the deadline passes. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  isDead?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    const dead = isDead?.();
    if (dead) throw new Error(`testenv: ${what} exited early: ${dead}`);
    try {
      if (await probe()) return;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `testenv: ${what} not ready after ${timeoutMs / 1000} s${lastError ? ` (${lastError})` : ''}`,
  );
}
