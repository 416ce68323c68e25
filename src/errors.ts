/** Exit codes, documented in README.md ("Exit codes") and in `zbm --help`. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** verify, as a monitoring plugin: a check that could not run, or a usage error. */
  unknown: 3,
  /** A remote lock held by another run (EX_TEMPFAIL), see lock/remote.ts. */
  lockHeld: 75,
  interrupted: 130,
} as const;

/**
 * The commands that exit like a monitoring plugin (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, a usage
 * error included) and print a status line first, for Nagios, Icinga, Checkmk.
 */
export function speaksMonitoringPlugin(command: string): boolean {
  return command === 'verify' || command === 'drill';
}

/** An error whose message is meant for the administrator: it names the host, the object and the way out. */
export class ZbmError extends Error {
  override name = 'ZbmError';
}

/** A bad flag, value or name given by the user. */
export class UsageError extends ZbmError {
  override name = 'UsageError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
