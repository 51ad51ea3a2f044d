// Multi-cluster commands: `target fingerprint` (cluster side) and
// `source register` (vault side). The fingerprint file is all that passes
// between the two.
import { Option, type Command } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { normalizeMount } from '../../contract/annotations.js';
import { vaultClient } from '../../vault/apply.js';
import { vaultFlags, withVaultOptions } from '../options.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `8760h`, `30d`, `3600s`: at least 10 minutes (the API server's minimum), at most 10 years. */
export function ttlSeconds(value: string): number {
  const m = /^(\d+)([smhd])$/.exec(value.trim());
  const n = m ? Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1) : NaN;
  if (!Number.isSafeInteger(n) || n < 600 || n > 10 * 365 * 86_400) {
    throw new UserError(
      `--reviewer-ttl must be a duration like 8760h or 30d, from 10m to 10 years, not "${value}"`,
    );
  }
  return n;
}

export function registerTargetFingerprint(target: Command, ctx: Context): void {
  target
    .command('fingerprint')
    .description(
      'what vault needs to trust this cluster, read from the cluster: API server, CA, service-account issuer and signing keys, kube-system UID, and a short fingerprint of them',
    )
    .option('-o, --output <file>', 'write the fingerprint file here (default: print it)')
    .option(
      '--reviewer-token',
      'also create kube-system/cloudtaser-token-reviewer (system:auth-delegator) and put a token for it in the file, for vault to review logins with; needs -o (the token is never printed)',
      false,
    )
    .addOption(
      new Option('--reviewer-ttl <duration>', 'lifetime of the reviewer token')
        .default(ttlSeconds('8760h'), '8760h')
        .argParser(ttlSeconds),
    )
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .action(async (o) => {
      const { runFingerprint } = await import('../../cluster/run.js');
      await runFingerprint(
        {
          output: o.output,
          reviewerToken: o.reviewerToken,
          reviewerTtlSeconds: o.reviewerTtl,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
        },
        ctx,
      );
    });
}

export function registerSourceRegister(source: Command, ctx: Context): void {
  withVaultOptions(
    source
      .command('register')
      .description(
        'enable and configure a Kubernetes auth mount for one cluster from its fingerprint file alone (no access to the cluster needed)',
      )
      .requiredOption('--fingerprint <file>', 'the file `cloudtaser target fingerprint` wrote')
      .requiredOption('--auth-path <path>', 'the mount for this cluster, e.g. kubernetes-prod'),
  )
    .addOption(
      new Option(
        '--method <method>',
        "kubernetes: vault confirms each login with the cluster (TokenReview; needs the reviewer token and a connection at login time); jwt: vault checks tokens against the cluster's public signing keys, with no connection at all",
      )
        .choices(['kubernetes', 'jwt'] as const)
        .default('kubernetes' as const),
    )
    .option(
      '--kubernetes-host <url>',
      "the API server address vault uses at login (default: the fingerprint file's)",
    )
    .option('--dry-run', 'print what would be written without writing', false)
    .action(async (o) => {
      const authPath = normalizeMount(o.authPath, '--auth-path');
      if (o.kubernetesHost !== undefined && !/^https:\/\/\S+$/.test(o.kubernetesHost)) {
        throw new UserError(`--kubernetes-host "${o.kubernetesHost}" must be an https URL`);
      }
      const { readFingerprintFile } = await import('../../cluster/file.js');
      const { runRegister } = await import('../../cluster/register.js');
      const file = await readFingerprintFile(resolve(ctx.cwd, o.fingerprint), o.fingerprint);
      const client = vaultClient(vaultFlags(o), ctx, '--openbao-addr');
      try {
        await runRegister(
          file,
          {
            authPath,
            method: o.method,
            kubernetesHost: o.kubernetesHost,
            display: o.fingerprint,
            dryRun: o.dryRun,
          },
          client,
          ctx,
        );
      } finally {
        client.close();
      }
    });
}
