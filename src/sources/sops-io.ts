// The I/O half of the SOPS source: walking the directory, and running the
// user's `sops` binary to decrypt a file into memory.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requestSignal, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { safeLine } from '../plan/display.js';
import { manifestFiles } from './manifest-files.js';
import { classifyDocument, parseManifests, type SopsDoc } from './sops.js';

export interface SopsScan {
  docs: SopsDoc[];
  /** Files that could not be read or parsed, by relative name: never a value. */
  problems: string[];
  files: number;
}

/** Every Secret document (encrypted or not) under a directory, read without keys. */
export async function scanSopsDir(root: string, display: string): Promise<SopsScan> {
  const { files, unreadable } = await manifestFiles(root, '--path', display);
  const docs: SopsDoc[] = [];
  const problems: string[] = unreadable.map((d) => `${d}: cannot be read; skipped`);
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(join(root, file), 'utf8');
    } catch {
      problems.push(`${file}: cannot be read`);
      continue;
    }
    const parsed = parseManifests(text, file);
    if ('error' in parsed) {
      problems.push(`${file}: ${parsed.error}; skipped`);
      continue;
    }
    parsed.docs.forEach((d, i) => {
      const doc = classifyDocument(d, file, i);
      if (doc) docs.push(doc);
    });
  }
  return { docs, problems, files: files.length };
}

export interface SopsRunner {
  /** The `sops` binary: a path, or a name looked up on the environment's PATH. */
  binary: string;
  ctx: Pick<Context, 'env' | 'signal' | 'requestTimeoutMs'>;
}

/** sops's reason for a failure, without anything that could be a value. */
export function sopsReason(stderr: string): string {
  // sops's errors are about keys, groups and MACs; only its own message
  // lines are kept, clipped, and nothing that looks like file content.
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^(apiVersion|kind|metadata|data|stringData|sops):/.test(l));
  const head = lines.find((l) => /error|fail|could not|not found|no (identity|key)/i.test(l));
  if (!head) return lines[0] ? safeLine(lines[0], 300) : 'no reason given';
  // A failed key prints its cause as "- | …" / "| …" lines (which key, why).
  const detail = lines
    .filter((l) => /^(- )?\|/.test(l))
    .map((l) => l.replace(/^(- )?\|\s?/, ''))
    .join(' ');
  return safeLine(detail ? `${head} (${detail})` : head, 300);
}

export class SopsFailed extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SopsFailed';
  }
}

/**
 * Decrypts one file with the user's keys (whatever `sops` finds in the
 * environment: SOPS_AGE_KEY_FILE, cloud KMS credentials, PGP agents) and
 * returns the plaintext read from its stdout pipe. Nothing is written to
 * disk: sops gets the file name and prints to the pipe. The caller parses
 * the buffer and zeroes it.
 */
export function sopsDecrypt(
  runner: SopsRunner,
  absFile: string,
  format: 'yaml' | 'json',
): Promise<Buffer> {
  const { signal, dispose } = requestSignal(runner.ctx);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let err = '';
    const child = spawn(
      runner.binary,
      // A global flag, before the command. The same type in and out: sops's
      // JSON output of a multi-document YAML file holds the first document only.
      [
        '--disable-version-check',
        'decrypt',
        '--input-type',
        format,
        '--output-type',
        format,
        absFile,
      ],
      {
        env: runner.ctx.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(signal ? { signal } : {}),
      },
    );
    child.stdout.on('data', (b: Buffer) => chunks.push(b));
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 64 * 1024) err += b.toString('utf8');
    });
    const wipe = (): void => {
      for (const c of chunks) c.fill(0);
      chunks.length = 0;
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      dispose();
      wipe();
      if (e.code === 'ENOENT') {
        reject(
          new UserError(
            `sops not found (${runner.binary}): import --from sops decrypts by running it`,
            'install sops (https://github.com/getsops/sops) or pass --sops-binary PATH',
          ),
        );
      } else if (e.name === 'AbortError') {
        reject(
          new SopsFailed(
            signal?.aborted && runner.ctx.signal?.aborted
              ? 'interrupted'
              : 'sops did not finish in time (see --request-timeout)',
          ),
        );
      } else {
        reject(new UserError(`cannot run sops (${runner.binary}): ${e.code ?? e.message}`));
      }
    });
    child.on('close', (code, killedBy) => {
      dispose();
      if (code === 0) {
        const out = Buffer.concat(chunks);
        wipe();
        resolve(out);
        return;
      }
      wipe();
      // After an 'error' (abort, timeout) this second settle is a no-op.
      reject(
        new SopsFailed(
          code !== null
            ? `sops exited ${code}: ${sopsReason(err)}`
            : `sops was stopped by ${killedBy ?? 'a signal'}`,
        ),
      );
    });
  });
}
