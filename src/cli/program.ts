// argv → command. Commands are registered by noun then verb; this file only
// wires them together and maps errors to exit codes.
import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { ExitCode, isCloudtaserError } from '../core/errors.js';
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
    .option('--debug', 'print internal details (never secret values or tokens)')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });
  program.hook('preAction', () => {
    ctx.debug = program.opts().debug === true;
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
