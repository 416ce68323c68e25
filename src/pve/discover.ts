import { readFile, readlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errorMessage, ZbmError } from '../errors.ts';
import { relativeTo } from '../zfs/names.ts';
import { type GuestConfig, parseGuestConfig } from './config.ts';
import { agentFreeze, type GuestDisk, type SkippedDisk, selectDisks } from './disks.ts';
import { guestLock } from './locks.ts';
import { parseStorageCfg, zfsPools } from './storage.ts';
import { type GuestType, NODE_NAME, parseVmlist } from './vmlist.ts';

export interface PveState {
  node: string;
  vmlist: string;
  storageCfg: string;
  /** vmid → raw config text of guests on this node */
  configs: ReadonlyMap<number, string>;
}

export interface Guest {
  vmid: number;
  type: GuestType;
  /** `name` for VMs, `hostname` for CTs, else '' */
  name: string;
  node: string;
  configText: string;
  config: GuestConfig;
  disks: GuestDisk[];
  skipped: SkippedDisk[];
  /** qemu && agentFreeze */
  freeze: boolean;
  /** Proxmox's `lock:` of the running config (src/pve/locks.ts), or null. */
  lock: string | null;
  /** `template: 1`: its disks never change, and its linked clones start from their `@__base__`. */
  template: boolean;
}

export interface Discovery {
  guests: Guest[];
  warnings: string[];
  /** guests that failed to parse: one bad config never stops the others */
  failed: { vmid: number; error: string }[];
}

export interface DiscoverOptions {
  /** Only disks below this dataset are backed up; others are reported. */
  localZfsRoot?: string;
  /** Only these guests (all of this node when absent or empty). */
  vmids?: number[];
  exclude?: number[];
  includeUnused?: boolean;
}

/** Where PVE keeps a guest's config, relative to /etc/pve. */
export function configPath(node: string, type: GuestType, vmid: number): string {
  return `nodes/${node}/${type === 'qemu' ? 'qemu-server' : 'lxc'}/${vmid}.conf`;
}

function guestOf(
  vmid: number,
  type: GuestType,
  node: string,
  configText: string,
  pools: ReturnType<typeof zfsPools>,
  opts: DiscoverOptions,
): Guest {
  const config = parseGuestConfig(configText);
  const { disks: selected, skipped } = selectDisks(type, config.current, pools, {
    includeUnused: opts.includeUnused ?? false,
    node,
  });
  const disks: GuestDisk[] = [];
  const root = opts.localZfsRoot;
  for (const d of selected) {
    // '' is the root itself: a guest disk never is, and it has no path below the root to back up to.
    const rel = root === undefined ? null : relativeTo(root, d.dataset);
    if (root !== undefined && (rel === null || rel === '')) {
      skipped.push({ key: d.key, value: d.value, reason: `not under --local-zfs-root ${root}`, warn: true });
    } else {
      disks.push(d);
    }
  }
  const own = (k: string) => (Object.hasOwn(config.current, k) ? (config.current[k] as string) : '');
  return {
    vmid,
    type,
    name: own(type === 'qemu' ? 'name' : 'hostname'),
    node,
    configText,
    config,
    disks,
    skipped,
    freeze: type === 'qemu' && agentFreeze(config.current),
    lock: guestLock(config.current),
    template: own('template') === '1',
  };
}

/**
 * Finds the guests of this node and the datasets of their disks. Problems with single guests end up
 * in warnings or failed, never as an exception: one odd guest must not stop the backup of the others.
 * Only a broken .vmlist or storage.cfg throws, as then no guest's disks can be trusted.
 */
export function discover(state: PveState, opts: DiscoverOptions): Discovery {
  const { entries, warnings } = parseVmlist(state.vmlist);
  const pools = zfsPools(parseStorageCfg(state.storageCfg));
  const failed: Discovery['failed'] = [];
  const guests: Guest[] = [];
  const wanted = opts.vmids && opts.vmids.length > 0 ? new Set(opts.vmids) : null;
  const excluded = new Set(opts.exclude ?? []);
  const byVmid = new Map(entries.map((e) => [e.vmid, e]));
  for (const vmid of wanted ?? []) {
    const e = byVmid.get(vmid);
    if (!e) warnings.push(`--vmid ${vmid} is unknown: it is not in /etc/pve/.vmlist`);
    else if (e.node !== state.node)
      warnings.push(`--vmid ${vmid} is on node ${e.node}, not on ${state.node}`);
  }
  for (const e of entries) {
    if (e.node !== state.node || excluded.has(e.vmid) || (wanted && !wanted.has(e.vmid))) continue;
    const text = state.configs.get(e.vmid);
    if (text === undefined) {
      failed.push({
        vmid: e.vmid,
        error: `guest ${e.vmid}: no config file ${configPath(e.node, e.type, e.vmid)}`,
      });
      continue;
    }
    let guest: Guest;
    try {
      guest = guestOf(e.vmid, e.type, e.node, text, pools, opts);
    } catch (err) {
      const why = errorMessage(err);
      failed.push({ vmid: e.vmid, error: `guest ${e.vmid} (${configPath(e.node, e.type, e.vmid)}): ${why}` });
      continue;
    }
    for (const s of guest.skipped) {
      if (s.warn) {
        warnings.push(`guest ${e.vmid}: ${s.key} ${JSON.stringify(s.value)} is not backed up: ${s.reason}`);
      }
    }
    guests.push(guest);
  }
  return { guests, warnings, failed };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ZbmError(`cannot read ${file}: ${errorMessage(err)}`);
  }
}

async function localNode(root: string): Promise<string> {
  try {
    // pmxcfs makes `local` a link to `nodes/<this node>`.
    return path.basename(await readlink(path.join(root, 'local')));
  } catch {
    return os.hostname().split('.')[0] ?? '';
  }
}

/** Reads what discover needs from /etc/pve (root), for this node unless node is given. */
export async function readPveState(root = '/etc/pve', node?: string): Promise<PveState> {
  const name = node ?? (await localNode(root));
  if (!NODE_NAME.test(name)) throw new ZbmError(`${JSON.stringify(name)} is not a Proxmox VE node name`);
  const vmlistFile = path.join(root, '.vmlist');
  const storageFile = path.join(root, 'storage.cfg');
  const [vmlist, storageCfg] = await Promise.all([readOptional(vmlistFile), readOptional(storageFile)]);
  if (vmlist === undefined) throw new ZbmError(`${vmlistFile} does not exist: is this a Proxmox VE host?`);
  if (storageCfg === undefined)
    throw new ZbmError(`${storageFile} does not exist: is this a Proxmox VE host?`);
  const mine = parseVmlist(vmlist).entries.filter((e) => e.node === name);
  const texts = await Promise.all(
    mine.map((e) => readOptional(path.join(root, configPath(name, e.type, e.vmid)))),
  );
  const configs = new Map<number, string>();
  mine.forEach((e, i) => {
    const text = texts[i];
    if (text !== undefined) configs.set(e.vmid, text);
  });
  return { node: name, vmlist, storageCfg, configs };
}
