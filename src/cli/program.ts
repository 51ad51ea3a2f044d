// argv → command. Commands are registered by noun then verb; this file only
// wires them together and maps errors to exit codes.
import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { ExitCode, isCloudtaserError, UserError } from '../core/errors.js';
import type { Context } from '../core/context.js';
import { say } from '../core/context.js';
import { packageVersion } from '../version.js';
import { registerCommands } from './commands/index.js';

export function buildProgram(ctx: Context): Command {
  const program = new Command('cloudtaser')
    .description(
      'Move Kubernetes workloads off native Secrets onto secrets fetched at run time from OpenBao/Vault.',
    )
    .version(packageVersion(), '-V, --version')
    .option(
      '--debug',
      'print internal details and one line per server request (never secret values or tokens)',
    )
    .option(
      '--request-timeout <duration>',
      'limit for one request to Kubernetes or OpenBao/Vault: 30s, 2m, 500ms; 0 for none (default: $CLOUDTASER_REQUEST_TIMEOUT, then 30s)',
    )
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });
  program.hook('preAction', () => {
    const opts = program.opts();
    ctx.debug = opts.debug === true;
    const timeout = opts.requestTimeout ?? ctx.env.CLOUDTASER_REQUEST_TIMEOUT;
    if (timeout !== undefined && timeout !== '') {
      ctx.requestTimeoutMs = parseDuration(
        timeout,
        opts.requestTimeout !== undefined ? '--request-timeout' : 'CLOUDTASER_REQUEST_TIMEOUT',
      );
    }
  });
  registerCommands(program, ctx);
  // Every subcommand inherits the same output routing and exit behaviour.
  const inherit = (cmd: CommandUnknownOpts): void => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({
        writeOut: (s) => ctx.stdout.write(s),
        writeErr: (s) => ctx.stderr.write(s),
      });
      sub.showSuggestionAfterError();
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

/** kubectl's duration form (`30s`, `2m`, `1h`, `500ms`); a bare number is seconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m ? Number(m[1]) * unit[(m[2] ?? 's') as keyof typeof unit] : NaN;
  if (!Number.isFinite(ms) || ms > 86_400_000) {
    throw new UserError(`${flag} must be a duration such as 30s, 2m or 0, not "${value}"`);
  }
  return Math.round(ms);
}

/**
 * Runs the CLI and returns the exit code. Never exits the process and never
 * lets a stack trace reach the user unless `--debug` asks for it.
 */
export async function runCli(argv: readonly string[], ctx: Context): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
  } catch (e) {
    return reportError(e, ctx);
  }
}

export function reportError(e: unknown, ctx: Context): number {
  if (e instanceof CommanderError) {
    // Help and version are "errors" only in commander's control flow.
    if (
      e.code === 'commander.helpDisplayed' ||
      e.code === 'commander.version' ||
      e.code === 'commander.help'
    ) {
      return ExitCode.ok;
    }
    if (e.code === 'commander.executeSubCommandAsync') return e.exitCode;
    // commander already printed its message.
    return ExitCode.usage;
  }
  if (isCloudtaserError(e)) {
    say(ctx.stderr, `error: ${e.message}`);
    if (e.hint) say(ctx.stderr, `  ${e.hint}`);
    return e.exitCode;
  }
  const message = e instanceof Error ? e.message : String(e);
  say(ctx.stderr, `internal error: ${message}`);
  if (ctx.debug && e instanceof Error && e.stack) say(ctx.stderr, e.stack);
  else say(ctx.stderr, '  re-run with --debug for details, and report it if it persists');
  return ExitCode.internal;
}
