/**
 * The flags of every command, each command's as one typed table (flags.ts): what the parser adds,
 * --help shows, the config file checks, and the command receives (CommandOptions) all come from here.
 */
import { Option } from 'commander';
import { DEFAULT_CLOCK_SKEW_SECONDS } from '../conventions/names.ts';
import { DEFAULT_STATE_DIR } from '../drill/state.ts';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../lock/lock.ts';
import {
  type Flags,
  flagOf,
  negation,
  type OptionsOf,
  oldSpelling,
  onOff,
  required,
  valued,
  verbatim,
} from './flags.ts';
import * as v from './values.ts';

/** Where drill records its results and verify reads them: one flag, one default, for both. */
const stateDir = () =>
  valued(
    '--state-dir <path>',
    "directory of zbm's records on this host (the results of its restore drills)",
    v.absolutePath,
    DEFAULT_STATE_DIR,
  );

/** Which tier holds the backups read, for the commands that read one from a node or on it. */
const tierFlags = () => ({
  remote: valued('--remote <host>', 'the backup server or replica (ssh destination), from a node', v.remote),
  remoteZfsRoot: valued('--remote-zfs-root <dataset>', 'the root of the backups on --remote', v.dataset),
  localZfsRoot: valued(
    '--local-zfs-root <dataset>',
    'the root of the backups on this host (backup server, replica)',
    v.dataset,
  ),
});

/** Where that tier keeps the configs and manifests, when its root does not say. */
const tierMetadataFlags = () => ({
  remoteMetadataDir: valued(
    '--remote-metadata-dir <path>',
    'with --remote: directory of the configs and manifests there (default: the zbm:metadata-dir property of the root)',
    v.absolutePath,
  ),
  localMetadataDir: valued(
    '--local-metadata-dir <path>',
    'with --local-zfs-root: directory of the configs and manifests (default: the zbm:metadata-dir property of the root)',
    v.absolutePath,
  ),
});

const BWLIMIT_HELP =
  'limit the whole transfer to this rate per second: a bare number is KiB/s as in vzdump (50000: about 49 MiB/s), or give a unit: 800K, 50M, 1G';

/**
 * The commands with flags of their own. `job`: one that runs unattended (from a timer), so it takes
 * the alert and metrics flags; the others are run by hand and answer on the terminal.
 */
export const COMMANDS = [
  {
    name: 'backup-pve',
    job: true,
    summary: "snapshot this Proxmox node's guests and send them to a ZFS backup server",
    flags: {
      remote: required('--remote <host>', 'ssh destination of the backup server', v.remote),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      localZfsRoot: required(
        '--local-zfs-root <dataset>',
        'back up only guest disks under this dataset',
        v.dataset,
      ),
      remoteZfsRoot: required(
        '--remote-zfs-root <dataset>',
        'dataset on the backup server receiving the disks',
        v.dataset,
      ),
      remoteMetadataDir: required(
        '--remote-metadata-dir <path>',
        'directory on the backup server for guest configs and manifests',
        v.absolutePath,
      ),
      yes: onOff('-y, --yes', 'destroy old snapshots without asking'),
      vmid: valued('--vmid <ids>', 'back up only these guests (comma-separated, repeatable)', v.vmids),
      exclude: valued(
        '--exclude <ids>',
        'do not back up these guests (comma-separated, repeatable)',
        v.vmids,
      ),
      dryRun: onOff(
        '--dry-run',
        'print the plan (guests, disks, full or incremental, estimated bytes) and change nothing',
      ),
      json: onOff('--json', 'print the per-guest summary as JSON on stdout'),
      bwlimit: valued('--bwlimit <rate>', BWLIMIT_HELP, v.byteRate),
      jobs: valued('--jobs <n>', 'disks sent at the same time, over one ssh connection (1 to 8)', v.jobs, 1),
      keepSource: valued(
        '--keep-source <n>',
        'zbm snapshots to keep on this node after a successful backup',
        v.count,
        1,
      ),
      lockWait: valued(
        '--lock-wait <seconds>',
        'how long to wait for a guest that another zbm run is backing up',
        v.count,
        DEFAULT_LOCK_WAIT_SECONDS,
      ),
      node: verbatim('--node <name>', "this Proxmox node's name (default: from /etc/pve/local)"),
    },
  },
  {
    name: 'replicate',
    job: true,
    summary: 'copy every backup under a dataset to an offsite ZFS server',
    flags: {
      remote: required('--remote <host>', 'ssh destination of the replica', v.remote),
      remoteZfsRoot: required(
        '--remote-zfs-root <dataset>',
        'dataset on --remote: the replica receiving the copies (with --pull: the source)',
        v.dataset,
      ),
      localZfsRoot: required(
        '--local-zfs-root <dataset>',
        'dataset on this host whose backups are copied (with --pull: receiving the copies)',
        v.dataset,
      ),
      prefix: valued(
        '--prefix <prefix>',
        'copy only snapshots with this name prefix (default: all)',
        v.prefix,
      ),
      pull: onOff(
        '--pull',
        'run on the replica and pull from --remote (its --remote-zfs-root) into --local-zfs-root, so the backup server needs no access to the replica',
      ),
      localMetadataDir: valued(
        '--local-metadata-dir <path>',
        "guest configs on this host (default: the source root's zbm:metadata-dir, or the same path as the source)",
        v.absolutePath,
      ),
      remoteMetadataDir: valued(
        '--remote-metadata-dir <path>',
        "guest configs on --remote (default: the source root's zbm:metadata-dir, or the same path as the source)",
        v.absolutePath,
      ),
      dryRun: onOff('--dry-run', 'print what would be sent and change nothing'),
      json: onOff('--json', 'print the per-dataset result as JSON on stdout'),
      bwlimit: valued('--bwlimit <rate>', BWLIMIT_HELP, v.byteRate),
      jobs: valued(
        '--jobs <n>',
        'datasets sent at the same time, over one ssh connection (1 to 8)',
        v.jobs,
        1,
      ),
      forceRollback: onOff(
        '--force-rollback',
        'roll a diverged target dataset back to the newest common snapshot (destroys its later snapshots and changes); asks first',
      ),
      yes: onOff('-y, --yes', 'confirm --force-rollback without asking'),
      lockWait: valued(
        '--lock-wait <seconds>',
        'how long to wait for a dataset another zbm run works on',
        v.count,
        DEFAULT_LOCK_WAIT_SECONDS,
      ),
    },
  },
  {
    name: 'prune',
    job: true,
    summary: 'destroy old zbm snapshots by Proxmox-style retention rules, never breaking a chain',
    flags: {
      localZfsRoot: required(
        '--local-zfs-root <dataset>',
        'prune the datasets under this dataset',
        v.dataset,
      ),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      keepLast: valued(
        '--keep-last <n>',
        'keep the n newest snapshots of each disk (over all its chains)',
        v.count,
      ),
      keepHourly: valued(
        '--keep-hourly <n>',
        'keep the newest snapshot of each of the last n hours',
        v.count,
      ),
      keepDaily: valued('--keep-daily <n>', 'keep the newest snapshot of each of the last n days', v.count),
      keepWeekly: valued(
        '--keep-weekly <n>',
        'keep the newest snapshot of each of the last n ISO weeks',
        v.count,
      ),
      keepMonthly: valued(
        '--keep-monthly <n>',
        'keep the newest snapshot of each of the last n months',
        v.count,
      ),
      keepYearly: valued(
        '--keep-yearly <n>',
        'keep the newest snapshot of each of the last n years',
        v.count,
      ),
      remote: valued(
        '--remote <host>',
        'next tier (ssh destination): never prune what it still needs',
        v.remote,
      ),
      remoteZfsRoot: valued(
        '--remote-zfs-root <dataset>',
        'dataset on the next tier mirroring --local-zfs-root',
        v.dataset,
      ),
      localMetadataDir: valued(
        '--local-metadata-dir <path>',
        'directory of the guest configs and manifests of these backups (default: the zbm:metadata-dir property of --local-zfs-root)',
        v.absolutePath,
      ),
      metadataDir: oldSpelling('--metadata-dir <path>', v.absolutePath),
      yes: onOff('-y, --yes', 'destroy without asking'),
      dryRun: onOff(
        '--dry-run',
        'print the plan (every snapshot: keep or destroy, and why) and destroy nothing, even with -y',
      ),
      json: onOff('--json', 'print the plan, or with -y the result, as JSON on stdout'),
      lockWait: valued(
        '--lock-wait <seconds>',
        'how long to wait for a dataset that a transfer of another zbm run works on',
        v.count,
        DEFAULT_LOCK_WAIT_SECONDS,
      ),
    },
  },
  {
    name: 'verify',
    job: true,
    summary: 'check that backups are fresh and complete (monitoring-plugin exit codes)',
    flags: {
      localZfsRoot: valued(
        '--local-zfs-root <dataset>',
        'check the datasets under this dataset (with --pve: only guest disks under it, like backup-pve)',
        v.dataset,
      ),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      maxAgeDays: valued(
        '--max-age-days <days>',
        'newest snapshot must be younger than this',
        v.positiveNumber,
        1,
      ),
      minSnapshots: valued(
        '--min-snapshots <n>',
        'each disk must have at least this many snapshots (all its chains together)',
        v.count,
        1,
      ),
      maxAgeHours: valued(
        '--max-age-hours <hours>',
        'like --max-age-days, in hours (for hourly backups); wins over days',
        v.positiveNumber,
      ),
      remote: valued(
        '--remote <host>',
        'next tier (ssh destination): also check the replication lag; with --pve: the backup server',
        v.remote,
      ),
      remoteZfsRoot: valued(
        '--remote-zfs-root <dataset>',
        'dataset on --remote mirroring --local-zfs-root; with --pve: where backup-pve sends the disks',
        v.dataset,
      ),
      pve: onOff(
        '--pve',
        'on a Proxmox node: check that every disk backup-pve would back up has a fresh backup on --remote',
      ),
      vmid: valued(
        '--vmid <ids>',
        'with --pve: check only these guests (comma-separated, repeatable)',
        v.vmids,
      ),
      exclude: valued('--exclude <ids>', 'with --pve: skip these guests, as backup-pve does', v.vmids),
      node: verbatim('--node <name>', "with --pve: this Proxmox node's name (default: from /etc/pve/local)"),
      localMetadataDir: valued(
        '--local-metadata-dir <path>',
        'directory of the manifests of the backups under --local-zfs-root (default: its zbm:metadata-dir property)',
        v.absolutePath,
      ),
      metadataDir: oldSpelling('--metadata-dir <path>', v.absolutePath),
      maxScrubAgeDays: valued(
        '--max-scrub-age-days <days>',
        "the pool's last scrub must be younger than this; a pool never scrubbed is judged by its age",
        v.positiveNumber,
        35,
      ),
      poolChecks: negation(
        '--no-pool-checks',
        "do not check the pool's health nor its scrub age (for pools monitored elsewhere)",
      ),
      maxDrillAgeDays: valued(
        '--max-drill-age-days <days>',
        'warn about each guest whose last successful restore drill on this host (zbm drill) is older than this, or never happened',
        v.positiveNumber,
      ),
      stateDir: stateDir(),
      json: onOff('--json', 'print the checks as JSON on stdout'),
    },
  },
  {
    name: 'drill',
    job: true,
    summary:
      'prove on the backup server or the replica that restore points can be restored (monitoring-plugin exit codes)',
    flags: {
      localZfsRoot: required(
        '--local-zfs-root <dataset>',
        'the root of the backups on this host (backup server, replica)',
        v.dataset,
      ),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      vmid: valued('--vmid <ids>', 'drill only these guests (comma-separated, repeatable)', v.vmids),
      sample: valued(
        '--sample <n>',
        'drill only the n guests whose last successful drill is the oldest, so that runs go round all of them',
        v.positiveCount,
      ),
      snapshot: valued(
        '--snapshot <name>',
        'drill this backup (default: the newest one, complete or not)',
        v.snapshotShortName,
      ),
      time: valued(
        '--time <time>',
        'drill the newest backup at or before this time (ISO 8601; local time without a zone)',
        v.pointInTime,
      ),
      fullRead: onOff(
        '--full-read',
        'also read every block of every disk back (zfs send to nowhere): a checksum error fails the drill',
      ),
      fileSystems: onOff(
        '--file-systems',
        "also recognise each disk's file systems and list their root directories, as zbm files reads them: one that cannot be recognised fails the drill",
      ),
      expect: valued(
        '--expect <path>',
        'also require this path (such as /etc/hostname) on one of the file systems of each guest drilled (implies --file-systems)',
        v.browsePath,
      ),
      localMetadataDir: valued(
        '--local-metadata-dir <path>',
        'directory of the configs and manifests (default: the zbm:metadata-dir property of the root)',
        v.absolutePath,
      ),
      metadataDir: oldSpelling('--metadata-dir <path>', v.absolutePath),
      stateDir: stateDir(),
      dryRun: onOff('--dry-run', 'print which guests and restore points would be drilled, and read nothing'),
      json: onOff('--json', 'print the checks as JSON on stdout'),
    },
  },
  {
    name: 'status',
    job: false,
    summary: 'show the backups per guest: disks, newest backup and its age, count, space, replication lag',
    flags: {
      localZfsRoot: required('--local-zfs-root <dataset>', 'show the backups under this dataset', v.dataset),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      remote: valued(
        '--remote <host>',
        'next tier (ssh destination): also show the replication lag',
        v.remote,
      ),
      remoteZfsRoot: valued(
        '--remote-zfs-root <dataset>',
        'dataset on the next tier mirroring --local-zfs-root',
        v.dataset,
      ),
      json: onOff('--json', 'print the table as JSON on stdout'),
    },
  },
  {
    name: 'list-backups',
    job: false,
    summary: 'list the restore points of each guest on the backup server or the replica',
    flags: {
      ...tierFlags(),
      vmid: valued('--vmid <ids>', 'only these guests (comma-separated, repeatable)', v.vmids),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      ...tierMetadataFlags(),
      metadataDir: oldSpelling('--metadata-dir <path>', v.absolutePath),
      json: onOff('--json', 'print the restore points as JSON on stdout'),
    },
  },
  {
    name: 'files',
    job: false,
    summary:
      "list or extract files of a guest's disk at a restore point, on the backup server or the replica, without restoring the guest",
    flags: {
      ...tierFlags(),
      vmid: required('--vmid <id>', 'the guest whose backup is read (one VMID)', v.oneVmid),
      disk: valued(
        '--disk <key>',
        "the disk by its key in the guest's config (scsi0, virtio1, rootfs, mp0); without it, the restore point's disks are listed",
        v.diskKey,
      ),
      path: valued(
        '--path <path>',
        "the directory to list or the file or directory to extract; on a partitioned VM disk it starts with the partition's number (/2/etc/hostname)",
        v.browsePath,
        '/',
      ),
      snapshot: valued(
        '--snapshot <name>',
        'read this backup (default: the newest one with the disk)',
        v.snapshotShortName,
      ),
      time: valued(
        '--time <time>',
        'read the newest backup at or before this time (ISO 8601; local time without a zone)',
        v.pointInTime,
      ),
      extract: valued(
        '--extract <dir>',
        'copy --path (a file or a whole directory) into this existing directory on this host',
        v.absolutePath,
      ),
      tar: onOff('--tar', 'write --path as a tar stream on stdout instead'),
      keepSetuid: onOff(
        '--keep-setuid',
        'keep setuid, setgid and sticky bits on what is extracted (default: taken off)',
      ),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      ...tierMetadataFlags(),
      json: onOff('--json', 'print the listing (or what was extracted) as JSON on stdout'),
    },
  },
  {
    name: 'prepare-rollback',
    job: false,
    summary:
      "take zbm's snapshots off a guest's disks on this node so that qm/pct rollback to an older snapshot works",
    flags: {
      vmid: required('--vmid <id>', 'the guest to roll back (one VMID)', v.oneVmid),
      snapshot: valued(
        '--snapshot <name>',
        'the Proxmox snapshot the guest is rolled back to: zbm snapshots newer than it go, the newest older one stays (default: every zbm snapshot and bookmark of the guest)',
        v.snapshotShortName,
      ),
      prefix: valued('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-'),
      remote: valued(
        '--remote <host>',
        "the backup server (ssh destination, backup-pve's --remote): a zbm snapshot goes only if it has it, by guid",
        v.remote,
      ),
      remoteZfsRoot: valued(
        '--remote-zfs-root <dataset>',
        "where backup-pve sends the disks on --remote (backup-pve's --remote-zfs-root)",
        v.dataset,
      ),
      force: onOff(
        '--force',
        'destroy zbm snapshots the backup server does not have, or without --remote unchecked: those restore points are lost',
      ),
      yes: onOff('-y, --yes', 'destroy without asking'),
      dryRun: onOff('--dry-run', 'print what would be destroyed and change nothing'),
      json: onOff('--json', 'print the plan, or with -y the result, as JSON on stdout'),
      lockWait: valued(
        '--lock-wait <seconds>',
        'how long to wait for a zbm run working on the guest',
        v.count,
        DEFAULT_LOCK_WAIT_SECONDS,
      ),
      node: verbatim('--node <name>', "this Proxmox node's name (default: from /etc/pve/local)"),
    },
  },
  {
    name: 'restore',
    job: false,
    summary: 'restore a guest, or one of its disks, from the backup server or the replica onto this node',
    flags: {
      remote: required(
        '--remote <host>',
        'the backup server or replica to restore from (ssh destination)',
        v.remote,
      ),
      remoteZfsRoot: required(
        '--remote-zfs-root <dataset>',
        'the root of the backups on --remote',
        v.dataset,
      ),
      vmid: required(
        '--vmid <id>',
        'the guest whose backup is restored (one VMID: one guest per restore)',
        v.oneVmid,
      ),
      snapshot: valued(
        '--snapshot <name>',
        'restore this backup (default: the newest complete one)',
        v.snapshotShortName,
      ),
      time: valued(
        '--time <time>',
        'restore the newest backup at or before this time (ISO 8601; local time without a zone)',
        v.pointInTime,
      ),
      asVmid: valued(
        '--as-vmid <id>',
        'restore as a new guest with this VMID (disks renamed, config rewritten)',
        v.vmid,
      ),
      targetStorage: valued(
        '--target-storage <id>',
        'zfspool storage of this node to restore the disks to (default: their own)',
        v.storageId,
      ),
      disk: valued(
        '--disk <key>',
        'restore only this disk (for example scsi1) as a new unusedN volume',
        v.diskKey,
      ),
      newMacs: onOff('--new-macs', 'give the restored guest new MAC addresses'),
      keepHostKeys: onOff(
        '--keep-host-keys',
        'restore hookscript:, args: (qemu) and lxc.* keys too: they run code or open host resources on this node (default: shown and left out)',
      ),
      force: onOff(
        '--force',
        'replace an existing guest or dataset (moved aside, never destroyed); asks first',
      ),
      yes: onOff('-y, --yes', 'confirm --force without asking'),
      dryRun: onOff('--dry-run', 'print the plan (disks, sizes, target datasets, config) and change nothing'),
      json: onOff('--json', 'print the result (or with --dry-run the plan) as JSON on stdout'),
      bwlimit: valued('--bwlimit <rate>', BWLIMIT_HELP, v.byteRate),
      remoteMetadataDir: valued(
        '--remote-metadata-dir <path>',
        'directory of the configs and manifests on --remote (default: the zbm:metadata-dir property of the root)',
        v.absolutePath,
      ),
      metadataDir: oldSpelling('--metadata-dir <path>', v.absolutePath),
      node: verbatim('--node <name>', "this Proxmox node's name (default: from /etc/pve/local)"),
      lockWait: valued(
        '--lock-wait <seconds>',
        'how long to wait for a zbm run working on the guest',
        v.count,
        DEFAULT_LOCK_WAIT_SECONDS,
      ),
    },
  },
] as const satisfies readonly CommandSpec[];

interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly job: boolean;
  readonly flags: Flags;
}

export const SERVE_FLAGS = {
  root: required('--root <dataset>', "the node's subtree on this server", v.dataset),
  metadataDir: valued(
    '--metadata-dir <path>',
    "where the node's guest configs may be written",
    v.absolutePath,
  ),
  sendOnly: onOff(
    '--send-only',
    'serve a replica that pulls (zbm replicate --pull) or a restore: list, send, read configs, hold its --tag; no writes',
  ),
  tag: valued(
    '--tag <tag>',
    'the one hold tag the client may hold and release (zbm-base:pve:<server> for a node, zbm-base:<server>:<replica> for a pulling replica); without it, no hold',
    v.holdTag,
  ),
  prefix: valued('--prefix <prefix>', 'name prefix of the snapshots a node may send', v.prefix, 'bak-zbm-'),
  clockSkew: valued(
    '--clock-skew <seconds>',
    "how far a node's clock may be ahead of this server's: a snapshot named later is refused",
    v.count,
    DEFAULT_CLOCK_SKEW_SECONDS,
  ),
} satisfies Flags;

/** Built anew for each program: --config reads ZBM_CONFIG when the program parses. */
export function configFlags() {
  return { config: flagOf<string | undefined>(configOption()) };
}

export const INSTALL_TIMERS_FLAGS = {
  unitDir: valued('--unit-dir <path>', 'where the units go', v.absolutePath, '/etc/systemd/system'),
  start: negation('--no-start', 'write the units, but do not reload systemd nor enable the timers'),
  dryRun: onOff('--dry-run', 'print the units and change nothing'),
} satisfies Flags;

export const CONFIG_CHECK_FLAGS = {
  json: onOff('--json', 'print the jobs as JSON on stdout'),
} satisfies Flags;

export type Commands = {
  [C in (typeof COMMANDS)[number] as C['name']]: C['flags'];
} & {
  serve: typeof SERVE_FLAGS;
  'install-timers': ReturnType<typeof configFlags> & typeof INSTALL_TIMERS_FLAGS;
  'config-check': ReturnType<typeof configFlags> & typeof CONFIG_CHECK_FLAGS;
};

/** The options a command receives, from its flags: the one declaration of both. */
export type CommandOptions<C extends keyof Commands> = OptionsOf<Commands[C]>;

const CONFIG_HELP =
  'config file (default: /etc/pve/zbm.yaml if it exists, else /etc/zbm/zbm.yaml); relative to the current directory';

export function configOption(): Option {
  return new Option('--config <path>', CONFIG_HELP).env('ZBM_CONFIG').argParser(v.configPath);
}
