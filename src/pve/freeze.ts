import { errorMessage } from '../errors.ts';
import { onInterrupt } from '../host/children.ts';
import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';

export interface FreezeLog {
  warn(msg: string): void;
  error(msg: string): void;
  debug(msg: string): void;
}

const qm = (vmid: number, cmd: string) => ['qm', 'guest', 'cmd', String(vmid), cmd];

/**
 * How long a guest may stay frozen if zbm itself dies (SIGKILL, OOM) while it is: a watchdog in
 * its own session, which outlives zbm, thaws it then. A freeze lasts as long as one snapshot.
 */
export const THAW_WATCHDOG_SECONDS = 60;

/** Starts the watchdog detached (setsid, stdio closed) and prints its pid, which leads its group. */
export const WATCHDOG_ARGV = (vmid: number, seconds: number) => [
  'sh',
  '-c',
  `setsid sh -c 'sleep "$1"; exec qm guest cmd "$2" fsfreeze-thaw' zbm-thaw-watchdog "$1" "$2" </dev/null >/dev/null 2>&1 & echo $!`,
  'zbm-thaw',
  String(seconds),
  String(vmid),
];

async function startWatchdog(host: Host, vmid: number, log: FreezeLog): Promise<number | null> {
  try {
    const pid = Number(
      (await run(host, WATCHDOG_ARGV(vmid, THAW_WATCHDOG_SECONDS), { timeoutMs: 10_000 })).stdout,
    );
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch (err) {
    log.debug(`guest ${vmid}: no thaw watchdog (${errorMessage(err)})`);
    return null;
  }
}

async function stopWatchdog(host: Host, pid: number, vmid: number, log: FreezeLog): Promise<void> {
  // The whole group: the watchdog's shell and its sleep.
  await run(host, ['kill', '-TERM', '--', `-${pid}`], { timeoutMs: 10_000 }).catch((err: unknown) =>
    log.debug(`guest ${vmid}: stopping the thaw watchdog ${pid}: ${errorMessage(err)}`),
  );
}

/**
 * Asks the guest's agent whether it answers: null when it does, else why not. Started for every
 * guest to freeze at once, before the first freeze, so that a dead agent's wait is not added to
 * the run once per guest.
 */
export function pingAgent(host: Host, vmid: number): Promise<string | null> {
  return run(host, qm(vmid, 'ping'), { timeoutMs: 10_000 }).then(
    () => null,
    (err: unknown) => errorMessage(err),
  );
}

/**
 * Runs action (the snapshot) with the guest's file systems frozen through its agent when that is
 * possible, as Proxmox does: an agent that did not answer its ping (agent, from pingAgent) or a
 * failed freeze is a warning and the snapshot is still taken (crash-consistent). The thaw runs
 * whatever happened, with a time limit and one retry, so that a guest is never left frozen.
 * Returns whether the snapshot was taken frozen.
 */
export async function withFrozenGuest(
  host: Host,
  vmid: number,
  agent: Promise<string | null>,
  log: FreezeLog,
  action: () => Promise<void>,
): Promise<boolean> {
  const silent = await agent;
  if (silent !== null) {
    log.warn(`guest ${vmid}: the guest agent does not answer, snapshot taken without freeze (${silent})`);
    await action();
    return false;
  }
  let frozen = false;
  const watchdog = await startWatchdog(host, vmid, log);
  let thawing: Promise<void> | undefined;
  const thawOnce = () => {
    thawing ??= thaw(host, vmid, log).then(async (thawed) => {
      // A thaw that failed is left to the watchdog to try once more.
      if (watchdog !== null && thawed) await stopWatchdog(host, watchdog, vmid, log);
    });
    return thawing;
  };
  // From here on the thaw runs even if zbm is interrupted (SIGINT/SIGTERM/SIGHUP).
  const unregister = onInterrupt(thawOnce);
  try {
    try {
      await freeze(host, vmid, log);
      frozen = true;
    } catch (err) {
      log.warn(`guest ${vmid}: fsfreeze-freeze failed, snapshot taken without freeze (${errorMessage(err)})`);
    }
    await action();
  } finally {
    // Also after a failed freeze: it may have frozen some file systems before failing.
    await thawOnce();
    unregister();
  }
  return frozen;
}

/**
 * A guest still frozen from a run that was killed (SIGKILL, power loss) refuses a new freeze: it
 * is thawed first, and said so, instead of being snapshotted unfrozen and left frozen.
 */
async function freeze(host: Host, vmid: number, log: FreezeLog): Promise<void> {
  try {
    await run(host, qm(vmid, 'fsfreeze-freeze'), { timeoutMs: 60_000 });
  } catch (err) {
    const status = await run(host, qm(vmid, 'fsfreeze-status'), { timeoutMs: 10_000 }).catch(() => null);
    if (!status?.stdout.includes('frozen') || status.stdout.includes('thawed')) throw err;
    log.warn(`guest ${vmid}: was still frozen (a zbm run killed while it was frozen?): thawing it first`);
    await run(host, qm(vmid, 'fsfreeze-thaw'), { timeoutMs: 30_000 });
    await run(host, qm(vmid, 'fsfreeze-freeze'), { timeoutMs: 60_000 });
  }
}

async function thaw(host: Host, vmid: number, log: FreezeLog): Promise<boolean> {
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      await run(host, qm(vmid, 'fsfreeze-thaw'), { timeoutMs: 30_000 });
      return true;
    } catch (err) {
      if (attempt === 2) {
        log.error(
          `guest ${vmid}: fsfreeze-thaw failed twice (${errorMessage(err)}); check the guest now with ` +
            `\`qm guest cmd ${vmid} fsfreeze-status\` and thaw it with \`qm guest cmd ${vmid} fsfreeze-thaw\``,
        );
      } else {
        log.debug(`guest ${vmid}: fsfreeze-thaw failed, retrying: ${errorMessage(err)}`);
      }
    }
  }
  return false;
}
