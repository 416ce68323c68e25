/**
 * A VM disk's layout as `blkid -p` probes it (in the sandbox) on the read-only clone and each of
 * the partitions the kernel found on it, and which file systems `zbm files` reads. Pure.
 */

/** File systems 7-Zip reads in user space (lsblk's names), and how the README names them. */
export const SUPPORTED_FILESYSTEMS: Readonly<Record<string, string>> = {
  ext2: 'ext2',
  ext3: 'ext3',
  ext4: 'ext4',
  vfat: 'FAT (EFI system partitions)',
  ntfs: 'NTFS',
};

/** Why the others are refused, for those a Proxmox guest commonly has. */
const REFUSED: Readonly<Record<string, string>> = {
  xfs: "no user-space reader can copy files out of XFS on Debian 12 (7-Zip has no XFS; xfsprogs 6.1's xfs_db lists directories but cannot extract)",
  LVM2_member:
    'LVM inside the guest: no user-space reader for logical volumes; restore the disk (zbm restore --disk) and read it in a guest',
  btrfs: '7-Zip does not read btrfs',
  swap: 'a swap partition holds no files',
  crypto_LUKS: 'an encrypted (LUKS) partition cannot be read without its key',
  zfs_member: 'a ZFS pool inside the guest: restore the disk and import it in a guest',
};

export interface Partition {
  /** The kernel's number: `-partN` of the zvol, GPT entry or MBR slot. */
  readonly number: number;
  /** The partition's type in the table: a GPT type GUID or an MBR type (`0x5`); null if none. */
  readonly type: string | null;
  readonly size: number;
  readonly fstype: string | null;
  readonly label: string | null;
}

export interface Layout {
  /** `gpt`, `dos` (MBR), or null: a file system (or nothing known) on the whole disk. */
  readonly table: string | null;
  readonly fstype: string | null;
  readonly partitions: readonly Partition[];
}

/**
 * Parses the probe's output: for the disk and then each partition, `DEVICE=<path>` and blkid's
 * `KEY=value` lines (`blkid -p -o export`), blocks separated by an empty line. A partition's
 * number is the kernel's (`-partN` of the zvol); sizes are blkid's 512-byte sectors.
 */
export function parseLayout(text: string): Layout {
  const blocks = text
    .split(/\n\s*\n/)
    .map(
      (b) =>
        new Map(
          b.split('\n').flatMap((l) => {
            const i = l.indexOf('=');
            return i > 0 ? [[l.slice(0, i), l.slice(i + 1)] as const] : [];
          }),
        ),
    )
    .filter((m) => m.has('DEVICE'));
  const [disk, ...parts] = blocks;
  const field = (m: Map<string, string> | undefined, k: string) => {
    const v = m?.get(k);
    return v === undefined || v === '' ? null : v;
  };
  const partitions = parts
    .map(
      (m): Partition => ({
        number: Number(/-part(\d+)$/.exec(m.get('DEVICE') ?? '')?.[1] ?? 0),
        type: field(m, 'PART_ENTRY_TYPE')?.toLowerCase() ?? null,
        size: Number(field(m, 'PART_ENTRY_SIZE') ?? 0) * 512,
        fstype: field(m, 'TYPE'),
        label: field(m, 'PART_ENTRY_NAME') ?? field(m, 'LABEL'),
      }),
    )
    .filter((p) => p.number > 0)
    .sort((a, b) => a.number - b.number);
  return { table: field(disk, 'PTTYPE'), fstype: field(disk, 'TYPE'), partitions };
}

/**
 * Partitions that never hold a file system: GRUB's BIOS boot partition, Windows' reserved
 * partition, and an MBR's extended partition (a container of logical ones).
 */
const NO_FILE_SYSTEM: Readonly<Record<string, string>> = {
  '21686148-6449-6e6f-744e-656564454649': 'BIOS boot partition',
  'e3c9e316-0b5c-4db8-817d-f92df00215ae': 'Microsoft reserved partition',
  '0x5': 'extended partition',
  '0xf': 'extended partition',
  '0x85': 'extended partition',
};

/** What a partition is when it is meant to hold no file system, else null. */
export function withoutFileSystem(p: Partition): string | null {
  return p.type === null ? null : (NO_FILE_SYSTEM[p.type] ?? null);
}

/** Why a file system cannot be read, or null when it can. */
export function refusal(fstype: string | null): string | null {
  if (fstype !== null && fstype in SUPPORTED_FILESYSTEMS) return null;
  if (fstype === null) return 'no file system that zbm can recognise';
  return `${fstype}: ${REFUSED[fstype] ?? 'not a file system zbm reads'}; zbm reads ${Object.keys(SUPPORTED_FILESYSTEMS).join(', ')}`;
}

export type Located =
  | { readonly partition: number | null; readonly fstype: string; readonly rest: readonly string[] }
  | { readonly table: Layout }
  | { readonly error: string };

/**
 * Where a path of a VM disk leads: on a partitioned disk the first component is the partition's
 * number (`/2/etc/hostname`) and `/` lists the partitions; otherwise the file system on the disk.
 */
export function locate(layout: Layout, components: readonly string[]): Located {
  if (layout.table === null && layout.partitions.length === 0) {
    const why = refusal(layout.fstype);
    return why
      ? { error: `the disk: ${why}` }
      : { partition: null, fstype: layout.fstype as string, rest: components };
  }
  const [first, ...rest] = components;
  if (first === undefined) return { table: layout };
  const p = layout.partitions.find((x) => String(x.number) === first);
  if (!p) {
    const have = layout.partitions.map((x) => x.number).join(', ') || 'none';
    return {
      error: `the disk has no partition ${first} (partitions: ${have}); a path starts with the partition's number, as in /1/etc`,
    };
  }
  const why = refusal(p.fstype);
  return why
    ? { error: `partition ${p.number}: ${why}` }
    : { partition: p.number, fstype: p.fstype as string, rest };
}
