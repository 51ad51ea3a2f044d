// moto's server: a real AWS Secrets Manager protocol server (SigV4-signed
// `POST /` with `X-Amz-Target: secretsmanager.<Op>`), for the import tests and
// the bench. Installed into a cached venv (testenv/moto-requirements.txt),
// started on a free loopback port, stopped by its owner; a small watchdog
// stops it too when the owner dies without doing so.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Log } from './build.js';
import { freePort } from './net.js';
import { httpCall, waitFor } from './http.js';
import { ensureVenv } from './venv.js';

export const MOTO_VENV = {
  id: 'moto',
  label: 'moto (AWS Secrets Manager server)',
  requirements: 'testenv/moto-requirements.txt',
  estimate: 'about 2–3 minutes',
} as const;

export interface Moto {
  /** `http://127.0.0.1:PORT`: the endpoint for the AWS client. */
  url: string;
  pid: number;
  /** Wipes every secret (moto's own reset API), so each test file starts empty. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export async function startMoto(log: Log = () => undefined): Promise<Moto> {
  const bin = await ensureVenv(log, MOTO_VENV);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(join(bin, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' },
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  let exited: string | undefined;
  child.on('exit', (code, sig) => {
    exited = `exit ${code ?? sig ?? '?'}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
  });
  const pid = child.pid ?? 0;
  // Stops moto when this process dies without stopping it (a killed test worker).
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill "$2" 2>/dev/null',
      'sh',
      String(process.pid),
      String(pid),
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    try {
      if (watchdog.pid) process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  try {
    await waitFor(
      'moto_server',
      async () => (await httpCall(`${url}/moto-api/`)).status === 200,
      60_000,
      () => exited,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    pid,
    reset: async () => {
      const r = await httpCall(`${url}/moto-api/reset`, { method: 'POST' });
      if (r.status !== 200) throw new Error(`moto reset answered ${r.status}`);
    },
    stop,
  };
}
