/** The original design's commands, word for word, as the lab's tests and the demo run them. */
export const BACKUP_PVE = [
  'backup-pve',
  '--remote',
  'zbm-dest',
  '--prefix',
  'bak-zbm-',
  '--local-zfs-root',
  'rpool/data',
  '--remote-zfs-root',
  'main/bak-zbm',
  '--remote-metadata-dir',
  '/root/backups_metadata',
  '-y',
] as const;

export const REPLICATE = [
  'replicate',
  '--remote',
  'zbm-replica',
  '--remote-zfs-root',
  'main/bak-zbm',
  '--local-zfs-root',
  'main/bak-zbm',
] as const;

/** The original design's prune on the backup server. */
export const PRUNE_DEST = [
  'prune',
  '--local-zfs-root',
  'main/bak-zbm',
  '--prefix',
  'bak-zbm-',
  '--keep-last',
  '2',
  '--keep-hourly',
  '2',
  '--remote',
  'zbm-replica',
  '--remote-zfs-root',
  'main/bak-zbm',
  '-y',
] as const;

/** A prune on the backup server that keeps only each dataset's newest backup: no next tier named. */
export const PRUNE_DEST_KEEP_ONE = [
  'prune',
  '--local-zfs-root',
  'main/bak-zbm',
  '--prefix',
  'bak-zbm-',
  '--keep-last',
  '1',
  '-y',
] as const;

/** The replica's prune, with the longer rules of the prune issue. */
export const PRUNE_REPLICA = [
  'prune',
  '--local-zfs-root',
  'main/bak-zbm',
  '--prefix',
  'bak-zbm-',
  '--keep-last',
  '5',
  '--keep-hourly',
  '24',
  '--keep-daily',
  '30',
  '--keep-monthly',
  '12',
  '-y',
] as const;

/** The original design's verify (with --min-snapshots as the caller needs it). */
export const verifyCommand = (minSnapshots: number) =>
  [
    'verify',
    '--local-zfs-root',
    'main/bak-zbm',
    '--prefix',
    'bak-zbm-',
    '--max-age-days',
    '1',
    '--min-snapshots',
    String(minSnapshots),
  ] as const;

/**
 * The disks BACKUP_PVE takes from lab-reset's guests, by vzdump's rules: not 101's backup=0 disk
 * nor its unused one, not 102's disk on dir storage, not 103's mount point without backup=1.
 */
export const BACKED_UP = [
  'subvol-103-disk-0',
  'subvol-103-disk-1',
  'subvol-104-disk-0',
  'vm-100-disk-0',
  'vm-100-disk-1',
  'vm-100-disk-2',
  'vm-100-disk-3',
  'vm-101-disk-0',
  'vm-102-disk-0',
] as const;
