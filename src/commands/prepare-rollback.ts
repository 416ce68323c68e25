import { confirm as askOnTerminal } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { UsageError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { prepareGuestRollback } from '../rollback/run.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type PrepareRollbackOptions = CommandOptions<'prepare-rollback'>;

/** What the command touches besides zfs; tests replace it. */
export interface PrepareRollbackIO {
  readonly out?: (s: string) => void;
  readonly local?: Host;
  /** The backup server (--remote). */
  readonly remote?: Host;
  readonly pveRoot?: string;
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
}

/**
 * Clears what zbm has on one guest's datasets of this node that would stand in the way of `qm
 * rollback <vmid> <snapshot>` (without --snapshot: everything zbm has there), under the guest's
 * lock so that no backup runs meanwhile. Destroys only zbm's own snapshots and bookmarks, with -y
 * (or a yes on a terminal), and of the snapshots only those the backup server (--remote) was seen
 * to hold (in any chain of the disk), unless --force. The backup server keeps its chain, which
 * then has backups the node no longer has: the guest's next backup starts a new chain beside it
 * (plan/chain.ts), and the command says so.
 */
export async function prepareRollback(
  opts: PrepareRollbackOptions,
  log: Logger,
  io: PrepareRollbackIO = {},
): Promise<number> {
  if ((opts.remote === undefined) !== (opts.remoteZfsRoot === undefined))
    throw new UsageError(
      'prepare-rollback needs --remote (the backup server) and --remote-zfs-root (where backup-pve sends the disks there) together',
    );
  // The backup server's ssh connection is ours to close, once the run (and its lock) is over.
  let sshHost: SshHost | undefined;
  try {
    return await prepareGuestRollback(
      opts,
      {
        out: io.out ?? writeOut,
        local: (node) => io.local ?? new LocalHost(node),
        remote: (destination) => {
          if (io.remote) return io.remote;
          sshHost = new SshHost(destination);
          return sshHost;
        },
        pveRoot: io.pveRoot ?? '/etc/pve',
        asker: () => io.confirm ?? (process.stdin.isTTY === true ? askOnTerminal : undefined),
      },
      log,
    );
  } finally {
    await sshHost?.close();
  }
}
