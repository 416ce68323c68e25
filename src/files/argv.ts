/**
 * Command lines of `zbm files` on the tier that holds the backup and on this host. Pure. A guest's
 * file system is never mounted: 7-Zip reads it in user space, as nobody, with no network and no
 * privileges (SANDBOX). A container's subvol is ZFS itself, mounted read-only from a clone.
 */
import { FIND_FORMAT } from './entries.ts';

/** nobody:nogroup on Debian and Proxmox: owns nothing, so the reader can touch nothing. */
export const SANDBOX_ID = 65534;

/** Runs argv without network, as nobody, with no capabilities and no way to regain any. */
export function sandboxed(argv: readonly string[]): string[] {
  return [
    'unshare',
    '--net',
    '--',
    'setpriv',
    `--reuid=${SANDBOX_ID}`,
    `--regid=${SANDBOX_ID}`,
    '--clear-groups',
    '--no-new-privs',
    '--bounding-set=-all',
    '--inh-caps=-all',
    '--',
    ...argv,
  ];
}

/** What a clone's name, its mount point, a staging directory and a hold tag of one run start with. */
export const FILES_PREFIX = 'zbm-files-';

/** The run's own names: host and pid say whose they are, so a later run can tell leftovers. */
export function runName(hostname: string, pid: number): string {
  return `${FILES_PREFIX}${hostname.replace(/[^A-Za-z0-9_.-]/g, '_')}-${pid}`;
}

/** The pid in a name this host's runs made, or null for another host's (or no such name). */
export function pidOfRunName(name: string, hostname: string): number | null {
  const own = runName(hostname, 0).slice(0, -1);
  if (!name.startsWith(own)) return null;
  const pid = name.slice(own.length);
  return /^[1-9]\d*$/.test(pid) ? Number(pid) : null;
}

export const MOUNT_BASE = '/run/zbm-files';
export const STAGING_BASE = '/var/tmp';

/**
 * The read-only clone of a restore point: a zvol whose partitions the kernel shows (as it does
 * for every zvol) but whose file systems nothing mounts; a subvol mounted read-only where nothing
 * else looks.
 */
export function cloneArgv(snapshot: string, clone: string, volume: boolean, name: string): string[] {
  const props = volume
    ? ['-o', 'volmode=full']
    : [
        '-o',
        `mountpoint=${MOUNT_BASE}/${name}`,
        '-o',
        'canmount=on',
        '-o',
        'setuid=off',
        '-o',
        'devices=off',
        '-o',
        'exec=off',
      ];
  return ['zfs', 'clone', '-o', 'readonly=on', ...props, snapshot, clone];
}

/**
 * Waits for udev to make the clone's device links, then hands the devices (the disk and its
 * partitions) to the sandbox's user, which may then read them and nothing else.
 */
export function prepareDevicesArgv(clone: string): string[] {
  const script =
    'd=/dev/zvol/$1; i=0; until [ -e "$d" ]; do i=$((i+1)); [ $i -gt 150 ] && { echo "$d did not appear in time" >&2; exit 1; }; sleep 0.2; done; ' +
    'udevadm settle -t 30 || true; chown "$2:$2" -- "$d" "$d"-part* 2>/dev/null || chown "$2:$2" -- "$d"';
  return ['sh', '-c', script, 'zbm-files-devices', clone, String(SANDBOX_ID)];
}

/**
 * Probes the disk and each partition the kernel found on it with blkid, in the sandbox (udev does
 * not probe zvols everywhere, and a probe reads what the guest wrote): see layout.ts.
 */
export function layoutArgv(clone: string): string[] {
  const script =
    'd=$1; shift; for dev in "$d" "$d"-part*; do [ -e "$dev" ] || continue; echo "DEVICE=$dev"; "$@" "$dev" || true; echo; done';
  return [
    'sh',
    '-c',
    script,
    'zbm-files-probe',
    `/dev/zvol/${clone}`,
    ...sandboxed(['blkid', '-p', '-o', 'export', '--']),
  ];
}

/** A partition's device (n from 1), or the whole disk (n null). */
export function deviceOf(clone: string, partition: number | null): string {
  return partition === null ? `/dev/zvol/${clone}` : `/dev/zvol/${clone}-part${partition}`;
}

export function sevenZipListArgv(device: string): string[] {
  return sandboxed(['7zz', 'l', '-slt', '-bso1', '-bse2', '-bsp0', '-sccUTF-8', '--', device]);
}

/**
 * Lists path and what is under it in a subvol mounted at mountpoint, never through a symbolic
 * link: each component of path is checked first (the clone is read-only, so it cannot change
 * after the check), then find lists without following links.
 */
export function findListArgv(
  mountpoint: string,
  components: readonly string[],
  depth: number | null,
): string[] {
  const script =
    'cd "$1" || exit 1; d=$2; shift 2; p=.; for c in "$@"; do p="$p/$c"; ' +
    'if [ -L "$p" ]; then echo "zbm: $p is a symbolic link: give the path it points to" >&2; exit 3; fi; ' +
    'if [ ! -e "$p" ]; then echo "zbm: $p does not exist" >&2; exit 4; fi; done; ' +
    `exec find "$p" \${d:+-maxdepth "$d"} -printf '${FIND_FORMAT}'`;
  return [
    'sh',
    '-c',
    script,
    'zbm-files-find',
    mountpoint,
    depth === null ? '' : String(depth),
    ...components,
  ];
}

/**
 * Exits 0 when the path (components) exists in a subvol mounted at mountpoint, as anything, 1
 * when not; never through a symbolic link on the way (exit 3).
 */
export function existsArgv(mountpoint: string, components: readonly string[]): string[] {
  const script =
    'cd "$1" || exit 2; shift; p=.; n=$#; i=0; for c in "$@"; do i=$((i+1)); p="$p/$c"; ' +
    'if [ "$i" -lt "$n" ] && [ -L "$p" ]; then exit 3; fi; done; [ -e "$p" ] || [ -L "$p" ]';
  return ['sh', '-c', script, 'zbm-files-exists', mountpoint, ...components];
}

/**
 * Extracts the listed files (newline-separated on stdin) of a partition into staging/t as the
 * sandbox's user, then closes staging to everyone but root before anything else reads it.
 * Only regular files are asked for: directories and links are made on this host from the
 * listing, and devices never are.
 */
export function sevenZipExtractArgv(device: string, staging: string): string[] {
  const script =
    'st=$1; dev=$2; mkdir -m 700 "$st" && mkdir -m 700 "$st/t" && cat >"$st/list" && ' +
    'chown -R "$3:$3" -- "$st" && ' +
    `${sandboxed(['7zz', 'x', '-y', '-bso0', '-bsp0', '-spd', '-sccUTF-8', '-scsUTF-8', '-o"$st/t"', '-i@"$st/list"', '--', '"$dev"']).join(' ')}; ` +
    'rc=$?; chown -R root:root -- "$st" && chmod 700 "$st"; exit $rc';
  return ['sh', '-c', script, 'zbm-files-7z', staging, device, String(SANDBOX_ID)];
}

/** Writes the file list (stdin) for tarFilesArgv, for a subvol, whose files need no extraction. */
export function writeListArgv(staging: string): string[] {
  return ['sh', '-c', 'mkdir -m 700 "$1" && cat >"$1/list"', 'zbm-files-list', staging];
}

/** The listed regular files under dir as a tar stream on stdout; nothing else goes in. */
export function tarFilesArgv(dir: string, staging: string): string[] {
  return [
    'tar',
    '-C',
    dir,
    '-c',
    '-f',
    '-',
    '--no-recursion',
    '--verbatim-files-from',
    '-T',
    `${staging}/list`,
  ];
}

/**
 * Unpacks a tar stream (stdin) into dir as the sandbox's user, who owns dir and nothing else. The
 * shell enters dir as root first: the user's destination may lie under a directory nobody may
 * not pass (/root), and the sandbox then never needs to look up a path above it.
 */
export function untarArgv(dir: string): string[] {
  return [
    'sh',
    '-c',
    'cd "$1" && shift && exec "$@"',
    'zbm-files-untar',
    dir,
    ...sandboxed(['tar', '-x', '-f', '-', '--no-same-owner', '--no-same-permissions', '--no-overwrite-dir']),
  ];
}

/** Removes a staging directory (its name is this run's own). */
export function removeStagingArgv(staging: string): string[] {
  return ['rm', '-rf', '--one-file-system', '--', staging];
}

/** The datasets one level down in a pool, where a killed run's clone would be. */
export function poolClonesArgv(pool: string): string[] {
  return ['zfs', 'list', '-H', '-o', 'name', '-d', '1', '-t', 'filesystem,volume', pool];
}

/** The staging directories and mount points left on the tier, as full paths (none: nothing). */
export function leftoverDirsArgv(): string[] {
  const script =
    'for d in "$1" "$2"; do [ -d "$d" ] || continue; find "$d" -mindepth 1 -maxdepth 1 -type d -name "$3*" -printf "%p\\n"; done';
  return ['sh', '-c', script, 'zbm-files-leftovers', STAGING_BASE, MOUNT_BASE, FILES_PREFIX];
}

/** Removes a clone's mount point once the clone is gone (rmdir: never anything inside it). */
export function removeMountpointArgv(dir: string): string[] {
  return ['rmdir', '--', dir];
}
