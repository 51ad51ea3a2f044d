// Flags shared by the commands that talk to vault.
import type { Command, OptionValues } from '@commander-js/extra-typings';
import { UserError } from '../core/errors.js';
import type { VaultFlags } from '../vault/client.js';

export function concurrency(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new UserError(`--concurrency must be a whole number from 1 to 256, not "${value}"`);
  }
  return n;
}

/** The --openbao-addr family of flags, as the vault client takes them. */
export function vaultFlags(o: {
  openbaoAddr?: string | undefined;
  token?: string | undefined;
  caCert?: string | undefined;
  tlsSkipVerify?: true | undefined;
  vaultNamespace?: string | undefined;
  allowInsecureVault?: true | undefined;
}): VaultFlags {
  return {
    address: o.openbaoAddr,
    token: o.token,
    caCert: o.caCert,
    skipVerify: o.tlsSkipVerify,
    namespace: o.vaultNamespace,
    allowInsecure: o.allowInsecureVault,
  };
}

/**
 * Adds the --openbao-addr family (address, token, TLS, namespace, plain
 * http) to a command, worded the same everywhere; read them back with
 * vaultFlags().
 */
export function withVaultOptions<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(c: Command<Args, Opts, GlobalOpts>) {
  return c
    .option('--openbao-addr <url>', 'OpenBao/Vault address (default: $BAO_ADDR, $VAULT_ADDR)')
    .option(
      '--token <token>',
      'vault token (default: $BAO_TOKEN, $VAULT_TOKEN; prefer the environment)',
    )
    .option('--ca-cert <file>', 'CA certificate for TLS (default: $BAO_CACERT, $VAULT_CACERT)')
    .option('--tls-skip-verify', 'do not verify the server certificate (insecure)')
    .option('--vault-namespace <ns>', 'OpenBao/Vault namespace (default: $BAO_NAMESPACE)')
    .option(
      '--allow-insecure-vault',
      'allow a plain-http address that is not loopback (the token and values travel in clear)',
    );
}
