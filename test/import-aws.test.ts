// `target import --from aws` against moto's server, a real AWS Secrets
// Manager protocol server (SigV4, `X-Amz-Target` JSON), installed and started
// by the test environment (testenv/moto.ts). The secrets are created through
// the official AWS client. Between the CLI and moto sits a loopback proxy
// that answers chosen GetSecretValue calls with the service's throttling
// reply (HTTP 400, `__type: ThrottlingException`), which moto never sends.
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startMoto } from '../testenv/moto.js';
import { cloudImportSuite } from './helpers/import-cloud.js';

const REGION = 'eu-west-1';
const credentials = { accessKeyId: 'AKIDTESTONLY', secretAccessKey: 'test-only-secret' };

cloudImportSuite(
  'target import --from aws (moto server)',
  async () => {
    const moto = await startMoto((l) => process.stderr.write(`${l}\n`));
    const upstream = new URL(moto.url);
    let throttle = 0;
    let throttled = 0;
    let reads = 0;
    const proxy = createServer((req, res) => {
      const op = String(req.headers['x-amz-target'] ?? '');
      if (op === 'secretsmanager.GetSecretValue') {
        reads++;
        if (throttle > 0) {
          throttle--;
          throttled++;
          req.resume();
          res.writeHead(400, {
            'content-type': 'application/x-amz-json-1.1',
            'x-amzn-errortype': 'ThrottlingException',
          });
          res.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
          return;
        }
      }
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const client = new SecretsManagerClient({ region: REGION, endpoint: moto.url, credentials });
    return {
      from: 'aws',
      label: 'AWS secret',
      defaultName: (ns, secret) => `${ns}/${secret}`,
      put: async (name, text) => {
        await client.send(new CreateSecretCommand({ Name: name, SecretString: text }));
      },
      env: {
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_REGION: REGION,
        AWS_EC2_METADATA_DISABLED: 'true',
      },
      args: ['--endpoint', endpoint],
      throttleNext: (n) => {
        throttle = n;
      },
      throttled: () => throttled,
      reads: () => reads,
      close: async () => {
        client.destroy();
        proxy.closeAllConnections();
        await new Promise((r) => proxy.close(r));
        await moto.stop();
      },
    };
  },
  // A fresh machine installs moto into its cached venv first (2–4 minutes).
  900_000,
);
