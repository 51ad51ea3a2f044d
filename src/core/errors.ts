/**
 * The few error classes every command uses. Each maps to one exit code
 * (see the spec's conventions) and carries a message meant for a person:
 * what happened, where, and what to do. None of them ever holds a secret.
 */

/** Exit code contract shared by every command. */
export const ExitCode = {
  ok: 0,
  checkFailed: 1,
  usage: 2,
  server: 3,
  internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

abstract class CloudtaserError extends Error {
  abstract readonly exitCode: ExitCode;
  /** Optional second line: the command or edit that fixes it. */
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = new.target.name;
    this.hint = hint;
  }
}

/** Bad usage or bad input: unknown flag, invalid plan file, unwritable path. */
export class UserError extends CloudtaserError {
  readonly exitCode = ExitCode.usage;
}

/** A check ran and found problems (verify-plan, validate). */
export class CheckFailed extends CloudtaserError {
  readonly exitCode = ExitCode.checkFailed;
}

/** A server refused or failed: auth, permission, 5xx after retries, unreachable. */
export class ServerError extends CloudtaserError {
  readonly exitCode = ExitCode.server;
}

export function isCloudtaserError(e: unknown): e is UserError | CheckFailed | ServerError {
  return e instanceof UserError || e instanceof CheckFailed || e instanceof ServerError;
}
