// `source apply-plan`: read the plan and the server's state, compute the
// changes (pure), print them, and — unless --dry-run — write only those.
import { DEFAULT_REQUEST_TIMEOUT_MS, say, type Context } from '../core/context.js';
import { mapLimit } from '../core/concurrency.js';
import { normalizeMount } from '../contract/annotations.js';
import type { LoadedPlan } from '../plan/read.js';
import {
  VaultClient,
  VaultError,
  resolveVaultConfig,
  retryWindowFromEnv,
  type VaultFlags,
} from './client.js';
import {
  checkKv2,
  computeChanges,
  desiredState,
  type Changes,
  type MountInfo,
} from './provision.js';
import { readVaultState } from './state.js';

export interface ApplyOptions extends VaultFlags {
  dryRun: boolean;
  authPath: string;
  kvMount: string;
  verbose: boolean;
  concurrency: number;
}

export function vaultClient(flags: VaultFlags, ctx: Context, addressFlag: string): VaultClient {
  const config = resolveVaultConfig(flags, ctx.env, addressFlag);
  const retryWindowMs = retryWindowFromEnv(ctx.env);
  return new VaultClient(config, {
    ...(retryWindowMs === undefined ? {} : { retryWindowMs }),
    timeoutMs: ctx.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    signal: ctx.signal,
    ...(ctx.debug
      ? {
          debug: (line: string) => {
            say(ctx.stderr, `debug: ${line}`);
          },
        }
      : {}),
  });
}

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `${by}${l}`)
    .join('\n');
}

function authConfigHint(authPath: string, cluster: string | undefined): string[] {
  return [
    `Warning: auth/${authPath} has no configuration; workload logins fail until it has one.`,
    '  Finish it from a machine with access to the cluster:',
    `    bao write auth/${authPath}/config \\`,
    `        kubernetes_host=${cluster ?? 'https://<kubernetes API server>'} \\`,
    '        kubernetes_ca_cert=@<cluster CA file>',
    '  Add token_reviewer_jwt=@<reviewer token file> when OpenBao runs outside the cluster.',
    `  Or, without access to the cluster: cloudtaser source register --fingerprint FILE --auth-path ${authPath}`,
  ];
}

function printDryRun(changes: Changes, verbose: boolean, ctx: Context): void {
  const out = (line = ''): void => {
    say(ctx.stdout, line);
  };
  out('Would ensure KV mount:');
  out(
    `  ${changes.mount.path} (${changes.mount.action === 'create' ? 'ensure mounted' : 'already mounted, KV v2'})`,
  );
  out();
  if (changes.auth.action === 'create') {
    out('Would enable auth method:');
    out(`  ${changes.auth.path} (kubernetes)`);
    out();
  }
  for (const [what, items] of [
    ['policies', changes.policies],
    ['roles', changes.roles],
  ] as const) {
    for (const action of ['create', 'update'] as const) {
      const chosen = items.filter((i) => i.action === action);
      if (chosen.length === 0) continue;
      out(`Would ${action} ${what}:`);
      for (const item of chosen) {
        const why =
          'differences' in item && item.differences.length > 0
            ? ` (${item.differences.join(', ')})`
            : '';
        out(`  ${item.name}${why}`);
        if (verbose && 'hcl' in item) out(indent(item.hcl, '      '));
        if (verbose && 'body' in item) out(indent(JSON.stringify(item.body, null, 2), '      '));
      }
      out();
    }
  }
  const unchanged = unchangedLine(changes);
  if (unchanged) {
    out(unchanged);
    out();
  }
  out(
    changes.writes === 0
      ? 'Everything is up to date; nothing would change.'
      : 'Re-run without --dry-run to execute.',
  );
}

function unchangedLine(changes: Changes): string | undefined {
  const p = changes.policies.filter((x) => x.action === 'unchanged').length;
  const r = changes.roles.filter((x) => x.action === 'unchanged').length;
  if (p + r === 0) return undefined;
  return `Unchanged: ${plural(p, 'policy', 'policies')}, ${plural(r, 'role', 'roles')}.`;
}

/** Creates a mount or auth method; a lost response to an earlier try is not an error. */
async function ensureCreated(
  client: VaultClient,
  path: string,
  body: unknown,
  recheck: () => Promise<boolean>,
): Promise<void> {
  try {
    await client.write(path, body);
  } catch (e) {
    if (e instanceof VaultError && e.status === 400 && (await recheck())) return;
    throw e;
  }
}

async function apply(
  changes: Changes,
  client: VaultClient,
  o: ApplyOptions,
  ctx: Context,
): Promise<void> {
  const out = (line = ''): void => {
    say(ctx.stdout, line);
  };
  out('KV mount:');
  if (changes.mount.action === 'create') {
    await ensureCreated(
      client,
      `sys/mounts/${changes.mount.path}`,
      {
        type: 'kv',
        options: { version: '2' },
        description: 'cloudtaser: secrets of migrated workloads',
      },
      async () => {
        const mounts = await client.read<{ data?: Record<string, MountInfo> }>('sys/mounts');
        const m = mounts?.data?.[`${changes.mount.path}/`];
        if (m) checkKv2(changes.mount.path, m, '--kv-mount');
        return m !== undefined;
      },
    );
    out(`  ${changes.mount.path} (created, KV v2)`);
  } else out(`  ${changes.mount.path} (exists, KV v2)`);

  out('Auth method:');
  if (changes.auth.action === 'create') {
    await ensureCreated(
      client,
      `sys/auth/${changes.auth.path}`,
      { type: 'kubernetes', description: 'cloudtaser: workload logins' },
      async () => {
        const auths = await client.read<{ data?: Record<string, { type: string }> }>('sys/auth');
        return auths?.data?.[`${changes.auth.path}/`]?.type === 'kubernetes';
      },
    );
    out(`  ${changes.auth.path} (enabled)`);
  } else out(`  ${changes.auth.path} (exists)`);

  // Policies before roles: a role names its policy.
  const policies = changes.policies.filter((p) => p.action !== 'unchanged');
  await mapLimit(policies, o.concurrency, (p) =>
    client.write(`sys/policies/acl/${p.name}`, { policy: p.hcl }),
  );
  const roles = changes.roles.filter((r) => r.action !== 'unchanged');
  await mapLimit(roles, o.concurrency, (r) =>
    client.write(`auth/${changes.auth.path}/role/${r.name}`, r.body),
  );
  if (policies.length > 0) {
    out('Policies:');
    for (const p of policies) out(`  ${p.name} (${p.action === 'create' ? 'created' : 'updated'})`);
  }
  if (roles.length > 0) {
    out('Roles:');
    for (const r of roles) {
      out(
        `  ${r.name} (${r.action === 'create' ? 'created' : `updated: ${r.differences.join(', ')}`})`,
      );
    }
  }
  const unchanged = unchangedLine(changes);
  if (unchanged) out(unchanged);
}

export async function runApplyPlan(
  loaded: LoadedPlan,
  o: ApplyOptions,
  ctx: Context,
): Promise<void> {
  const kvMount = normalizeMount(o.kvMount, '--kv-mount');
  const authPath = normalizeMount(o.authPath, '--auth-path');
  const client = vaultClient(o, ctx, '--openbao-addr');
  try {
    const desired = desiredState(loaded.plan, { kvMount, authPath });
    const state = await readVaultState(client, desired, o.concurrency);
    const changes = computeChanges(desired, state);

    say(ctx.stdout, `Applying plan "${loaded.plan.metadata.name}" to ${client.address}`);
    if (o.dryRun) say(ctx.stdout, '(dry-run mode -- no changes will be made)');
    say(ctx.stdout);
    for (const w of changes.warnings) say(ctx.stderr, `Warning: ${w}`);

    if (o.dryRun) {
      printDryRun(changes, o.verbose, ctx);
    } else if (changes.writes === 0) {
      say(
        ctx.stdout,
        `Everything is up to date: KV mount ${kvMount}, auth method ${authPath}, ` +
          `${plural(changes.policies.length, 'policy', 'policies')}, ${plural(changes.roles.length, 'role', 'roles')}. Nothing written.`,
      );
    } else {
      await apply(changes, client, o, ctx);
      say(ctx.stdout);
      say(ctx.stdout, `Done: ${plural(changes.writes, 'change', 'changes')} written.`);
    }
    if (!changes.auth.configured) {
      for (const line of authConfigHint(authPath, loaded.plan.metadata.cluster))
        say(ctx.stderr, line);
    }
  } finally {
    client.close();
  }
}
