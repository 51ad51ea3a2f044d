// A throwaway CA and a serving certificate for 127.0.0.1, for running the
// admission webhook on loopback in tests and the demo (openssl CLI).
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ServingPki {
  ca: string;
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export async function loopbackPki(dir: string): Promise<ServingPki> {
  const o = (args: string[]) => run('openssl', args, { cwd: dir });
  try {
    await o([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=cloudtaser-sandbox-ca',
    ]);
  } catch (e) {
    throw new Error(
      `testenv: openssl failed (${e instanceof Error ? e.message : String(e)}); install it: apt-get install openssl`,
    );
  }
  await o([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'tls.key',
    '-out',
    'tls.csr',
    '-subj',
    '/CN=127.0.0.1',
  ]);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  await o([
    'x509',
    '-req',
    '-in',
    'tls.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'tls.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  ]);
  const read = (f: string) => readFile(join(dir, f), 'utf8');
  return {
    ca: await read('ca.crt'),
    cert: await read('tls.crt'),
    key: await read('tls.key'),
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
  };
}
