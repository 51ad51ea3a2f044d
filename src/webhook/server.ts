// AdmissionReview v1 in, AdmissionReview v1 out, over HTTPS.
import type { V1Pod } from '@kubernetes/client-node';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
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

/** Looks up an image's ENTRYPOINT/CMD; throws with a reason when it cannot. */
export type ImageResolver = (
  image: string,
  namespace: string,
  pullSecrets: readonly string[],
) => Promise<ImageCommand>;

export async function review(
  body: AdmissionReview,
  cfg: MutateConfig,
  resolve?: ImageResolver,
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
  for (const c of containersNeedingImageConfig(pod)) {
    const image = c.image ?? '';
    if (images.has(image)) continue;
    if (!resolve) {
      images.set(image, 'no image registry lookup is configured');
      continue;
    }
    try {
      images.set(image, await resolve(image, namespace, pullSecrets));
    } catch (e) {
      images.set(image, e instanceof Error ? e.message : String(e));
    }
  }
  const d = decide(pod, cfg, images);
  if (!d.allowed) return respond({ allowed: false, status: { code: 400, message: d.message } });
  if (d.patch.length === 0) return respond({ allowed: true });
  return respond({
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(d.patch)).toString('base64'),
  });
}

export interface WebhookServer {
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;

export function startWebhookServer(o: {
  cert: string;
  key: string;
  port: number;
  host: string;
  config: MutateConfig;
  resolve?: ImageResolver;
  log: (line: string) => void;
}): Promise<WebhookServer> {
  const server: Server = createServer({ cert: o.cert, key: o.key }, (req, res) => {
    if (req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (req.method !== 'POST' || !req.url?.startsWith('/mutate')) {
      res.writeHead(404).end();
      return;
    }
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
      review(body, o.config, o.resolve).then(
        (out) => {
          const pod = body.request?.object;
          const name = `${body.request?.namespace ?? ''}/${pod?.metadata?.name ?? pod?.metadata?.generateName ?? '?'}`;
          const r = out.response;
          o.log(
            `admission ${name}: ${r.allowed === true ? (r.patch ? 'injected' : 'allowed') : `denied: ${String((r.status as { message?: string } | undefined)?.message)}`}`,
          );
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
        },
        (e: unknown) => {
          o.log(`admission error: ${e instanceof Error ? e.message : String(e)}`);
          res.writeHead(500).end();
        },
      );
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => {
              r();
            });
          }),
      });
    });
  });
}
