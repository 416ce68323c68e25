import { errorMessage } from '../errors.ts';
import { nameProblem } from '../zfs/names.ts';
import type { ZfsPool } from './storage.ts';
import { compareNatural, parseBool, splitPropertyParts } from './text.ts';
import type { GuestType } from './vmlist.ts';
import { proxmoxVolume } from './volumes.ts';

export interface GuestDisk {
  key: string;
  storage: string;
  volname: string;
  dataset: string;
  /** full config value */
  value: string;
}

export interface SkippedDisk {
  key: string;
  value: string;
  reason: string;
  /** true when the admin must be told (a disk zbm cannot back up); false for expected exclusions like cdrom, backup=0, bind mounts, unused */
  warn: boolean;
}

export interface SelectOptions {
  /** Back up detached `unusedN` volumes too. */
  includeUnused?: boolean;
  /** The node the guest runs on: a storage limited to other nodes (`nodes`) is reported. */
  node?: string;
}

const QEMU_DISK = /^(?:ide[0-3]|sata[0-5]|scsi(?:[12]?\d|30)|virtio(?:\d|1[0-5])|efidisk0|tpmstate0)$/;
const LXC_MOUNT = /^mp(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])$/;
const UNUSED = /^unused(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])$/;
/** pve-storage's zfspool volume name; group 5 is the volume's own dataset (for a linked clone too). */
const VOLNAME = /^(((base|basevol)-(\d+)-\S+)\/)?((base|basevol|vm|subvol)-(\d+)-\S+)$/;
const OPTION = /^([a-z][a-z0-9_-]*)=(.*)$/s;

/**
 * Splits a PVE property string (`local-zfs:vm-1-disk-0,size=8G`): a part without `name=` belongs to
 * defaultKey. Commas inside double quotes do not split.
 */
export function parsePropertyString(value: string, defaultKey: string): Map<string, string> {
  const parts = splitPropertyParts(value);
  const props = new Map<string, string>();
  for (const p of parts) {
    if (p === '') continue;
    const m = OPTION.exec(p);
    const [key, val] = m ? [m[1] as string, m[2] as string] : [defaultKey, p];
    if (props.has(key)) throw new Error(`"${key}" is given twice`);
    props.set(key, val);
  }
  return props;
}

type Decision = { disk: Omit<GuestDisk, 'key' | 'value'> } | { skip: string; warn: boolean } | null;

const skip = (reason: string, warn: boolean): Decision => ({ skip: reason, warn });

/** Maps a `storage:volname` volume id to its dataset, or says why it cannot be backed up. */
function resolveVolume(volume: string, pools: ReadonlyMap<string, ZfsPool>, node?: string): Decision {
  const colon = volume.indexOf(':');
  if (colon <= 0) return skip(`${JSON.stringify(volume)} is not a storage volume id`, true);
  const storage = volume.slice(0, colon);
  const volname = volume.slice(colon + 1);
  const name = JSON.stringify(storage);
  const pool = pools.get(storage);
  if (!pool) {
    return skip(
      `storage ${name} is not a zfspool storage; zbm only backs up volumes on zfspool storage`,
      true,
    );
  }
  if (pool.disabled) return skip(`zfspool storage ${name} is disabled in storage.cfg`, true);
  if (node !== undefined && pool.nodes !== null && !pool.nodes.includes(node)) {
    return skip(
      `zfspool storage ${name} is not enabled on node ${node} (nodes ${pool.nodes.join(',')})`,
      true,
    );
  }
  if (pool.pool === '') return skip(`zfspool storage ${name} has no pool in storage.cfg`, true);
  const m = VOLNAME.exec(volname);
  if (!m) return skip(`${JSON.stringify(volname)} is not a volume name PVE gives ZFS volumes`, true);
  const own = m[5] as string;
  // PVE's pattern lets the name part contain "/", but PVE never creates nested volumes: refuse them.
  if (own.includes('/')) return skip(`${JSON.stringify(volname)} names a nested dataset`, true);
  const proxmox = proxmoxVolume(own);
  if (proxmox) return skip(proxmox, false);
  const dataset = `${pool.pool}/${own}`;
  const problem = nameProblem(dataset, 'dataset');
  if (problem) return skip(`dataset ${JSON.stringify(dataset)} is not a valid ZFS name: ${problem}`, true);
  return { disk: { storage, volname, dataset } };
}

function decideQemu(key: string, value: string, includeUnused: boolean): Decision | { volume: string } {
  if (key === 'vmstate') return skip('RAM state of a hibernated VM, not a disk', false);
  const unused = UNUSED.test(key);
  if (!unused && !QEMU_DISK.test(key)) return null;
  if (unused && !includeUnused) return skip('detached (unused) volume', false);
  const props = parsePropertyString(value, 'file');
  const volume = props.get('file') ?? '';
  if (props.get('media') === 'cdrom') return skip('CD-ROM drive', false);
  if (volume === 'none') return skip('empty drive', false);
  if (volume === 'cdrom') return skip('host CD-ROM drive', false);
  if (volume.startsWith('/')) return skip('host device or file, not a storage volume', false);
  if (parseBool(props.get('backup')) === false) return skip('excluded from backups (backup=0)', false);
  return { volume };
}

function decideLxc(key: string, value: string, includeUnused: boolean): Decision | { volume: string } {
  const unused = UNUSED.test(key);
  if (key !== 'rootfs' && !unused && !LXC_MOUNT.test(key)) return null;
  if (unused && !includeUnused) return skip('detached (unused) volume', false);
  const props = parsePropertyString(value, 'volume');
  const volume = props.get('volume') ?? '';
  if (volume.startsWith('/')) return skip('bind mount, not a storage volume', false);
  // vzdump's rule: the root file system always, other mount points only when asked for.
  if (LXC_MOUNT.test(key) && parseBool(props.get('backup')) !== true) {
    return skip('mount point without backup=1', false);
  }
  return { volume };
}

/**
 * Decides, for each line of a guest's running config, whether it is a disk zbm backs up (and which
 * dataset holds it) or why not. The rules follow vzdump's, so that zbm backs up what PVE's own backups
 * would; a volume zbm cannot handle (not on zfspool storage) is reported rather than silently missed.
 */
export function selectDisks(
  type: GuestType,
  current: Readonly<Record<string, string>>,
  pools: ReadonlyMap<string, ZfsPool>,
  opts: SelectOptions = {},
): { disks: GuestDisk[]; skipped: SkippedDisk[] } {
  const disks: GuestDisk[] = [];
  const skipped: SkippedDisk[] = [];
  const byDataset = new Map<string, string>();
  const keys = Object.keys(current).sort(compareNatural);
  for (const key of keys) {
    const value = current[key] as string;
    let decision: Decision;
    try {
      const d =
        type === 'qemu'
          ? decideQemu(key, value, opts.includeUnused ?? false)
          : decideLxc(key, value, opts.includeUnused ?? false);
      decision = d !== null && 'volume' in d ? resolveVolume(d.volume, pools, opts.node) : d;
    } catch (err) {
      decision = skip(`cannot parse the value: ${errorMessage(err)}`, true);
    }
    if (decision === null) continue;
    if ('skip' in decision) {
      skipped.push({ key, value, reason: decision.skip, warn: decision.warn });
      continue;
    }
    const first = byDataset.get(decision.disk.dataset);
    if (first !== undefined) {
      skipped.push({ key, value, reason: `same dataset as ${first}`, warn: false });
      continue;
    }
    byDataset.set(decision.disk.dataset, key);
    disks.push({ key, value, ...decision.disk });
  }
  return { disks, skipped };
}

/**
 * Whether PVE would freeze the guest's file systems through the QEMU guest agent before a snapshot:
 * the agent is enabled and freezing is not turned off.
 */
export function agentFreeze(current: Readonly<Record<string, string>>): boolean {
  if (!Object.hasOwn(current, 'agent')) return false;
  let props: Map<string, string>;
  try {
    props = parsePropertyString(current.agent as string, 'enabled');
  } catch {
    return false;
  }
  if (parseBool(props.get('enabled')) !== true) return false;
  return parseBool(props.get('freeze-fs')) !== false && parseBool(props.get('freeze-fs-on-backup')) !== false;
}
