// `target fingerprint`: read the cluster's identity → write the file the
// vault team registers the cluster from.
import { basename, isAbsolute, resolve } from 'node:path';
import { rfc3339, say, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { loadKubeFor, type KubeOptions } from '../kube/config.js';
import { renderFingerprintFile, FINGERPRINT_KIND, type FingerprintFile } from './file.js';
import { createReviewerToken, readClusterFacts, readSigningKeys, REVIEWER } from './read.js';

export interface FingerprintOptions {
  output?: string | undefined;
  reviewerToken: boolean;
  reviewerTtlSeconds: number;
  kube: KubeOptions;
}

export async function runFingerprint(o: FingerprintOptions, ctx: Context): Promise<void> {
  const toStdout = o.output === undefined || o.output === '-';
  if (o.reviewerToken && toStdout) {
    throw new UserError(
      '--reviewer-token needs -o FILE: the file then holds a token, which is never printed',
    );
  }
  const target = loadKubeFor(o.kube, ctx);
  const facts = await readClusterFacts(target);
  const serviceAccountKeys = await readSigningKeys(target);
  const reviewer = o.reviewerToken
    ? await createReviewerToken(target, o.reviewerTtlSeconds)
    : undefined;
  const file: FingerprintFile = {
    apiVersion: 'cloudtaser.io/v1',
    kind: FINGERPRINT_KIND,
    fingerprint: facts.fingerprint,
    createdAt: rfc3339(ctx.now()),
    apiServer: facts.apiServer,
    issuer: facts.issuer,
    kubeSystemUid: facts.kubeSystemUid,
    caSource: facts.caSource,
    caBundle: facts.caBundle,
    serviceAccountKeys,
    ...(reviewer
      ? {
          reviewer: {
            serviceAccount: `${REVIEWER.namespace}/${REVIEWER.name}`,
            expiresAt: reviewer.expiresAt,
            token: reviewer.token,
          },
        }
      : {}),
  };
  const text = renderFingerprintFile(file);
  if (toStdout) {
    ctx.stdout.write(text);
    return;
  }
  const output = o.output ?? '';
  const path = isAbsolute(output) ? output : resolve(ctx.cwd, output);
  await writeFileAtomic(path, text, { mode: reviewer ? 0o600 : 0o644 });
  say(ctx.stdout, `cluster ${facts.fingerprint}`);
  say(ctx.stdout, `  API server      ${facts.apiServer}`);
  say(ctx.stdout, `  issuer          ${facts.issuer}`);
  say(ctx.stdout, `  kube-system UID ${facts.kubeSystemUid}`);
  say(ctx.stdout, `  CA              from ${facts.caSource}`);
  if (reviewer) {
    say(
      ctx.stdout,
      `  token reviewer  ${REVIEWER.namespace}/${REVIEWER.name} (system:auth-delegator), token valid until ${reviewer.expiresAt}`,
    );
  }
  say(
    ctx.stderr,
    `Wrote ${output}${reviewer ? ' (mode 0600: it holds the reviewer token)' : ''}. The vault team runs: cloudtaser source register --fingerprint ${basename(output)} --auth-path kubernetes-<cluster>`,
  );
}
