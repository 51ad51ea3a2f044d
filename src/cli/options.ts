// Flag parsing shared by the commands that talk to vault.
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
