/**
 * One restore point opened for reading on the tier that holds it: held (so that prune keeps it and
 * says why), cloned read-only outside the backups' root, and afterwards closed again, also when
 * interrupted. A run killed outright leaves its clone, hold and staging directory behind under
 * names that carry this host and its pid; the next run on this host removes them.
 */
import { errorMessage } from '../errors.ts';
import { onInterrupt } from '../host/children.ts';
import { run } from '../host/process.ts';
import { zbmProcessAlive } from '../lock/lock.ts';
import type { Tier } from '../restore/tier.ts';
import { poolOf } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import {
  cloneArgv,
  FILES_PREFIX,
  leftoverDirsArgv,
  MOUNT_BASE,
  pidOfRunName,
  poolClonesArgv,
  prepareDevicesArgv,
  removeMountpointArgv,
  removeStagingArgv,
  STAGING_BASE,
} from './argv.ts';

export interface OpenedDisk {
  readonly snapshot: string;
  readonly clone: string;
  readonly volume: boolean;
  /** Where a subvol's clone is mounted (read-only). */
  readonly mountpoint: string | null;
  /** This run's directory on the tier for file lists and 7-Zip's output. */
  readonly staging: string;
  readonly tag: string;
}

const HOLD_PREFIX = 'zbm-files:';

/** The hold tag of one run: prune names it when it keeps the point. */
export function holdTagOf(name: string): string {
  return name.replace(FILES_PREFIX, HOLD_PREFIX);
}

export async function openDisk(
  tier: Tier,
  snapshot: string,
  volume: boolean,
  name: string,
): Promise<{ disk: OpenedDisk; close: () => Promise<void> }> {
  const pool = poolOf(tier.root);
  const disk: OpenedDisk = {
    snapshot,
    clone: `${pool}/${name}`,
    volume,
    mountpoint: volume ? null : `${MOUNT_BASE}/${name}`,
    staging: `${STAGING_BASE}/${name}`,
    tag: holdTagOf(name),
  };
  await tier.zfs.hold(disk.tag, [snapshot]);
  let cloned = false;
  const close = async () => {
    const errors: string[] = [];
    const step = async (what: string, f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (err) {
        errors.push(`${what}: ${errorMessage(err)}`);
      }
    };
    if (cloned) await step(`destroying ${disk.clone}`, () => run(tier.host, ['zfs', 'destroy', disk.clone]));
    if (cloned && disk.mountpoint !== null) {
      const dir = disk.mountpoint;
      await step(`removing ${dir}`, () => run(tier.host, removeMountpointArgv(dir)));
    }
    await step(`releasing ${disk.tag}`, () => tier.zfs.release(disk.tag, [snapshot]));
    await step(`removing ${disk.staging}`, () => run(tier.host, removeStagingArgv(disk.staging)));
    if (errors.length > 0) {
      throw new Error(
        `${tier.host.name}: ${errors.join('; ')}; the next zbm files on this host removes what is left`,
      );
    }
  };
  try {
    await run(tier.host, cloneArgv(snapshot, disk.clone, volume, name));
    cloned = true;
    if (volume) await run(tier.host, prepareDevicesArgv(disk.clone));
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
  return { disk, close };
}

/**
 * Runs body with the restore point opened, and closes it afterwards whatever happens, also on
 * SIGINT/SIGTERM; a failure to close only warns (the next run removes what is left).
 */
export async function withOpenDisk<T>(
  tier: Tier,
  snapshot: string,
  volume: boolean,
  name: string,
  log: { warn(m: string): void },
  body: (disk: OpenedDisk) => Promise<T>,
): Promise<T> {
  const { disk, close } = await openDisk(tier, snapshot, volume, name);
  const unregister = onInterrupt(close);
  try {
    return await body(disk);
  } finally {
    unregister();
    await close().catch((err: unknown) => log.warn(errorMessage(err)));
  }
}

/**
 * Removes what killed runs of this host left on the tier: clones, holds on the root's snapshots and
 * staging directories whose pid no longer runs zbm here. Another host's are left alone: only that
 * host can tell whether its run is still going.
 */
export async function removeLeftovers(
  tier: Tier,
  datasets: readonly Dataset[],
  hostname: string,
  log: { info(m: string): void; warn(m: string): void },
): Promise<void> {
  const dead = (name: string) => {
    const pid = pidOfRunName(name, hostname);
    return pid !== null && !zbmProcessAlive(pid);
  };
  const pool = poolOf(tier.root);
  try {
    const { stdout } = await run(tier.host, poolClonesArgv(pool));
    for (const name of stdout.split('\n')) {
      if (!name.startsWith(`${pool}/`) || !dead(name.slice(pool.length + 1))) continue;
      await run(tier.host, ['zfs', 'destroy', name]);
      log.info(`${tier.host.name}: removed ${name}, left by an interrupted zbm files`);
    }
    const held = datasets.flatMap((d) => d.snapshots.filter((s) => s.userrefs > 0).map((s) => s.name));
    const left = held.length === 0 ? [] : await tier.zfs.holds(held);
    for (const h of left) {
      if (!h.tag.startsWith(HOLD_PREFIX) || !dead(h.tag.replace(HOLD_PREFIX, FILES_PREFIX))) continue;
      await tier.zfs.release(h.tag, [h.snapshot]);
      log.info(
        `${tier.host.name}: released the hold ${h.tag} on ${h.snapshot}, left by an interrupted zbm files`,
      );
    }
    const dirs = await run(tier.host, leftoverDirsArgv());
    for (const path of dirs.stdout.split('\n')) {
      if (path === '' || !dead(path.slice(path.lastIndexOf('/') + 1))) continue;
      await run(
        tier.host,
        path.startsWith(`${MOUNT_BASE}/`) ? removeMountpointArgv(path) : removeStagingArgv(path),
      );
    }
  } catch (err) {
    log.warn(`${tier.host.name}: cannot remove what an interrupted zbm files left: ${errorMessage(err)}`);
  }
}
