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
//
// `--method jwt` is for a vault that can never reach the API server: a JWT
// auth mount checks tokens against the cluster's public signing keys from the
// file, with no connection at all (and so no revocation before expiry).
import { say, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import type { VaultClient } from '../vault/client.js';
import { certificates } from './identity.js';
import type { FingerprintFile } from './file.js';

/** The mount's description names the cluster, so a second registration can tell whose it is. */
export const describeMount = (fingerprint: string): string => `cloudtaser cluster ${fingerprint}`;
const DESCRIBED = /cloudtaser cluster (sha256:[0-9a-f]{16})/;

export type RegisterMethod = 'kubernetes' | 'jwt';

interface MountPlan {
  authPath: string;
  enable: boolean;
  /** An existing mount that names no cluster yet gets this one's in its description. */
  describe: boolean;
  description: string;
}

export type RegisterPlan =
  | (MountPlan & {
      method: 'kubernetes';
      config: {
        kubernetes_host: string;
        kubernetes_ca_cert: string;
        token_reviewer_jwt: string;
        disable_local_ca_jwt: true;
        issuer: string;
      };
    })
  | (MountPlan & {
      method: 'jwt';
      config: { jwt_validation_pubkeys: string[]; bound_issuer: string };
    });

/** What register writes (pure). Throws a UserError for a mount it must not touch. */
export function planRegister(
  f: FingerprintFile,
  o: {
    authPath: string;
    method?: RegisterMethod | undefined;
    kubernetesHost?: string | undefined;
    display: string;
  },
  existing: { type: string; description?: string | undefined } | undefined,
): RegisterPlan {
  const method = o.method ?? 'kubernetes';
  if (existing && existing.type !== method) {
    throw new UserError(
      `auth method at ${o.authPath}/ is of type "${existing.type}", not ${method}`,
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
  const mount: MountPlan = {
    authPath: o.authPath,
    enable: existing === undefined,
    describe: existing !== undefined && owner === undefined,
    description: describeMount(f.fingerprint),
  };
  if (method === 'jwt') {
    if (f.serviceAccountKeys.length === 0) {
      throw new UserError(
        `${o.display} carries no service-account signing keys: the cluster did not serve /openid/v1/jwks`,
        'use --method kubernetes, or write the file again from a cluster that serves its keys',
      );
    }
    return {
      ...mount,
      method,
      config: { jwt_validation_pubkeys: f.serviceAccountKeys, bound_issuer: f.issuer },
    };
  }
  if (!f.reviewer) {
    throw new UserError(
      `${o.display} carries no reviewer token: vault confirms each login with a TokenReview and needs a token of the cluster to send it with`,
      "on the cluster side: cloudtaser target fingerprint --reviewer-token -o FILE (the pods' own tokens cannot serve: their audience is cloudtaser, which the API server refuses); or --method jwt where vault cannot reach the cluster",
    );
  }
  return {
    ...mount,
    method,
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
  o: {
    authPath: string;
    method: RegisterMethod;
    kubernetesHost?: string | undefined;
    display: string;
    dryRun: boolean;
  },
  client: VaultClient,
  ctx: Context,
): Promise<void> {
  const auths = await client.read<{ data?: AuthList } & AuthList>('sys/auth');
  const list: AuthList = auths?.data ?? auths ?? {};
  const plan = planRegister(f, o, list[`${o.authPath}/`]);
  const out = (line: string): void => {
    say(ctx.stdout, line);
  };
  out(`Registering cluster ${f.fingerprint} at auth/${plan.authPath} on ${client.address}`);
  if (o.dryRun) out('(dry-run mode -- no changes will be made)');
  out(
    plan.enable
      ? `  enable auth method ${plan.authPath}/ (${plan.method}), described "${plan.description}"`
      : `  auth method ${plan.authPath}/ exists (${plan.method}); its configuration is rewritten`,
  );
  if (plan.method === 'kubernetes') {
    out(`  kubernetes_host ${plan.config.kubernetes_host}`);
    out(
      `  CA: ${certificates(plan.config.kubernetes_ca_cert).length} certificate(s) (from ${f.caSource})`,
    );
    out(`  issuer ${plan.config.issuer}`);
    out(
      `  token reviewer: ${f.reviewer?.serviceAccount ?? ''} (token expires ${f.reviewer?.expiresAt ?? '?'})`,
    );
  } else {
    out(`  bound_issuer ${plan.config.bound_issuer}`);
    out(
      `  ${plan.config.jwt_validation_pubkeys.length} service-account signing key(s); no connection to the cluster, ever`,
    );
    if (f.reviewer) out('  (the reviewer token in the file is not used by a JWT mount)');
  }
  if (o.dryRun) return;
  if (plan.enable) {
    await client.write(`sys/auth/${plan.authPath}`, {
      type: plan.method,
      description: plan.description,
    });
  }
  if (plan.describe) {
    await client.write(`sys/auth/${plan.authPath}/tune`, { description: plan.description });
  }
  await client.write(`auth/${plan.authPath}/config`, plan.config);
  out(
    `Done. Next: cloudtaser source apply-plan PLAN --auth-path ${plan.authPath}; the platform team runs protect with --auth-path ${plan.authPath}.`,
  );
  out(
    plan.method === 'kubernetes'
      ? `Vault must reach ${plan.config.kubernetes_host} when pods log in.`
      : 'When the cluster rotates its service-account signing keys, write the file again and register again.',
  );
}
