// `--from azure`: Azure Key Vault through the official client. Credentials
// the way Azure users set them, through DefaultAzureCredential: a service
// principal or workload identity in the environment (AZURE_CLIENT_ID,
// AZURE_TENANT_ID, AZURE_CLIENT_SECRET / AZURE_FEDERATED_TOKEN_FILE), a
// managed identity, or `az login`; AZURE_TOKEN_CREDENTIALS picks one.
// --endpoint is the vault's URL (https://NAME.vault.azure.net, or a private
// endpoint's name).
import { DefaultAzureCredential } from '@azure/identity';
import { SecretClient } from '@azure/keyvault-secrets';
import { DEFAULT_REQUEST_TIMEOUT_MS, type Context } from '../../core/context.js';
import { ServerError, UserError } from '../../core/errors.js';
import type { SourceSecret } from '../plan.js';
import {
  cloudNaming,
  describeError,
  fieldsOf,
  httpStatus,
  isNetworkError,
  type CloudOptions,
} from './cloud.js';
import { withRetry } from './retry.js';
import type { DebugLine, ImportSource } from './source.js';

/** Key Vault secret names: letters, digits and dashes, at most 127 (the service's rule). */
const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;

/** Hosts of Azure's own vaults; the client checks that a token's audience belongs to them. */
const AZURE_VAULT_HOST =
  /\.(vault\.azure\.net|vault\.azure\.cn|vault\.usgovcloudapi\.net|vault\.microsoftazure\.de|managedhsm\.azure\.net)$/i;

export function azureSource(
  o: CloudOptions,
  names: ReadonlyMap<string, string>,
  ctx: Context,
  debug: DebugLine,
): ImportSource {
  const vaultUrl = o.endpoint ?? ctx.env.AZURE_KEYVAULT_URL;
  if (!vaultUrl) {
    throw new UserError(
      '--from azure needs the vault: --endpoint https://NAME.vault.azure.net (or $AZURE_KEYVAULT_URL)',
    );
  }
  let host: string;
  try {
    const u = new URL(vaultUrl);
    if (u.protocol !== 'https:') throw new Error('not https');
    host = u.hostname;
  } catch {
    throw new UserError(`--endpoint must be the vault's https:// URL, not "${vaultUrl}"`);
  }
  const timeout = ctx.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const client = new SecretClient(vaultUrl, new DefaultAzureCredential(), {
    // A private endpoint's own host name is not one of Azure's vault domains,
    // so the client's check of the challenge's resource against the host
    // would refuse it; the vault URL is the user's own choice here.
    disableChallengeResourceVerification: !AZURE_VAULT_HOST.test(host),
    // Retries are ours (retry.ts), the same bounded rule for every source.
    retryOptions: { maxRetries: 0 },
  });
  const label = (name: string): string => `Azure secret ${name}`;

  async function read(name: string): Promise<SourceSecret> {
    if (!SECRET_NAME.test(name)) {
      return {
        kind: 'missing',
        reason: `${label(name)}: not a valid Key Vault secret name (letters, digits and - only); pick names with --name-template or --name-map`,
      };
    }
    const started = Date.now();
    try {
      const s = await withRetry(
        () =>
          client.getSecret(name, {
            abortSignal: ctx.signal,
            ...(timeout > 0 ? { requestOptions: { timeout } } : {}),
          }),
        (e) => {
          const status = httpStatus(e);
          const again = status === 429 || (status !== undefined && status >= 500);
          if (again) debug?.(`azure GET secrets/${name} -> ${String(status)}, retrying`);
          return again;
        },
        ctx.signal,
      );
      debug?.(`azure GET secrets/${name} -> ok (${Date.now() - started} ms)`);
      return fieldsOf(Buffer.from(s.value ?? '', 'utf8'), label(name), o.stringField);
    } catch (e) {
      const status = httpStatus(e);
      debug?.(
        `azure GET secrets/${name} -> ${status ?? (e instanceof Error ? e.name : 'error')} (${Date.now() - started} ms)`,
      );
      if (status === 404)
        return { kind: 'missing', reason: `${label(name)} not found (or disabled)` };
      const kind = e instanceof Error ? e.name : '';
      if (
        kind === 'CredentialUnavailableError' ||
        kind === 'AuthenticationError' ||
        kind === 'AggregateAuthenticationError' ||
        status === 401
      ) {
        throw new ServerError(
          `no Azure credential the vault accepts: ${describeError(e)}`,
          'run az login, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or use a managed identity)',
        );
      }
      if (isNetworkError(e) || status === undefined) {
        throw new ServerError(`Azure Key Vault ${vaultUrl}: ${describeError(e)}`);
      }
      if (status === 403)
        return {
          kind: 'missing',
          reason: `${label(name)}: forbidden (needs the secrets get permission)`,
        };
      return { kind: 'missing', reason: `${label(name)}: ${describeError(e)}` };
    }
  }

  return {
    description: `Azure Key Vault (${vaultUrl})`,
    nameOf: cloudNaming(o.nameTemplate ?? '{namespace}-{secret}', names),
    read,
    close: () => undefined,
  };
}
