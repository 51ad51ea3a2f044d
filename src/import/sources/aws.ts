// `--from aws`: AWS Secrets Manager through the official client. Credentials
// and region come the way AWS users set them (AWS_PROFILE and the shared
// config files, AWS_ACCESS_KEY_ID…, web identity, instance roles: the SDK's
// default chain); --region and --endpoint override (a VPC endpoint, or a
// test server).
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { state as sdkWarnings } from '@aws-sdk/core/client';
import { DEFAULT_REQUEST_TIMEOUT_MS, type Context } from '../../core/context.js';
import { ServerError } from '../../core/errors.js';
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

const THROTTLED = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
]);

function retryable(e: unknown): boolean {
  const status = httpStatus(e);
  return (
    (e instanceof Error && THROTTLED.has(e.name)) ||
    status === 429 ||
    (status !== undefined && status >= 500)
  );
}

export function awsSource(
  o: CloudOptions,
  names: ReadonlyMap<string, string>,
  ctx: Context,
  debug: DebugLine,
): ImportSource {
  // The SDK warns on Node 20 that its releases from 2027 on need Node 22: a
  // notice about the SDK's future, not about this run, and the version
  // installed here supports Node 20. Marked as shown, so it does not land in
  // the command's output.
  sdkWarnings.warningEmitted = true;
  const region = o.region ?? ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION;
  const timeout = ctx.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const client = new SecretsManagerClient({
    ...(region ? { region } : {}),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    // Retries are ours (retry.ts), the same bounded rule for every source.
    maxAttempts: 1,
    requestHandler: {
      requestTimeout: timeout > 0 ? timeout : undefined,
      connectionTimeout: 10_000,
    },
  });
  const label = (name: string): string => `AWS secret ${name}`;

  async function read(name: string): Promise<SourceSecret> {
    const started = Date.now();
    try {
      const out = await withRetry(
        () =>
          client.send(new GetSecretValueCommand({ SecretId: name }), { abortSignal: ctx.signal }),
        (e) => {
          const again = retryable(e);
          if (again) debug?.(`aws GetSecretValue ${name} -> ${describeName(e)}, retrying`);
          return again;
        },
        ctx.signal,
      );
      debug?.(`aws GetSecretValue ${name} -> ok (${Date.now() - started} ms)`);
      const payload =
        out.SecretString !== undefined
          ? Buffer.from(out.SecretString, 'utf8')
          : (out.SecretBinary ?? new Uint8Array());
      return fieldsOf(payload, label(name), o.stringField);
    } catch (e) {
      debug?.(`aws GetSecretValue ${name} -> ${describeName(e)} (${Date.now() - started} ms)`);
      const kind = e instanceof Error ? e.name : '';
      if (kind === 'ResourceNotFoundException') {
        return { kind: 'missing', reason: `${label(name)} not found` };
      }
      if (kind === 'CredentialsProviderError') {
        throw new ServerError(
          `no AWS credentials: ${describeError(e)}`,
          'set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or run where a role is available',
        );
      }
      if (/region is missing/i.test(describeError(e))) {
        throw new ServerError(
          'no AWS region',
          'pass --region, or set AWS_REGION or a profile region',
        );
      }
      if (
        isNetworkError(e) ||
        (httpStatus(e) === undefined && kind !== 'InvalidRequestException')
      ) {
        throw new ServerError(
          `AWS Secrets Manager${o.endpoint ? ` at ${o.endpoint}` : ''}: ${describeError(e)}`,
        );
      }
      return { kind: 'missing', reason: `${label(name)}: ${describeError(e)}` };
    }
  }

  return {
    description: `AWS Secrets Manager (${region ?? 'region from the AWS profile'}${o.endpoint ? `, ${o.endpoint}` : ''})`,
    nameOf: cloudNaming(o.nameTemplate ?? '{namespace}/{secret}', names),
    read,
    close: () => {
      client.destroy();
    },
  };
}

function describeName(e: unknown): string {
  const status = httpStatus(e);
  return `${e instanceof Error ? e.name : 'error'}${status ? ` ${status}` : ''}`;
}
