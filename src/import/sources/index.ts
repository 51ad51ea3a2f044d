// Picks the source `--from` names. Each provider's client is loaded only when
// used: together they are several megabytes of JavaScript no other run needs.
import { say, type Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { checkTemplate, readNameMap, type CloudOptions } from './cloud.js';
import type { DebugLine, ImportSource } from './source.js';

export const IMPORT_SOURCES = [
  'kubernetes',
  'sealed-secrets',
  'sops',
  'aws',
  'gcp',
  'azure',
] as const;
export type SourceName = (typeof IMPORT_SOURCES)[number];

export interface SourceOptions extends CloudOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  /** `--from sealed-secrets`: unseal offline with the controller's private key(s) in this file. */
  sealingKey?: string | undefined;
  /** With `sealingKey`: the git checkout holding the SealedSecret manifests. */
  repo?: string | undefined;
  /** `--from sops`: the directory the plan's sops/<file> names are relative to, and the binary. */
  sops?: { path: string; binary: string } | undefined;
}

/** The sources that read a cluster: the kubeconfig flags apply to them. */
const IN_CLUSTER: readonly SourceName[] = ['kubernetes', 'sealed-secrets'];

const CLOUD_ONLY: (keyof CloudOptions)[] = ['nameTemplate', 'nameMap', 'stringField', 'endpoint'];
const FLAG: Record<keyof CloudOptions, string> = {
  nameTemplate: '--name-template',
  nameMap: '--name-map',
  stringField: '--string-field',
  endpoint: '--endpoint',
  region: '--region',
  project: '--project',
};

/** Checks `--from` and the flags that go with it, before anything is read. */
export function checkSource(from: string, o: SourceOptions): SourceName {
  if (!(IMPORT_SOURCES as readonly string[]).includes(from)) {
    throw new UserError(`--from must be one of ${IMPORT_SOURCES.join(', ')}, not "${from}"`);
  }
  const source = from as SourceName;
  const wrong = (k: keyof CloudOptions): boolean => o[k] !== undefined;
  const misplaced =
    IN_CLUSTER.includes(source) || source === 'sops'
      ? [...CLOUD_ONLY, 'region', 'project'].filter((k) => wrong(k as keyof CloudOptions))
      : [source !== 'aws' ? 'region' : '', source !== 'gcp' ? 'project' : ''].filter(
          (k) => k !== '' && wrong(k as keyof CloudOptions),
        );
  if (misplaced.length > 0) {
    throw new UserError(
      `${misplaced.map((k) => FLAG[k as keyof CloudOptions]).join(', ')} ${misplaced.length > 1 ? 'do' : 'does'} not apply to --from ${source}`,
    );
  }
  if (!IN_CLUSTER.includes(source) && (o.kubeconfig !== undefined || o.context !== undefined)) {
    throw new UserError(
      `--kubeconfig and --context apply to --from kubernetes and sealed-secrets only`,
    );
  }
  if (o.sealingKey !== undefined && source !== 'sealed-secrets') {
    throw new UserError('--sealing-key goes with --from sealed-secrets');
  }
  if (o.repo !== undefined && o.sealingKey === undefined) {
    throw new UserError(
      '--repo goes with --from sealed-secrets --sealing-key (the controller unseals only what is in the cluster)',
    );
  }
  if (o.nameTemplate !== undefined) checkTemplate(o.nameTemplate);
  if (o.stringField !== undefined && o.stringField === '') {
    throw new UserError('--string-field needs a field name');
  }
  return source;
}

export async function openSource(
  source: SourceName,
  o: SourceOptions,
  ctx: Context,
): Promise<ImportSource> {
  const debug: DebugLine = ctx.debug
    ? (line) => {
        say(ctx.stderr, `debug: ${line}`);
      }
    : undefined;
  if (source === 'kubernetes') {
    const { kubernetesSource } = await import('./kubernetes.js');
    return kubernetesSource(o, ctx);
  }
  if (source === 'sealed-secrets') {
    const { sealedSecretsSource } = await import('./kubernetes.js');
    return sealedSecretsSource(o, ctx);
  }
  if (source === 'sops') {
    const { sopsSource } = await import('./sops.js');
    return sopsSource(o.sops ?? { path: '.', binary: 'sops' }, ctx);
  }
  const names = o.nameMap ? await readNameMap(o.nameMap, ctx.cwd) : new Map<string, string>();
  switch (source) {
    case 'aws':
      return (await provider(source, () => import('./aws.js'))).awsSource(o, names, ctx, debug);
    case 'gcp':
      return (await provider(source, () => import('./gcp.js'))).gcpSource(o, names, ctx, debug);
    case 'azure':
      return (await provider(source, () => import('./azure.js'))).azureSource(o, names, ctx, debug);
  }
}

/** Each cloud source's name and SDK packages: optional dependencies of cloudtaser. */
const SDK: Record<'aws' | 'gcp' | 'azure', { name: string; packages: string[] }> = {
  aws: { name: 'AWS', packages: ['@aws-sdk/client-secrets-manager', '@aws-sdk/core'] },
  gcp: { name: 'Google Cloud', packages: ['@google-cloud/secret-manager', 'google-auth-library'] },
  azure: { name: 'Azure', packages: ['@azure/keyvault-secrets', '@azure/identity'] },
};

/**
 * Loads a cloud source. The provider SDKs are optional dependencies: npm
 * installs them by default, and an install made without them (the webhook
 * image, `npm install --omit=optional`) says what to add instead of failing
 * with a module-resolution error.
 */
export async function provider<T>(
  source: 'aws' | 'gcp' | 'azure',
  load: () => Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const sdk = SDK[source];
    // Only the SDK's own absence: a missing file of cloudtaser's is a broken install, not this.
    const missing =
      (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') &&
      sdk.packages.some((p) => err.message.includes(`'${p}'`));
    if (!missing) throw e;
    throw new UserError(
      `--from ${source} needs the ${sdk.name} SDK, which this installation of cloudtaser lacks (installed without optional dependencies)`,
      `install it where cloudtaser is installed (with -g for a global install): npm install ${sdk.packages.join(' ')}`,
    );
  }
}
