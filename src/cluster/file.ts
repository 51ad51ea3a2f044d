// The fingerprint file: what `target fingerprint` writes on the cluster side
// and `source register` reads on the vault side. It is the only thing that
// crosses between the two, so it carries everything vault needs.
import { readFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { UserError } from '../core/errors.js';
import { readFailureReason } from '../core/read-failure.js';
import { certificates, fingerprintOf, FINGERPRINT_FORMAT } from './identity.js';

export const FINGERPRINT_KIND = 'ClusterFingerprint';

const FingerprintFileSchema = z.strictObject({
  apiVersion: z.literal('cloudtaser.io/v1'),
  kind: z.literal(FINGERPRINT_KIND),
  fingerprint: z.string().regex(FINGERPRINT_FORMAT),
  createdAt: z.string().optional(),
  apiServer: z.url({ protocol: /^https?$/ }),
  issuer: z.string().min(1),
  kubeSystemUid: z.string().min(1),
  caSource: z.enum(['kube-root-ca.crt', 'kubeconfig']),
  caBundle: z.string().refine((s) => certificates(s).length > 0, {
    error: 'must hold at least one PEM certificate',
  }),
  /** Public keys the cluster signs service-account tokens with (PEM). */
  serviceAccountKeys: z.array(z.string()).default([]),
  /** Only with `fingerprint --reviewer-token`: a secret. */
  reviewer: z
    .strictObject({
      serviceAccount: z.string().min(1),
      expiresAt: z.string(),
      token: z.string().min(1),
    })
    .optional(),
});

export type FingerprintFile = z.output<typeof FingerprintFileSchema>;

/** YAML with the PEM blocks as literal blocks, a comment on top, and a warning when it holds a token. */
export function renderFingerprintFile(f: FingerprintFile): string {
  const header = [
    `# Identity of the Kubernetes cluster ${f.fingerprint}, written by \`cloudtaser target fingerprint\`.`,
    '# Hand it to the vault team: cloudtaser source register --fingerprint FILE --auth-path kubernetes-<cluster>',
    ...(f.reviewer
      ? [
          '# SECRET: reviewer.token lets its holder create TokenReviews in this cluster. Keep this file',
          '# private (mode 0600), move it like a credential, and delete it once registered.',
        ]
      : []),
  ];
  return `${header.join('\n')}\n${stringify(f, { lineWidth: 0, blockQuote: 'literal' })}`;
}

/**
 * Reads and checks a fingerprint file. The hash is recomputed from the facts:
 * a file whose facts were edited after it was written is refused, so the
 * fingerprint a plan records and the mount vault configures name the same
 * cluster. Errors never quote the file's values (it may hold a token).
 */
export async function readFingerprintFile(path: string, display: string): Promise<FingerprintFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${display}: ${readFailureReason(e)}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    throw new UserError(
      `${display} is not valid YAML`,
      'write it with: cloudtaser target fingerprint -o FILE',
    );
  }
  const parsed = FingerprintFileSchema.safeParse(doc);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
      .join('; ');
    throw new UserError(`${display} is not a cluster fingerprint file: ${problems}`);
  }
  const f = parsed.data;
  const computed = fingerprintOf(f);
  if (computed !== f.fingerprint) {
    throw new UserError(
      `${display} says cluster ${f.fingerprint}, but its issuer, kube-system UID and CA hash to ${computed}: it was edited after it was written`,
      'write it again on the cluster side: cloudtaser target fingerprint -o FILE',
    );
  }
  return f;
}
