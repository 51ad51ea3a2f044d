// AdmissionReview v1 in, AdmissionReview v1 out, over HTTPS.
//
// Each review has a budget inside the API server's timeoutSeconds: image
// lookups run side by side and are cancelled at the deadline, so the API
// server gets a clear denial instead of timing out (failure policy Fail).
// The serving certificate is re-read while running (see tls.ts), and on
// shutdown reviews in flight are answered before the process exits.
import type { V1Pod } from '@kubernetes/client-node';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { watchCertificate, type CertificateWatch } from './tls.js';
import {
  containersNeedingImageConfig,
  decide,
  wantsInjection,
  type ImageCommand,
  type MutateConfig,
} from './mutate.js';

export interface AdmissionRequest {
  uid: string;
  namespace?: string;
  operation?: string;
  object?: V1Pod;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: string;
  request?: AdmissionRequest;
}

/**
 * Looks up an image's ENTRYPOINT/CMD; throws with a reason when it cannot.
 * `signal` aborts at the review's deadline: stop then.
 */
export type ImageResolver = (
  image: string,
  namespace: string,
  pullSecrets: readonly string[],
  signal: AbortSignal,
) => Promise<ImageCommand>;

/** Below the rendered webhook timeoutSeconds (10), leaving room for the round trip. */
export const DEFAULT_REVIEW_BUDGET_MS = 8_000;

/** Settles with the resolver's answer or the deadline's reason, whichever comes first. */
function withinDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export async function review(
  body: AdmissionReview,
  cfg: MutateConfig,
  resolve?: ImageResolver,
  budgetMs: number = DEFAULT_REVIEW_BUDGET_MS,
): Promise<AdmissionReview & { response: Record<string, unknown> }> {
  const req = body.request;
  const uid = req?.uid ?? '';
  const respond = (response: Record<string, unknown>) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid, ...response },
  });
  const pod = req?.object;
  if (!req || !pod || req.operation !== 'CREATE' || !wantsInjection(pod))
    return respond({ allowed: true });

  const images = new Map<string, ImageCommand | string>();
  const namespace = req.namespace ?? pod.metadata?.namespace ?? 'default';
  const pullSecrets = (pod.spec?.imagePullSecrets ?? []).map((s) => s.name ?? '').filter(Boolean);
  const wanted = [...new Set(containersNeedingImageConfig(pod).map((c) => c.image ?? ''))];
  if (wanted.length > 0) {
    const deadline = new AbortController();
    const seconds = Math.round(budgetMs / 100) / 10;
    const timer = setTimeout(() => {
      deadline.abort(
        new Error(`the image lookup did not finish within the ${seconds}s admission budget`),
      );
    }, budgetMs);
    try {
      const answers = await Promise.all(
        wanted.map(async (image): Promise<ImageCommand | string> => {
          if (!resolve) return 'no image registry lookup is configured';
          try {
            return await withinDeadline(
              resolve(image, namespace, pullSecrets, deadline.signal),
              deadline.signal,
            );
          } catch (e) {
            return e instanceof Error ? e.message : String(e);
          }
        }),
      );
      wanted.forEach((image, i) => images.set(image, answers[i] ?? 'no answer'));
    } finally {
      clearTimeout(timer);
    }
  }
  const d = decide(pod, cfg, images);
  if (!d.allowed) return respond({ allowed: false, status: { code: 400, message: d.message } });
  if (d.patch.length === 0) return respond({ allowed: true });
  return respond({
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(d.patch)).toString('base64'),
    ...(d.warnings && d.warnings.length > 0 ? { warnings: d.warnings } : {}),
  });
}

/**
 * The review's budget: the configured one, shortened to fit the timeout the
 * API server says it will wait (it appends `?timeout=10s`, the webhook's
 * timeoutSeconds) less a margin for the answer's way back.
 */
export function budgetFor(url: string | undefined, configuredMs: number | undefined): number {
  const budget = configuredMs ?? DEFAULT_REVIEW_BUDGET_MS;
  const param = new URL(url ?? '/', 'https://webhook').searchParams.get('timeout') ?? '';
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(param);
  if (!m) return budget;
  const unit = m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000;
  const waitMs = Number(m[1]) * unit;
  return Math.min(budget, Math.max(waitMs - 1000, waitMs / 2));
}

export interface WebhookServer {
  port: number;
  /**
   * Stops accepting connections, answers the reviews in flight (for at most
   * `drainMs`), then closes every connection.
   */
  close(drainMs?: number): Promise<void>;
  /** Reviews being answered right now. */
  inFlight(): number;
}

const MAX_BODY = 8 * 1024 * 1024;

export function startWebhookServer(o: {
  cert: string;
  key: string;
  /** Re-read these (the files `cert` and `key` came from) every `intervalMs`. */
  reload?: { certFile: string; keyFile: string; intervalMs: number };
  port: number;
  host: string;
  config: MutateConfig;
  resolve?: ImageResolver;
  reviewBudgetMs?: number;
  log: (line: string) => void;
}): Promise<WebhookServer> {
  let inFlight = 0;
  let closing = false;
  let drained: (() => void) | undefined;
  const server: Server = createServer({ cert: o.cert, key: o.key }, (req, res) => {
    if (req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      res.writeHead(closing && req.url === '/readyz' ? 503 : 200, {
        'content-type': 'text/plain',
      });
      res.end(closing && req.url === '/readyz' ? 'shutting down' : 'ok');
      return;
    }
    if (req.method !== 'POST' || !req.url?.startsWith('/mutate')) {
      res.writeHead(404).end();
      return;
    }
    // The review's own time, from its request's headers to its answer: what
    // the webhook adds to a pod's admission (the log line carries it).
    const received = process.hrtime.bigint();
    inFlight++;
    // Counted until the answer is written or the connection goes away.
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      inFlight--;
      if (closing) {
        // Keep-alive connections left idle by this answer must not hold the shutdown.
        server.closeIdleConnections();
        if (inFlight === 0) drained?.();
      }
    };
    res.on('close', done);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let body: AdmissionReview;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
      } catch {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('request body is not JSON');
        return;
      }
      review(body, o.config, o.resolve, budgetFor(req.url, o.reviewBudgetMs)).then(
        (out) => {
          const pod = body.request?.object;
          const name = `${body.request?.namespace ?? ''}/${pod?.metadata?.name ?? pod?.metadata?.generateName ?? '?'}`;
          const r = out.response;
          const ms = (Number(process.hrtime.bigint() - received) / 1e6).toFixed(1);
          o.log(
            `admission ${name} in ${ms} ms: ${r.allowed === true ? (r.patch ? 'injected' : 'allowed') : `denied: ${String((r.status as { message?: string } | undefined)?.message)}`}`,
          );
          if (closing) res.setHeader('connection', 'close');
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
        },
        (e: unknown) => {
          o.log(`admission error: ${e instanceof Error ? e.message : String(e)}`);
          res.writeHead(500).end();
        },
      );
    });
  });
  let watch: CertificateWatch | undefined;
  if (o.reload) {
    watch = watchCertificate({
      ...o.reload,
      current: { cert: o.cert, key: o.key },
      // New handshakes get the new pair; open connections keep theirs.
      apply: (pair) => {
        server.setSecureContext({ cert: pair.cert, key: pair.key });
      },
      log: o.log,
    });
  }
  const close = async (drainMs = (o.reviewBudgetMs ?? DEFAULT_REVIEW_BUDGET_MS) + 2000) => {
    watch?.stop();
    closing = true;
    const stopped = new Promise<void>((r) => {
      server.close(() => {
        r();
      });
    });
    server.closeIdleConnections();
    if (inFlight > 0) {
      o.log(`draining ${inFlight} admission review(s) in flight`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, drainMs);
        drained = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    server.closeAllConnections();
    await stopped;
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close,
        inFlight: () => inFlight,
      });
    });
  });
}
