import { Command, CommanderError, Option } from 'commander';
import { ExitCode } from '../errors.ts';
import { VERSION } from '../version.ts';
import * as v from './values.ts';

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    a failure (for example one guest or dataset failed; the others were still done)
  2    usage error (unknown flag, bad value, missing option)
  130  interrupted (SIGINT/SIGTERM); every child process was stopped`;

export const VERIFY_EXIT_CODES_HELP = `
Exit codes (monitoring-plugin convention, for Nagios, Icinga, Checkmk):
  0    OK
  1    WARNING (too few snapshots, an interrupted transfer, a stale scrub, a disk missing from a backup)
  2    CRITICAL (a backup too old or missing, a degraded pool); also a usage error
  3    UNKNOWN (a check could not run)`;

/** What a parsed command line asks for: the command's name and its validated options. */
export interface Invocation {
  readonly command: string;
  readonly options: Readonly<Record<string, unknown>>;
}

export interface ProgramIO {
  readonly writeOut: (s: string) => void;
  readonly writeErr: (s: string) => void;
}

const COMMANDS: { name: string; summary: string; build: (c: Command) => Command }[] = [
  {
    name: 'backup-pve',
    summary: "snapshot this Proxmox node's guests and send them to a ZFS backup server",
    build: (c) =>
      c
        .requiredOption('--remote <host>', 'ssh destination of the backup server', v.remote)
        .option('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-')
        .requiredOption(
          '--local-zfs-root <dataset>',
          'back up only guest disks under this dataset',
          v.dataset,
        )
        .requiredOption(
          '--remote-zfs-root <dataset>',
          'dataset on the backup server receiving the disks',
          v.dataset,
        )
        .requiredOption(
          '--remote-metadata-dir <path>',
          'directory on the backup server for guest configs and manifests',
          v.absolutePath,
        )
        .option('-y, --yes', 'destroy old snapshots without asking')
        .option('--vmid <ids>', 'back up only these guests (comma-separated, repeatable)', v.vmids)
        .option('--exclude <ids>', 'do not back up these guests (comma-separated, repeatable)', v.vmids)
        .option(
          '--dry-run',
          'print the plan (guests, disks, full or incremental, estimated bytes) and change nothing',
        )
        .option('--json', 'print the per-guest summary as JSON on stdout')
        .option(
          '--bwlimit <rate>',
          'limit the whole run to this many bytes per second (for example 50M)',
          v.byteRate,
        )
        .option(
          '--keep-source <n>',
          'zbm snapshots to keep on this node after a successful backup',
          v.count,
          1,
        )
        .option(
          '--lock-wait <seconds>',
          'how long to wait for a guest that another zbm run is backing up',
          v.count,
          30,
        )
        .option('--node <name>', "this Proxmox node's name (default: from /etc/pve/local)"),
  },
  {
    name: 'replicate',
    summary: 'copy every backup under a dataset to an offsite ZFS server',
    build: (c) =>
      c
        .requiredOption('--remote <host>', 'ssh destination of the replica', v.remote)
        .requiredOption(
          '--remote-zfs-root <dataset>',
          'dataset on --remote: the replica receiving the copies (with --pull: the source)',
          v.dataset,
        )
        .requiredOption(
          '--local-zfs-root <dataset>',
          'dataset on this host whose backups are copied (with --pull: receiving the copies)',
          v.dataset,
        )
        .option('--prefix <prefix>', 'copy only snapshots with this name prefix (default: all)', v.prefix)
        .option(
          '--pull',
          'run on the replica and pull from --remote (its --remote-zfs-root) into --local-zfs-root, so the backup server needs no access to the replica',
        )
        .option(
          '--local-metadata-dir <path>',
          "guest configs on this host (default: the source root's zbm:metadata-dir, or the same path as the source)",
          v.absolutePath,
        )
        .option(
          '--remote-metadata-dir <path>',
          "guest configs on --remote (default: the source root's zbm:metadata-dir, or the same path as the source)",
          v.absolutePath,
        )
        .option('--dry-run', 'print what would be sent and change nothing')
        .option('--json', 'print the per-dataset result as JSON on stdout')
        .option(
          '--bwlimit <rate>',
          'limit the whole run to this many bytes per second (for example 50M)',
          v.byteRate,
        )
        .option(
          '--force-rollback',
          'roll a diverged replica dataset back to the newest common snapshot (destroys its later snapshots and changes)',
        )
        .option(
          '--lock-wait <seconds>',
          'how long to wait for a dataset another zbm run works on',
          v.count,
          30,
        ),
  },
  {
    name: 'prune',
    summary: 'destroy old zbm snapshots by Proxmox-style retention rules, never breaking a chain',
    build: (c) =>
      c
        .requiredOption('--local-zfs-root <dataset>', 'prune the datasets under this dataset', v.dataset)
        .option('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-')
        .option('--keep-last <n>', 'keep the n newest snapshots', v.count)
        .option('--keep-hourly <n>', 'keep the newest snapshot of each of the last n hours', v.count)
        .option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days', v.count)
        .option('--keep-weekly <n>', 'keep the newest snapshot of each of the last n ISO weeks', v.count)
        .option('--keep-monthly <n>', 'keep the newest snapshot of each of the last n months', v.count)
        .option('--keep-yearly <n>', 'keep the newest snapshot of each of the last n years', v.count)
        .option('--remote <host>', 'next tier (ssh destination): never prune what it still needs', v.remote)
        .option(
          '--remote-zfs-root <dataset>',
          'dataset on the next tier mirroring --local-zfs-root',
          v.dataset,
        )
        .option('-y, --yes', 'destroy without asking')
        .option(
          '--dry-run',
          'print the plan (every snapshot: keep or destroy, and why) and destroy nothing, even with -y',
        )
        .option('--json', 'print the plan, or with -y the result, as JSON on stdout')
        .option(
          '--lock-wait <seconds>',
          'how long to wait for a dataset that a transfer of another zbm run works on',
          v.count,
          30,
        ),
  },
  {
    name: 'verify',
    summary: 'check that backups are fresh and complete (monitoring-plugin exit codes)',
    build: (c) =>
      c
        .requiredOption('--local-zfs-root <dataset>', 'check the datasets under this dataset', v.dataset)
        .option('--prefix <prefix>', 'name prefix of zbm snapshots', v.prefix, 'bak-zbm-')
        .option('--max-age-days <days>', 'newest snapshot must be younger than this', v.positiveNumber, 1)
        .option('--min-snapshots <n>', 'each dataset must have at least this many snapshots', v.count, 1)
        .option(
          '--max-age-hours <hours>',
          'like --max-age-days, in hours (for hourly backups); wins over days',
          v.positiveNumber,
        )
        .option('--remote <host>', 'next tier (ssh destination): also check the replication lag', v.remote)
        .option(
          '--remote-zfs-root <dataset>',
          'dataset on the next tier mirroring --local-zfs-root',
          v.dataset,
        )
        .option(
          '--max-scrub-age-days <days>',
          "the pool's last scrub must be younger than this",
          v.positiveNumber,
          35,
        )
        .option('--json', 'print the checks as JSON on stdout'),
  },
];

/**
 * Parses argv (without `node zbm`). Returns the invocation, or the exit code when parsing ended the
 * run (help, version, usage error: a one-line message naming the flag, exit code 2).
 */
export function parseCommandLine(args: readonly string[], io: ProgramIO): Invocation | number {
  let invocation: Invocation | undefined;
  const program = new Command('zbm')
    .description('zbm: ZFS Backups Manager for Proxmox VE')
    .version(VERSION, '-V, --version')
    .configureOutput({ writeOut: io.writeOut, writeErr: io.writeErr })
    .exitOverride()
    .showSuggestionAfterError(true)
    .addHelpText('after', EXIT_CODES_HELP);

  for (const spec of COMMANDS) {
    const cmd = spec.build(program.command(spec.name).summary(spec.summary).description(spec.summary));
    cmd.addOption(new Option('-v, --verbose', 'print debug messages'));
    cmd.addHelpText('after', spec.name === 'verify' ? VERIFY_EXIT_CODES_HELP : EXIT_CODES_HELP);
    cmd.action((options: Record<string, unknown>) => {
      invocation = { command: spec.name, options };
    });
  }

  try {
    program.parse(args, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
      return ExitCode.usage;
    }
    throw err;
  }
  if (!invocation) {
    io.writeErr(program.helpInformation());
    return ExitCode.usage;
  }
  return invocation;
}
