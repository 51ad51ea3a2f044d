// `source register`: configures a Kubernetes auth mount for one cluster from
// its fingerprint file alone, on the vault side, with no access to the
// cluster. read (file, sys/auth) → plan (pure) → apply.
//
// Token review: OpenBao's kubernetes auth confirms each login with a
// TokenReview at the cluster's API server. It cannot use the client's own
// token for that: cloudtaser pods log in with a token minted for the
// `cloudtaser` audience, which the API server refuses as a credential (401;
// measured against kube-apiserver 1.34 and OpenBao 2.7), and a token it would
// accept could be replayed against the cluster. So the mount reviews with a
// reviewer service account's token carried in the fingerprint file
// (`target fingerprint --reviewer-token`).
import { say, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import type { VaultClient } from '../vault/client.js';
import { certificates } from './identity.js';
import type { FingerprintFile } from './file.js';

/** The mount's description names the cluster, so a second registration can tell whose it is. */
export const describeMount = (fingerprint: string): string => `cloudtaser cluster ${fingerprint}`;
const DESCRIBED = /cloudtaser cluster (sha256:[0-9a-f]{16})/;

export interface RegisterPlan {
  authPath: string;
  enable: boolean;
  /** An existing mount that names no cluster yet gets this one's in its description. */
  describe: boolean;
  description: string;
  config: {
    kubernetes_host: string;
    kubernetes_ca_cert: string;
    token_reviewer_jwt: string;
    disable_local_ca_jwt: true;
    issuer: string;
  };
}

/** What register writes (pure). Throws a UserError for a mount it must not touch. */
export function planRegister(
  f: FingerprintFile,
  o: { authPath: string; kubernetesHost?: string | undefined; display: string },
  existing: { type: string; description?: string | undefined } | undefined,
): RegisterPlan {
  if (existing && existing.type !== 'kubernetes') {
    throw new UserError(
      `auth method at ${o.authPath}/ is of type "${existing.type}", not kubernetes`,
      'choose another --auth-path',
    );
  }
  const owner = existing?.description ? DESCRIBED.exec(existing.description)?.[1] : undefined;
  if (owner !== undefined && owner !== f.fingerprint) {
    throw new UserError(
      `auth/${o.authPath} is registered for cluster ${owner}, and ${o.display} is cluster ${f.fingerprint}`,
      'give each cluster its own mount: --auth-path kubernetes-<cluster>',
    );
  }
  if (!f.reviewer) {
    throw new UserError(
      `${o.display} carries no reviewer token: vault confirms each login with a TokenReview and needs a token of the cluster to send it with`,
      "on the cluster side: cloudtaser target fingerprint --reviewer-token -o FILE (the pods' own tokens cannot serve: their audience is cloudtaser, which the API server refuses)",
    );
  }
  return {
    authPath: o.authPath,
    enable: existing === undefined,
    describe: existing !== undefined && owner === undefined,
    description: describeMount(f.fingerprint),
    config: {
      kubernetes_host: o.kubernetesHost ?? f.apiServer,
      kubernetes_ca_cert: f.caBundle,
      token_reviewer_jwt: f.reviewer.token,
      disable_local_ca_jwt: true,
      issuer: f.issuer,
    },
  };
}

type AuthList = Record<string, { type: string; description?: string }>;

export async function runRegister(
  f: FingerprintFile,
  o: { authPath: string; kubernetesHost?: string | undefined; display: string; dryRun: boolean },
  client: VaultClient,
  ctx: Context,
): Promise<void> {
  const auths = await client.read<{ data?: AuthList } & AuthList>('sys/auth');
  const list: AuthList = auths?.data ?? auths ?? {};
  const plan = planRegister(f, o, list[`${o.authPath}/`]);
  const out = (line: string): void => {
    say(ctx.stdout, line);
  };
  const reviewer = f.reviewer?.serviceAccount ?? '';
  out(`Registering cluster ${f.fingerprint} at auth/${plan.authPath} on ${client.address}`);
  if (o.dryRun) out('(dry-run mode -- no changes will be made)');
  out(
    plan.enable
      ? `  enable auth method ${plan.authPath}/ (kubernetes), described "${plan.description}"`
      : `  auth method ${plan.authPath}/ exists (kubernetes); its configuration is rewritten`,
  );
  out(`  kubernetes_host ${plan.config.kubernetes_host}`);
  out(
    `  CA: ${certificates(plan.config.kubernetes_ca_cert).length} certificate(s) (from ${f.caSource})`,
  );
  out(`  issuer ${plan.config.issuer}`);
  out(`  token reviewer: ${reviewer} (token expires ${f.reviewer?.expiresAt ?? '?'})`);
  if (o.dryRun) return;
  if (plan.enable) {
    await client.write(`sys/auth/${plan.authPath}`, {
      type: 'kubernetes',
      description: plan.description,
    });
  }
  if (plan.describe) {
    await client.write(`sys/auth/${plan.authPath}/tune`, { description: plan.description });
  }
  await client.write(`auth/${plan.authPath}/config`, plan.config);
  out(
    `Done. Next: cloudtaser source apply-plan PLAN --auth-path ${plan.authPath}; the platform team runs protect with --auth-path ${plan.authPath}. Vault must reach ${plan.config.kubernetes_host} when pods log in.`,
  );
}
