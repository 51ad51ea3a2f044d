// The serving certificate, kept current while the webhook runs.
//
// cert-manager renews the certificate into the Secret and the kubelet
// publishes it in the pod by swapping the volume's `..data` symlink. A watch
// on the file itself misses that (the watched inode never changes), and the
// two files may be seen at different moments; so the files are re-read on an
// interval and a new pair is taken only when both parse and belong together.
// Until then the current certificate keeps being served.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface TlsPair {
  cert: string;
  key: string;
}

/** Why `pair` cannot be served, or undefined when it can. */
export function pairProblem(pair: TlsPair): string | undefined {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pair.cert);
  } catch {
    return 'the certificate is not a PEM certificate';
  }
  let key;
  try {
    key = createPrivateKey(pair.key);
  } catch {
    return 'the key is not a PEM private key';
  }
  if (!x509.checkPrivateKey(key)) return 'the certificate does not match the key';
  return undefined;
}

/** Subject, expiry and fingerprint: enough to tell certificates apart in a log. */
export function describeCertificate(pem: string): string {
  const x509 = new X509Certificate(pem);
  return `${x509.subject.replace(/\n/g, ', ')}, valid until ${new Date(x509.validTo).toISOString()}, sha256 ${x509.fingerprint256}`;
}

export interface CertificateWatch {
  /** Reads the files now (the interval does this too); resolves when done. */
  check(): Promise<void>;
  stop(): void;
}

export function watchCertificate(o: {
  certFile: string;
  keyFile: string;
  intervalMs: number;
  current: TlsPair;
  /** Installs a pair that passed pairProblem. */
  apply: (pair: TlsPair) => void;
  log: (line: string) => void;
}): CertificateWatch {
  let current = o.current;
  let lastProblem = '';
  let running: Promise<void> | undefined;

  const once = async (): Promise<void> => {
    let pair: TlsPair;
    try {
      pair = {
        cert: await readFile(o.certFile, 'utf8'),
        key: await readFile(o.keyFile, 'utf8'),
      };
    } catch (e) {
      const code = (e as { code?: string }).code ?? String(e);
      report(`cannot read ${o.certFile} or ${o.keyFile} (${code})`);
      return;
    }
    if (pair.cert === current.cert && pair.key === current.key) {
      lastProblem = '';
      return;
    }
    const problem = pairProblem(pair);
    if (problem) {
      report(problem);
      return;
    }
    try {
      o.apply(pair);
    } catch (e) {
      report(e instanceof Error ? e.message : String(e));
      return;
    }
    current = pair;
    lastProblem = '';
    o.log(`serving certificate reloaded: ${describeCertificate(pair.cert)}`);
  };

  // Once per distinct problem: a renewal half written is reported, not repeated every interval.
  function report(problem: string): void {
    if (problem === lastProblem) return;
    lastProblem = problem;
    o.log(`keeping the current serving certificate: ${problem}`);
  }

  const check = (): Promise<void> => {
    running ??= once().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void check(), o.intervalMs);
  // The interval alone must not keep the process alive after the server closes.
  timer.unref();
  return {
    check,
    stop: () => {
      clearInterval(timer);
    },
  };
}
