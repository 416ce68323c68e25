import { displayArgv } from './host/quote.ts';

/** Exit codes, documented in README.md ("Exit codes") and in `zbm --help`. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  interrupted: 130,
} as const;

/** An error whose message is meant for the administrator: it names the host, the object and the way out. */
export class ZbmError extends Error {
  override name = 'ZbmError';
}

/** A bad flag, value or name given by the user. */
export class UsageError extends ZbmError {
  override name = 'UsageError';
}

/** A command that ran on a host and failed. */
export class CommandError extends ZbmError {
  override name = 'CommandError';
  constructor(
    readonly host: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    /** Why it ended when not by exiting: a signal name, "timed out", a spawn error. */
    readonly reason: string | null,
    readonly stderr: string,
  ) {
    const how = reason ? `failed (${reason})` : `failed (exit code ${exitCode})`;
    const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
    super(`on ${host}: \`${displayArgv(argv)}\` ${how}${detail}`);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
