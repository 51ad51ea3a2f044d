// Picks the source `--from` names. Each provider's client is loaded only when
// used: together they are several megabytes of JavaScript no other run needs.
import { say, type Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { checkTemplate, readNameMap, type CloudOptions } from './cloud.js';
import type { DebugLine, ImportSource } from './source.js';

export const IMPORT_SOURCES = ['kubernetes', 'aws', 'gcp', 'azure'] as const;
export type SourceName = (typeof IMPORT_SOURCES)[number];

export interface SourceOptions extends CloudOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

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
    source === 'kubernetes'
      ? [...CLOUD_ONLY, 'region', 'project'].filter((k) => wrong(k as keyof CloudOptions))
      : [source !== 'aws' ? 'region' : '', source !== 'gcp' ? 'project' : ''].filter(
          (k) => k !== '' && wrong(k as keyof CloudOptions),
        );
  if (misplaced.length > 0) {
    throw new UserError(
      `${misplaced.map((k) => FLAG[k as keyof CloudOptions]).join(', ')} ${misplaced.length > 1 ? 'do' : 'does'} not apply to --from ${source}`,
    );
  }
  if (source !== 'kubernetes' && (o.kubeconfig !== undefined || o.context !== undefined)) {
    throw new UserError(`--kubeconfig and --context apply to --from kubernetes only`);
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
  const names = o.nameMap ? await readNameMap(o.nameMap, ctx.cwd) : new Map<string, string>();
  switch (source) {
    case 'aws':
      return (await import('./aws.js')).awsSource(o, names, ctx, debug);
    case 'gcp':
      return (await import('./gcp.js')).gcpSource(o, names, ctx, debug);
    case 'azure':
      return (await import('./azure.js')).azureSource(o, names, ctx, debug);
  }
}
