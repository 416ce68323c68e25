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
