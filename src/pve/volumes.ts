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

/** The datasets of guest vmid among names: Proxmox's volume names for it (`qm disk rescan`'s rule). */
export function isVolumeOf(dataset: string, vmid: number): boolean {
  const own = dataset.slice(dataset.lastIndexOf('/') + 1);
  const m = /^(?:vm|base|subvol|basevol)-(\d+)-/.exec(own);
  return m !== null && Number(m[1]) === vmid;
}
