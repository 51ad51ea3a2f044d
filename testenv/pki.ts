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

/**
 * A throwaway CA (2 days) in `dir` and one certificate it signs: `subject`,
 * with `extension` (an openssl extfile line), written as <name>.crt/.key.
 */
export async function issueFromNewCa(
  dir: string,
  o: { caSubject: string; name: string; subject: string; extension: string },
): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const ssl = (args: string[]) => run('openssl', args, { cwd: dir });
  const days = ['-days', '2'];
  try {
    await ssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      ...days,
      '-subj',
      o.caSubject,
    ]);
  } catch (e) {
    throw new Error(
      `testenv: openssl failed (${e instanceof Error ? e.message : String(e)}); install it: apt-get install openssl`,
    );
  }
  const { name } = o;
  await ssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    o.subject,
  ]);
  await writeFile(join(dir, `${name}.ext`), `${o.extension}\n`);
  await ssl([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    ...days,
    '-extfile',
    `${name}.ext`,
  ]);
  return {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  };
}

export async function loopbackPki(dir: string): Promise<ServingPki> {
  const files = await issueFromNewCa(dir, {
    caSubject: '/CN=cloudtaser-sandbox-ca',
    name: 'tls',
    subject: '/CN=127.0.0.1',
    extension: 'subjectAltName=IP:127.0.0.1',
  });
  const read = (f: string) => readFile(f, 'utf8');
  return {
    ca: await read(files.caFile),
    cert: await read(files.certFile),
    key: await read(files.keyFile),
    certFile: files.certFile,
    keyFile: files.keyFile,
  };
}
