import { resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { HOLD_TAG_SYNTAX, stampAsIso } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import { parseBrowsePath } from '../files/entries.ts';
import { parseByteSize } from '../host/rate.ts';
import { parseSshDestination } from '../host/ssh.ts';
import { PROXMOX_SNAPSHOT_NAMES } from '../pve/volumes.ts';
import { fromWallClock, processZone } from '../time/zone.ts';
import { checkName, checkSnapshotShortName } from '../zfs/names.ts';

/** Turns a validator that throws into a commander argument parser (a usage error, exit 2). */
function parser<T>(check: (value: string) => T): (value: string) => T {
  return (value: string) => {
    try {
      return check(value);
    } catch (err) {
      throw new InvalidArgumentError(errorMessage(err));
    }
  };
}

export const dataset = parser((v) => checkName(v, 'dataset', 'dataset name'));

export const prefix = parser((v) => {
  checkSnapshotShortName(v, 'snapshot prefix');
  const clash = PROXMOX_SNAPSHOT_NAMES.find((n) => n.startsWith(v) || v.startsWith(n));
  if (clash)
    throw new Error(
      `Proxmox names its own snapshots ${clash}...: zbm would take them for its own (choose a prefix such as bak-zbm-)`,
    );
  return v;
});

export const remote = parser(parseSshDestination);

/** A hold tag zbm puts on a base: `zbm-base:<source>:<target>`. */
export const holdTag = parser((v) => {
  if (!HOLD_TAG_SYNTAX.test(v))
    throw new Error('expected zbm-base:<source>:<target> (letters, digits and ._@-)');
  return v;
});

export const count = parser((v) => {
  if (!/^\d+$/.test(v)) throw new Error('expected a whole number (0 or more)');
  return Number(v);
});

/** A number of things to take, at least one. */
export const positiveCount = parser((v) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error('expected a whole number (1 or more)');
  return Number(v);
});

/** Concurrent transfers: a few, within sshd's default of 10 sessions per connection (MaxSessions). */
export const MAX_JOBS = 8;

export const jobs = parser((v) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAX_JOBS)
    throw new Error(`expected a whole number from 1 to ${MAX_JOBS}`);
  return Number(v);
});

export const positiveNumber = parser((v) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new Error('expected a number greater than 0');
  return n;
});

/** Bytes per second; a bare number is KiB/s, the unit of vzdump's and Proxmox's bwlimit. */
export const byteRate = parser((v) => {
  const n = parseByteSize(v, 1024);
  if (n === null)
    throw new Error(
      'expected a rate per second: KiB/s as a bare number (50000), or with a unit: 800K, 50M, 1G',
    );
  return n;
});

/** A config file: relative to the current directory, as any file name a user types. */
export const configPath = parser((v) => {
  if (v === '' || v.includes('\0') || v.includes('\n')) throw new Error('expected a file name');
  return resolve(v);
});

export const absolutePath = parser((v) => {
  if (!v.startsWith('/') || v.includes('\0') || v.includes('\n'))
    throw new Error('expected an absolute path');
  return v.replace(/\/+$/, '') || '/';
});

/** A comma-separated list of VMIDs, accumulated over repeated flags. */
export function vmids(value: string, previous: number[] = []): number[] {
  const ids = value.split(',').map((s) => s.trim());
  for (const id of ids) {
    if (!/^[1-9]\d{2,8}$/.test(id)) {
      throw new InvalidArgumentError(`${JSON.stringify(id)} is not a VMID (a number from 100)`);
    }
  }
  return [...previous, ...ids.map(Number)];
}

/**
 * A mail recipient for notifications: an address, or a local user name (`root`), which `sendmail -t`
 * delivers locally (or by its aliases), as Proxmox VE mails root. It goes into a To header, so no
 * line break, comma, angle bracket or quote can slip in (one recipient per flag).
 */
export function mailAddresses(value: string, previous: string[] = []): string[] {
  const address = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$/;
  const localUser = /^[a-z_][a-z0-9_.-]{0,31}$/;
  if (!(address.test(value) || localUser.test(value)) || value.startsWith('-')) {
    throw new InvalidArgumentError(
      `${JSON.stringify(value)} is not a mail address such as root@example.com nor a local user such as root`,
    );
  }
  return [...previous, value];
}

/** An http(s) URL for webhook notifications, accumulated over repeated flags. */
export function webhookUrls(value: string, previous: string[] = []): string[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected an http:// or https:// URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`expected an http:// or https:// URL, not ${url.protocol}`);
  }
  return [...previous, value];
}

/** One VMID (100 to 999999999). */
export const vmid = parser((v) => {
  if (!/^[1-9]\d{2,8}$/.test(v)) throw new Error('expected a VMID (a number from 100)');
  return Number(v);
});

/** The one guest a restore works on: a list is refused as such, not as a malformed number. */
export const oneVmid = parser((v) => {
  if (v.includes(',')) throw new Error('a restore takes one guest: run one zbm restore per VMID');
  if (!/^[1-9]\d{2,8}$/.test(v)) throw new Error('expected a VMID (a number from 100)');
  return Number(v);
});

/** The short name of a snapshot (after `@`). */
export const snapshotShortName = parser((v) => checkSnapshotShortName(v, 'snapshot name'));

/**
 * A point in time: ISO 8601 (`2026-11-26T11:05:03Z`, `2026-11-26 11:05`; without a zone it is local
 * time) or the time in a zbm snapshot name (`20261126T110503Z`).
 */
export const pointInTime = parser((v) => {
  const text = stampAsIso(v) ?? v;
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?(Z|[+-]\d{2}:?\d{2})?$/.exec(
    text,
  );
  if (!m) throw new Error('expected a time such as 2026-11-26T11:05:03Z or 20261126T110503Z');
  const [, day, clock = '00:00', zone] = m;
  // Without an offset it is local time: the host's TZ as libc reads it, like every other tool here.
  const wall = Date.parse(`${day}T${clock}${zone ?? 'Z'}`);
  if (!Number.isFinite(wall))
    throw new Error('expected a time such as 2026-11-26T11:05:03Z or 20261126T110503Z');
  return new Date(zone ? wall : fromWallClock(processZone(), wall / 1000) * 1000);
});

/** A PVE storage id (`local-zfs`). */
export const storageId = parser((v) => {
  if (!/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v))
    throw new Error('expected a Proxmox storage id such as local-zfs');
  return v;
});

/** A guest config key of a disk (`scsi1`, `efidisk0`, `rootfs`, `mp0`). */
export const diskKey = parser((v) => {
  if (!/^[a-z]+\d*$/.test(v)) throw new Error('expected a config key such as scsi0, virtio1, rootfs or mp0');
  return v;
});

/** A path inside a backed-up disk, normalised to `/a/b` (`/` is the root); `..` is refused. */
export const browsePath = parser((v) => {
  const parsed = parseBrowsePath(v);
  if ('error' in parsed) throw new Error(parsed.error);
  return `/${parsed.components.join('/')}`;
});
