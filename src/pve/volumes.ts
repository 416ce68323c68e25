/**
 * What Proxmox VE names on ZFS for its own use (docs/proxmox.md): snapshots it makes and destroys
 * itself, and volumes that are no guest disk. zbm never sends, destroys or builds on them.
 */

/** A template's snapshot: `zfs snapshot <base-…>@__base__`, the origin of every linked clone. */
export const TEMPLATE_SNAPSHOT = '__base__';

/** How Proxmox's own snapshot names begin: zbm's prefix must not be one of them, nor begin one. */
export const PROXMOX_SNAPSHOT_NAMES = ['__replicate_', '__migration__', 'vzdump', TEMPLATE_SNAPSHOT] as const;

/**
 * Proxmox's own snapshots: `@__replicate_<job>_<time>__` (pvesr), `@__migration__` (offline
 * migration), `@vzdump` (a CT backup in snapshot mode), `@__base__` (a template). The first three
 * live for one operation; Proxmox destroys them itself.
 */
export function isProxmoxSnapshot(short: string): boolean {
  return (
    /^__replicate_/.test(short) ||
    short === '__migration__' ||
    short === 'vzdump' ||
    short === TEMPLATE_SNAPSHOT
  );
}

/**
 * Volumes Proxmox makes for a guest that are no disk of it: the RAM state of a snapshot or of a
 * hibernation (`vm-<id>-state-<name>`, `vm-<id>-state-suspend-<date>`) and vzdump's fleecing images
 * (`vm-<id>-fleece-<n>`). The reason when volname is one of them, else null.
 */
export function proxmoxVolume(volname: string): string | null {
  const own = volname.slice(volname.lastIndexOf('/') + 1);
  if (/^vm-\d+-state-/.test(own))
    return "Proxmox's RAM state volume of a snapshot or hibernation, not a disk";
  if (/^vm-\d+-fleece-/.test(own)) return "vzdump's fleecing image, not a disk";
  return null;
}

/** Proxmox's name of a guest's ZFS volume, `<kind>-<vmid>-<rest>` (`vm-100-disk-0`, `base-9000-disk-0`). */
export interface Volname {
  readonly kind: 'vm' | 'subvol' | 'base' | 'basevol';
  readonly vmid: number;
  /** The VMID is written as Proxmox writes it: from 1, without leading zeros. */
  readonly plainVmid: boolean;
  readonly rest: string;
}

const VOLNAME = /^(vm|subvol|base|basevol)-(\d+)-(.*)$/s;

/**
 * The parts of own (one volume name, not a path) as Proxmox names volumes for a guest (the rule
 * `qm disk rescan` uses), or null. Callers that build on the name ask for more (plainVmid, rest).
 */
export function parseVolname(own: string): Volname | null {
  const m = VOLNAME.exec(own);
  if (!m) return null;
  const [, kind, digits = '', rest = ''] = m;
  return { kind: kind as Volname['kind'], vmid: Number(digits), plainVmid: /^[1-9]/.test(digits), rest };
}

/** The datasets of guest vmid among names: Proxmox's volume names for it (`qm disk rescan`'s rule). */
export function isVolumeOf(dataset: string, vmid: number): boolean {
  return parseVolname(dataset.slice(dataset.lastIndexOf('/') + 1))?.vmid === vmid;
}
