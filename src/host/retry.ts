/**
 * A second (and third, fourth) try for an ssh connection that was turned away before the remote
 * command could start: many nodes' timers firing at the same moment meet sshd's MaxStartups
 * (10:30:100 by default), which drops unauthenticated connections beyond its limit at random.
 * Anything that may have reached the remote shell is never tried again: `zfs destroy` and
 * `zfs receive` are not idempotent.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { commandLabel } from './failure.ts';
import type { Host } from './host.ts';
import type { Exit } from './process.ts';

/**
 * Lines ssh prints when the server closed or refused the connection before its banner or key
 * exchange, so before authentication and long before any command: each one alone is enough.
 *
 * Time-outs (`Connection timed out`, `Connection timed out during banner exchange`) are turned away
 * before authentication too, but not retried: that try already waited ConnectTimeout (20 s) on a
 * host that is down or hung, three more would hold a failing run 1.5-2 min, and the next timer run
 * tries again anyway. MaxStartups answers at once, with a reset or a close.
 */
const TURNED_AWAY = [
  // The server accepted the TCP connection, then closed it before its banner: MaxStartups, or a
  // daemon restarting. `ssh_` is the name before OpenSSH 8.0.
  /^(?:kex|ssh)_exchange_identification: (?:read: Connection reset by peer|Connection closed by remote host)$/,
  // Nothing listens (sshd restarting), or the host is not up yet: no byte was exchanged.
  /^ssh: connect to host \S+ port \d+: (?:Connection refused|No route to host)$/,
];

/**
 * Lines ssh adds to one of the above about the same connection. Alone they prove nothing:
 * "Connection closed by <addr> port <n>" also ends a connection during authentication.
 */
const ALONGSIDE = [/^Connection (?:closed|reset) by \S+ port \d+$/];

/**
 * The line of ssh's stderr that shows the connection was turned away before authentication, or
 * null when the failure may have come later. Conservative by construction: every line must be one
 * ssh writes about a connection turned away, at least one of them decisive, so any word from the
 * remote side (or from authentication, host keys, name resolution) rules a retry out.
 */
export function turnedAway(stderr: string): string | null {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  let decisive: string | null = null;
  for (const line of lines) {
    if (TURNED_AWAY.some((re) => re.test(line))) decisive ??= line;
    else if (!ALONGSIDE.some((re) => re.test(line))) return null;
  }
  return decisive;
}

/** When to try again: the pause before each retry, one per retry, drawn anew for each command. */
export interface ConnectRetry {
  delays(): readonly number[];
  /** Told of each retry before its pause, in words for the log. */
  onRetry(message: string): void;
}

/**
 * Three retries after 2-5 s, 4-10 s and 8-20 s: 14-35 s in all, so a MaxStartups burst (connections
 * that each hold a slot only for their key exchange and authentication) has long drained before
 * the last one, while a failing run is not held much longer than that. Random within each range, so
 * that nodes turned away together do not come back together.
 */
export function backoffDelays(random: () => number = Math.random): number[] {
  return [
    [2, 5],
    [4, 10],
    [8, 20],
  ].map(([lo = 0, hi = 0]) => Math.round((lo + (hi - lo) * random()) * 1000));
}

let report: (message: string) => void = (m) => process.stderr.write(`${m}\n`);
let retries = 3;

/**
 * ZBM_SSH_RETRIES: how many of the three retries to make, 0 to turn them off (a test that takes a
 * host away on purpose, an administrator who wants a refusal to fail at once). Throws on anything
 * else, for the caller to report as a usage error.
 */
export function retriesFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return 3;
  if (!/^[0-3]$/.test(value))
    throw new Error(`ZBM_SSH_RETRIES=${JSON.stringify(value)}: expected 0, 1, 2 or 3`);
  return Number(value);
}

/** How many retries, and where they are logged (the run's logger); set once, before anything runs. */
export function configureConnectRetry(opts: { retries: number; report: (message: string) => void }): void {
  retries = opts.retries;
  report = opts.report;
}

export const defaultConnectRetry: ConnectRetry = {
  delays: () => backoffDelays().slice(0, retries),
  onRetry: (m) => report(m),
};

/** How one try of a command ended. */
export interface Attempt {
  readonly exit: Exit;
  readonly stderr: string;
  readonly timedOut?: boolean;
}

export interface RetryGuard {
  /** True once a byte has passed to or from this try: it is never repeated then. */
  passed(): boolean;
  /** Aborted when the command is no longer wanted (the other side of a pipe failed). */
  readonly signal?: AbortSignal;
}

/**
 * Runs once() until it succeeds, fails for another reason than a connection turned away, or the
 * host's retries are used up; returns the last try.
 */
export async function withConnectRetry<T extends Attempt>(
  host: Host,
  argv: readonly string[],
  once: () => Promise<T>,
  guard: RetryGuard,
): Promise<T> {
  const delays = host.connectRetry?.delays() ?? [];
  for (let i = 0; ; i++) {
    const result = await once();
    const { exit } = result;
    if (exit.code !== 255 || exit.signal !== null || result.timedOut || host.isLocal) return result;
    const delay = delays[i];
    if (delay === undefined || guard.passed() || guard.signal?.aborted) return result;
    const said = turnedAway(result.stderr);
    if (said === null) return result;
    host.connectRetry?.onRetry(
      `${host.name} turned the ssh connection away before ${commandLabel(argv)} could start (${said.replace(/^ssh: /, '')}): retry ${i + 1} of ${delays.length} in ${(delay / 1000).toFixed(1)} s`,
    );
    try {
      await sleep(delay, undefined, { signal: guard.signal });
    } catch {
      return result;
    }
    if (guard.signal?.aborted) return result;
  }
}
