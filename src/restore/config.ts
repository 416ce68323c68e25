/**
 * Guest config surgery for restores, on the text (so that comments, order and unknown keys stay as
 * the admin wrote them). Pure: randomness comes in as functions.
 */
import { splitLines, splitPropertyParts } from '../pve/text.ts';
import type { GuestType } from '../pve/vmlist.ts';
import { parseVolname, type Volname } from '../pve/volumes.ts';

/** A volume name as PVE gives zfspool volumes: plain VMID, a rest without white space. */
function pveVolname(own: string): Volname | null {
  const v = parseVolname(own);
  return v?.plainVmid && /^\S+$/.test(v.rest) ? v : null;
}

const QEMU_DISK = /^(?:ide[0-3]|sata[0-5]|scsi(?:[12]?\d|30)|virtio(?:\d|1[0-5])|efidisk0|tpmstate0)$/;
const LXC_MOUNT = /^(?:rootfs|mp(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5]))$/;
const UNUSED = /^unused(\d+)$/;
const SECTION = /^\[[^[\]\s]+\]\s*$/;
const ENTRY = /^([^:\s]+):(?:[ \t]+(.*?))?[ \t]*$/;
const MAC = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;

/** Whether key names a volume of a guest of this type (disks, mount points, detached volumes, RAM state). */
export function isVolumeKey(type: GuestType, key: string): boolean {
  if (UNUSED.test(key)) return true;
  return type === 'qemu' ? QEMU_DISK.test(key) || key === 'vmstate' : LXC_MOUNT.test(key);
}

/** Index of the part holding the volume: `file=`/`volume=`, else the first part without `=`. */
function volumeIndex(type: GuestType, parts: readonly string[]): number {
  const named = type === 'qemu' ? 'file=' : 'volume=';
  const i = parts.findIndex((p) => p.startsWith(named));
  return i >= 0 ? i : parts.findIndex((p) => p !== '' && !/^[a-z][a-z0-9_-]*=/.test(p));
}

/** The volume a config value names (`local-zfs:vm-100-disk-0`, `/dev/sdb`, `none`), or null. */
export function volumeOf(type: GuestType, value: string): string | null {
  const parts = splitPropertyParts(value);
  const i = volumeIndex(type, parts);
  if (i < 0) return null;
  const part = parts[i] as string;
  return /^(file|volume)=/.test(part) ? part.slice(part.indexOf('=') + 1) : part;
}

/** The value with its volume replaced, every option kept in place. */
export function replaceVolume(type: GuestType, value: string, volume: string): string {
  const parts = splitPropertyParts(value);
  const i = volumeIndex(type, parts);
  if (i < 0) return [volume, ...parts.filter((p) => p !== '')].join(',');
  const part = parts[i] as string;
  parts[i] = /^(file|volume)=/.test(part) ? `${part.slice(0, part.indexOf('=') + 1)}${volume}` : volume;
  return parts.join(',');
}

/** The option `name=` of a value, or undefined. */
export function optionOf(value: string, name: string): string | undefined {
  const part = splitPropertyParts(value).find((p) => p.startsWith(`${name}=`));
  return part?.slice(name.length + 1);
}

/**
 * The VMID that owns a storage volume (`local-zfs:vm-100-disk-0`, `local:102/vm-102-disk-0.qcow2`,
 * linked clones by their own part), or null for shared ones (ISO images, templates of others).
 */
export function ownerOf(volume: string): number | null {
  const colon = volume.indexOf(':');
  if (colon <= 0 || volume.startsWith('/')) return null;
  const last = volume.slice(volume.lastIndexOf('/') + 1);
  return pveVolname(last.slice(last.indexOf(':') + 1))?.vmid ?? null;
}

/** The storage id of a volume id, or null for paths and `none`. */
export function storageOf(volume: string): string | null {
  const colon = volume.indexOf(':');
  return colon > 0 && !volume.startsWith('/') ? volume.slice(0, colon) : null;
}

/**
 * The volume name a restored disk gets: the clone's own part of a linked clone (the restored disk
 * is a full copy), with the VMID replaced when it goes to another guest.
 * `vm-100-disk-0` → `vm-200-disk-0`, `base-100-disk-0/vm-101-disk-0` → `vm-200-disk-0`.
 */
export function renameVolname(volname: string, vmid: number): string {
  const own = volname.slice(volname.lastIndexOf('/') + 1);
  const v = pveVolname(own);
  if (!v) throw new Error(`${JSON.stringify(volname)} is not a volume name PVE gives ZFS volumes`);
  return `${v.kind}-${vmid}-${v.rest}`;
}

/** vm/base → vm, subvol/basevol → subvol: the kind of a new volume holding a copy of volname. */
export function volumeKind(volname: string): 'vm' | 'subvol' {
  const own = volname.slice(volname.lastIndexOf('/') + 1);
  return own.startsWith('subvol-') || own.startsWith('basevol-') ? 'subvol' : 'vm';
}

/** The lowest `<kind>-<vmid>-disk-N` not taken (volume names on the storage and in the config). */
export function nextDiskName(kind: 'vm' | 'subvol', vmid: number, taken: ReadonlySet<string>): string {
  for (let n = 0; ; n++) {
    const name = `${kind}-${vmid}-disk-${n}`;
    if (!taken.has(name)) return name;
  }
}

/** The lines of the current config: everything before the first `[section]`. */
function currentLines(text: string): string[] {
  const lines = splitLines(text);
  const end = lines.findIndex((l) => SECTION.test(l));
  return end < 0 ? lines : lines.slice(0, end);
}

/** Every volume the config names, in any section (snapshots keep volumes alive too). */
export function referencedVolnames(type: GuestType, text: string): Set<string> {
  const names = new Set<string>();
  for (const line of splitLines(text)) {
    const m = ENTRY.exec(line);
    if (!m?.[1] || !isVolumeKey(type, m[1])) continue;
    const vol = volumeOf(type, m[2] ?? '');
    const storage = vol === null ? null : storageOf(vol);
    if (vol !== null && storage !== null) names.add(vol.slice(storage.length + 1).replace(/^.*\//, ''));
  }
  return names;
}

/**
 * PVE's MAC prefix for new guests: `mac_prefix` of /etc/pve/datacenter.cfg, else Proxmox's own
 * OUI BC:24:11 (the default since PVE 8.1).
 */
export function macPrefix(datacenterCfg: string | undefined): string {
  for (const line of splitLines(datacenterCfg ?? '')) {
    const m = /^mac_prefix:\s*([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){0,4})\s*$/.exec(line);
    if (m?.[1]) return m[1].toUpperCase();
  }
  return 'BC:24:11';
}

/** A MAC with prefix, filled with random bytes; a bare random one is made locally administered unicast. */
export function generateMac(prefix: string, random: Uint8Array): string {
  const head = prefix === '' ? [] : prefix.split(':');
  const bytes = [...random].slice(0, 6 - head.length).map((b) => b.toString(16).padStart(2, '0'));
  if (head.length === 0 && bytes[0] !== undefined) {
    bytes[0] = ((Number.parseInt(bytes[0], 16) & 0xfe) | 0x02).toString(16).padStart(2, '0');
  }
  return [...head, ...bytes].join(':').toUpperCase();
}

export interface RewriteInput {
  readonly text: string;
  readonly type: GuestType;
  /** The guest the backup is of, and the guest the config is for. */
  readonly fromVmid: number;
  readonly toVmid: number;
  /** Config key → the restored disk's new volume id. */
  readonly volumes: ReadonlyMap<string, string>;
  /** Set: every netN gets a new MAC address from it. */
  readonly newMac?: () => string;
  readonly newUuid: () => string;
  /** Restore the keys that run code or open host resources on this node (isHostKey) as they are. */
  readonly keepHostKeys?: boolean;
}

/**
 * Keys of a guest config that make the restore host run code or hand the guest its resources:
 * `hookscript` (a script PVE runs at every start and stop), QEMU's raw `args` (`-netdev
 * tap,script=...` runs a program) and every raw `lxc.*` key (`lxc.hook.*` runs programs,
 * `lxc.mount.entry` and `lxc.cgroup*` expose the host's files and devices). A config comes from
 * the backup server, where whoever took over a node could have written it: restored only on request.
 */
export function isHostKey(type: GuestType, key: string): boolean {
  return key === 'hookscript' || (type === 'qemu' ? key === 'args' : key.startsWith('lxc.'));
}

export interface Rewritten {
  readonly text: string;
  /** Lines left out, and why (volumes of the old guest that are not in the backup). */
  readonly dropped: readonly { key: string; value: string; reason: string }[];
  /** Volumes kept as they were although they were not restored (same guest: they are its own). */
  readonly untouched: readonly { key: string; volume: string }[];
}

/**
 * The config a restored guest gets: the backup's current section only (PVE snapshots and
 * `parent:` name snapshots the restored disks do not have) without `lock:`, the restored disks' new volumes, a
 * new vmgenid (as PVE's own restore does, so that the OS inside knows it was restored), new MACs
 * on request. For another VMID, every volume the old guest owns that was not restored is left
 * out: the new guest must never share a disk with the original one.
 */
export function rewriteConfig(input: RewriteInput): Rewritten {
  const { type } = input;
  const out: string[] = [];
  const dropped: { key: string; value: string; reason: string }[] = [];
  const untouched: { key: string; volume: string }[] = [];
  const otherGuest = input.fromVmid !== input.toVmid;
  for (const line of currentLines(input.text)) {
    const m = ENTRY.exec(line);
    const key = m?.[1];
    if (!m || key === undefined || line.startsWith('#')) {
      out.push(line);
      continue;
    }
    const value = m[2] ?? '';
    // Proxmox's lock of the backed-up guest (`lock: fstrim` is backed up) is no lock of the
    // restored one; Proxmox's own restore drops it too.
    if (key === 'parent' || key === 'lock') continue;
    if (!input.keepHostKeys && isHostKey(type, key)) {
      dropped.push({
        key,
        value,
        reason: `"${key}: ${value}" runs code or opens host resources on this node (restore it with --keep-host-keys once checked)`,
      });
      continue;
    }
    const restored = input.volumes.get(key);
    if (restored !== undefined) {
      out.push(`${key}: ${replaceVolume(type, value, restored)}`);
      continue;
    }
    if (isVolumeKey(type, key)) {
      const vol = volumeOf(type, value);
      const owner = vol === null ? null : ownerOf(vol);
      if (vol !== null && owner === input.fromVmid) {
        if (otherGuest) {
          dropped.push({
            key,
            value,
            reason: `${vol} belongs to guest ${input.fromVmid} and is not in the backup`,
          });
          continue;
        }
        untouched.push({ key, volume: vol });
      }
      out.push(line);
      continue;
    }
    if (type === 'qemu' && key === 'vmgenid' && value !== '0' && value !== '') {
      out.push(`vmgenid: ${input.newUuid()}`);
      continue;
    }
    if (input.newMac && /^net\d+$/.test(key)) {
      const parts = splitPropertyParts(value).map((p) => {
        const eq = p.indexOf('=');
        return eq > 0 && MAC.test(p.slice(eq + 1)) ? `${p.slice(0, eq + 1)}${input.newMac?.()}` : p;
      });
      out.push(`${key}: ${parts.join(',')}`);
      continue;
    }
    out.push(line);
  }
  while (out.length > 0 && (out.at(-1) as string).trim() === '') out.pop();
  return { text: `${out.join('\n')}\n`, dropped, untouched };
}

/**
 * Adds a detached volume to a config as the lowest free `unusedN` of the current section,
 * after its last line (PVE snapshots below stay as they are).
 */
export function addUnused(text: string, volume: string): { text: string; key: string } {
  const lines = splitLines(text);
  if (lines.at(-1) === '') lines.pop();
  let end = lines.findIndex((l) => SECTION.test(l));
  if (end < 0) end = lines.length;
  const used = new Set<number>();
  for (const l of lines.slice(0, end)) {
    const m = ENTRY.exec(l);
    const u = m?.[1] ? UNUSED.exec(m[1]) : null;
    if (u) used.add(Number(u[1]));
  }
  let n = 0;
  while (used.has(n)) n++;
  const key = `unused${n}`;
  let at = end;
  while (at > 0 && (lines[at - 1] as string).trim() === '') at--;
  lines.splice(at, 0, `${key}: ${volume}`);
  return { text: `${lines.join('\n')}\n`, key };
}
