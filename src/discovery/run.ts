// `target discover`: read the cluster → discover (pure) → write the plan.
import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { rfc3339, say, type Context } from '../core/context.js';
import { UserError } from '../core/errors.js';
import { normalizeMount } from '../contract/annotations.js';
import { readClusterFacts } from '../cluster/read.js';
import { loadKubeFor, type KubeTarget } from '../kube/config.js';
import { scanCluster } from '../kube/scan.js';
import { writeFileAtomic } from '../core/files.js';
import { renderPlan } from '../plan/write.js';
import { markSealedSources, sealedScan } from '../sources/sealed-secrets-kube.js';
import { discover, type DiscoveryResult, type DiscoverySummary } from './discover.js';
import { renderSecretMappings, secretMappings } from './secret-mapping.js';
import { applySopsSources, readSopsDir, withSopsKeys } from '../sources/sops-discover.js';

export interface DiscoverCommandOptions {
  outputPlan?: string | undefined;
  namespace?: string | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  kvMount: string;
  name: string;
  createdBy?: string | undefined;
  vaultAddress?: string | undefined;
  vaultRole?: string | undefined;
  force?: boolean | undefined;
  /** `sealed-secrets`, `sops` or `eso`: where the Secrets come from (see src/sources/). */
  from?: string | undefined;
  path?: string | undefined;
  decryptMetadata?: boolean | undefined;
  sopsBinary?: string | undefined;
}

/** Legacy sources discover can plan from (`--from`); without it, plain Secrets. */
const DISCOVER_FROM: readonly string[] = ['sealed-secrets', 'sops', 'eso'];

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function osUser(env: NodeJS.ProcessEnv): string {
  if (env.USER) return env.USER;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

function summaryLines(s: DiscoverySummary): string[] {
  const count = (reason: string): number => s.skipped.filter((k) => k.reason === reason).length;
  const injected = count('already-injected');
  const noRefs = count('no-secret-references');
  const system = count('system-namespace');
  const skippedParts = [
    injected ? `${injected} already annotated cloudtaser.io/inject` : '',
    noRefs ? `${noRefs} without secret references` : '',
  ].filter(Boolean);
  const lines = [
    `Scanned ${s.namespaces} namespace(s): ${s.workloadsFound} workload(s) found, ` +
      `${s.workloadsPlanned} planned, ${injected + noRefs} skipped` +
      (skippedParts.length ? ` (${skippedParts.join(', ')})` : '') +
      `; ${s.secretsMapped} secret reference(s) mapped` +
      (s.missingSecrets ? `, ${s.missingSecrets} to Secrets that do not exist` : '') +
      '.',
  ];
  if (system) lines.push(`Excluded ${system} workload(s) in system namespaces.`);
  const own = count('cloudtaser-component');
  if (own) {
    lines.push(
      `Excluded ${own} cloudtaser component(s) (label app.kubernetes.io/part-of=cloudtaser): the webhook keeps its serving certificate native.`,
    );
  }
  for (const k of s.skipped.filter((x) => x.reason === 'already-injected')) {
    lines.push(
      `  skipped ${k.kind} ${k.namespace}/${k.name}: already annotated cloudtaser.io/inject`,
    );
  }
  return lines;
}

/** Fails before the scan, not after it, when the plan could not be written. */
async function checkWritable(file: string, display: string): Promise<void> {
  try {
    await access(dirname(file), constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'its directory does not exist' : 'permission denied';
    throw new UserError(`cannot write ${display}: ${why}`);
  }
}

/** `--from eso`: the plan's Secrets that ExternalSecrets write, traced back to vault. */
async function fromEso(
  discovered: DiscoveryResult,
  target: KubeTarget,
  o: DiscoverCommandOptions,
  ctx: Context,
): Promise<DiscoveryResult> {
  const { readEso } = await import('../sources/eso-cluster.js');
  const { rewriteForEso } = await import('../sources/eso.js');
  const inv = await readEso(target, o.namespace);
  const { result, summary } = rewriteForEso(discovered, inv, { vaultAddress: o.vaultAddress });
  say(
    ctx.stderr,
    `External Secrets Operator: ${inv.externalSecrets.length} ExternalSecret(s); ${summary.converted} plan entr${summary.converted === 1 ? 'y' : 'ies'} read from vault as ESO does, ${summary.fallback} kept as native Secret references (see the plan's comments).`,
  );
  for (const es of summary.otherVault) {
    say(
      ctx.stderr,
      `Warning: ExternalSecret ${es} reads from another vault than --vault-address ${o.vaultAddress ?? ''} (see the plan's comments).`,
    );
  }
  return result;
}

export async function runDiscover(o: DiscoverCommandOptions, ctx: Context): Promise<void> {
  const kvMount = normalizeMount(o.kvMount, '--kv-mount');
  if (o.namespace !== undefined && !NAMESPACE.test(o.namespace)) {
    throw new UserError(`--namespace "${o.namespace}" is not a valid namespace name`);
  }
  if (o.outputPlan === undefined && (!o.vaultAddress || !o.vaultRole)) {
    throw new UserError(
      'without --output-plan, discover prints SecretMapping resources and needs --vault-address and --vault-role',
      'to write a MigrationPlan instead: cloudtaser target discover -o plan.yaml',
    );
  }
  if (o.vaultAddress !== undefined && !/^https?:\/\/\S+$/.test(o.vaultAddress)) {
    throw new UserError(`--vault-address "${o.vaultAddress}" must be an http(s) URL`);
  }
  if (o.from === 'eso' && o.outputPlan === undefined) {
    throw new UserError('--from eso writes a MigrationPlan: pass -o plan.yaml');
  }
  const toStdout = o.outputPlan === '-';
  const outFile =
    o.outputPlan && !toStdout
      ? isAbsolute(o.outputPlan)
        ? o.outputPlan
        : resolve(ctx.cwd, o.outputPlan)
      : undefined;
  // A plan is edited by people; never overwrite their work silently.
  if (outFile && existsSync(outFile) && !o.force) {
    throw new UserError(
      `${o.outputPlan ?? outFile} already exists; it may hold reviewed edits`,
      'pass --force to overwrite it, or choose another -o path',
    );
  }

  if (o.from !== undefined && !DISCOVER_FROM.includes(o.from)) {
    throw new UserError(`--from must be one of ${DISCOVER_FROM.join(', ')}, not "${o.from}"`);
  }
  if (outFile) await checkWritable(outFile, o.outputPlan ?? outFile);
  if (o.from === 'sops' && o.path === undefined) {
    throw new UserError('--from sops needs --path DIR, the directory of SOPS-encrypted manifests');
  }
  const sops =
    o.from === 'sops'
      ? await readSopsDir(
          {
            path: o.path ?? '.',
            namespace: o.namespace,
            decryptMetadata: o.decryptMetadata === true,
            sopsBinary: o.sopsBinary ?? 'sops',
          },
          ctx,
        )
      : undefined;

  const target = loadKubeFor({ kubeconfig: o.kubeconfig, context: o.context }, ctx);
  let scan = await scanCluster(target, o.namespace);
  const sealed =
    o.from === 'sealed-secrets' ? await sealedScan(target, o.namespace, scan) : undefined;
  if (sealed) scan = { ...scan, workloads: sealed.workloads, secrets: sealed.secrets };
  // The plan is tied to this cluster (protect and the reports check it). A
  // user who may not read kube-system still gets a plan, without the tie.
  const clusterFingerprint = await readClusterFacts(target).then(
    (f) => f.fingerprint,
    (e: unknown) => {
      say(
        ctx.stderr,
        `Warning: the plan records no cluster fingerprint: ${e instanceof Error ? e.message : String(e)}`,
      );
      return undefined;
    },
  );
  const discovered = discover(
    scan.workloads,
    sops ? withSopsKeys(scan.secrets, sops) : scan.secrets,
    {
      kvMount,
      planName: o.name,
      cluster: target.server,
      clusterFingerprint,
      createdAt: rfc3339(ctx.now()),
      createdBy: o.createdBy ?? osUser(ctx.env),
    },
    scan.namespaces,
  );
  const result = o.from === 'eso' ? await fromEso(discovered, target, o, ctx) : discovered;
  for (const line of summaryLines(result.summary)) say(ctx.stderr, line);
  if (sealed) {
    const n = markSealedSources(result.plan, result.notes, sealed.sealed);
    say(
      ctx.stderr,
      `Found ${sealed.sealed.size} SealedSecret(s); ${n} plan source(s) read from them (sealed-secret/<name>).`,
    );
    for (const id of sealed.notOwned) {
      say(
        ctx.stderr,
        `  Secret ${id} exists but SealedSecret ${id} does not own it (the controller leaves it alone): planned as k8s-secret, if read.`,
      );
    }
  }
  if (sops)
    for (const l of [...sops.lines, ...applySopsSources(result.plan, sops)]) say(ctx.stderr, l);

  if (o.outputPlan === undefined) {
    ctx.stdout.write(
      renderSecretMappings(secretMappings(result.plan, o.vaultAddress ?? '', o.vaultRole ?? '')),
    );
    return;
  }
  const text = renderPlan(result.plan, result.notes);
  if (toStdout) {
    ctx.stdout.write(text);
    return;
  }
  await writeFileAtomic(outFile ?? '', text);
  say(
    ctx.stderr,
    `Wrote ${o.outputPlan} (${result.plan.tenants.length} tenant(s)). Review it, then: cloudtaser source apply-plan ${o.outputPlan} --dry-run`,
  );
}
