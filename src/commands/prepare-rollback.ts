import { confirm as askOnTerminal } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { families, isHoldTag, targetDataset } from '../conventions/names.ts';
import { ExitCode, errorMessage, UsageError, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { acquire, describeHolder, describeWait } from '../lock/lock.ts';
import { parseStorageCfg, parseVmlist, readPveState, zfsPools } from '../pve/index.ts';
import { isVolumeOf } from '../pve/volumes.ts';
import {
  type DatasetRollbackPlan,
  describeRefusal,
  planRollbackPreparation,
  type ServerCopy,
  type ServerView,
} from '../rollback/plan.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

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
 * The guest's datasets on this node: every dataset directly below one of the node's zfspool
 * storages whose name is one of the guest's volume names (`vm-<id>-…`, `base-<id>-…`, `subvol-…`,
 * `basevol-…`, the rule `qm disk rescan` uses), so that a disk only named in a snapshot section or
 * detached (`unusedN`) is covered too.
 */
async function guestDatasets(zfs: Zfs, pools: readonly string[], vmid: number): Promise<Dataset[]> {
  if (pools.length === 0) return [];
  const listed = await zfs.list({ roots: pools, depth: 2 });
  return listed.filter((d) => pools.some((p) => d.name.startsWith(`${p}/`)) && isVolumeOf(d.name, vmid));
}

/**
 * The backup server's copy of each of the guest's datasets, listed there (`zfs list` through the
 * host layer, as backup-pve does): the guids prepare-rollback checks before destroying anything.
 */
async function observeServer(
  remote: Host,
  root: string,
  datasets: readonly Dataset[],
  prefix: string,
): Promise<ServerView> {
  const copies = new Map(datasets.map((d) => [d.name, targetDataset(root, d.name)]));
  // Every chain of each disk (plan/chain.ts): the root's children (depth 1) with their snapshots
  // (depth 2), a disk's later chains beside it.
  const chains = families(await new Zfs(remote).list({ roots: [root], depth: 2 }), prefix);
  return {
    host: remote.name,
    copies: new Map(
      [...copies].map(([node, copy]): [string, ServerCopy] => {
        const found = chains.get(copy);
        return [node, { dataset: copy, snapshots: found ? found.flatMap((d) => d.snapshots) : null }];
      }),
    ),
  };
}

function describe(p: DatasetRollbackPlan, snapshot: string | undefined, server: ServerView | null): string[] {
  const lines = [`${p.dataset}:`];
  if (p.destroy.length === 0 && p.bookmarks.length === 0) lines.push('  nothing of zbm in the way');
  if (p.destroy.length > 0) {
    lines.push(`  destroy zbm snapshot(s) ${p.destroy.join(', ')}`);
    const where = `${server?.host}:${server?.copies.get(p.dataset)?.dataset}`;
    if (p.unreplicated === null)
      lines.push('  not checked against a backup server (--force): any of them only this node has is lost');
    else if (p.unreplicated.length > 0)
      lines.push(`  ${p.unreplicated.join(', ')} not on ${where}: lost (--force)`);
    else lines.push(`  each of them is on ${where} (same guid)`);
  }
  if (p.bookmarks.length > 0) lines.push(`  destroy zbm bookmark(s) ${p.bookmarks.join(', ')}`);
  if (snapshot !== undefined)
    lines.push(
      p.anchor ? `  keep ${p.anchor} (older than ${snapshot})` : `  no zbm snapshot older than ${snapshot}`,
    );
  if (p.blockers.length > 0)
    lines.push(
      `  Proxmox will still refuse: snapshot(s) ${p.blockers.join(', ')} are newer than ${snapshot}; delete them first (qm delsnapshot / pct delsnapshot)`,
    );
  if (p.foreignBookmarks.length > 0)
    lines.push(
      `  zfs rollback would fail after Proxmox stopped the guest: bookmark(s) ${p.foreignBookmarks.join(', ')} of another tool are newer than ${snapshot}; destroy them first`,
    );
  return lines;
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
  const out = io.out ?? writeOut;
  if ((opts.remote === undefined) !== (opts.remoteZfsRoot === undefined))
    throw new UsageError(
      'prepare-rollback needs --remote (the backup server) and --remote-zfs-root (where backup-pve sends the disks there) together',
    );
  const state = await readPveState(io.pveRoot ?? '/etc/pve', opts.node);
  const entry = parseVmlist(state.vmlist).entries.find((e) => e.vmid === opts.vmid);
  if (!entry) throw new ZbmError(`guest ${opts.vmid} is not in /etc/pve/.vmlist`);
  if (entry.node !== state.node)
    throw new ZbmError(
      `guest ${opts.vmid} runs on node ${entry.node}, not on ${state.node}: run zbm prepare-rollback there`,
    );
  const pools = [
    ...new Set(
      [...zfsPools(parseStorageCfg(state.storageCfg)).values()]
        .filter((p) => !p.disabled && p.pool !== '' && (p.nodes === null || p.nodes.includes(state.node)))
        .map((p) => p.pool),
    ),
  ];
  const local = io.local ?? new LocalHost(state.node);
  const zfs = new Zfs(local);

  const acquired = await acquire(
    `guest-${opts.vmid}`,
    `prepare-rollback of guest ${opts.vmid}`,
    opts.lockWait * 1000,
    (h, ms) => log.info(describeWait(`guest ${opts.vmid}`, h, ms)),
  );
  if ('heldBy' in acquired) {
    log.error(
      `guest ${opts.vmid}: ${describeHolder(acquired.heldBy)} is working on it; nothing changed, try again`,
    );
    return ExitCode.failure;
  }
  const remote =
    opts.remote === undefined || opts.remoteZfsRoot === undefined
      ? null
      : { host: io.remote ?? new SshHost(opts.remote), root: opts.remoteZfsRoot };
  try {
    const datasets = await guestDatasets(zfs, pools, opts.vmid);
    let server: ServerView | null = null;
    if (remote) {
      try {
        server = await observeServer(remote.host, remote.root, datasets, opts.prefix);
      } catch (err) {
        const where = `${remote.host.name}:${datasets.map((d) => targetDataset(remote.root, d.name)).join(', ')}`;
        if (opts.force !== true) {
          log.error(
            `guest ${opts.vmid} on ${state.node}: nothing destroyed: cannot see which zbm snapshots the backup server has (${where}): ${errorMessage(err)}; ` +
              `run again when ${remote.host.name} answers, or with --force to destroy them unchecked, losing any restore point that exists nowhere else`,
          );
          return ExitCode.failure;
        }
        log.warn(`guest ${opts.vmid}: --force: not checked against ${where}: ${errorMessage(err)}`);
      }
    }
    const plan = planRollbackPreparation(datasets, {
      prefix: opts.prefix,
      snapshot: opts.snapshot,
      server,
      force: opts.force === true,
    });
    if (plan.kind === 'error') {
      log.error(`guest ${opts.vmid} on ${state.node}: ${plan.error}`);
      return ExitCode.failure;
    }
    if (plan.kind !== 'plan') {
      if (opts.json)
        out(
          `${JSON.stringify({ vmid: opts.vmid, node: state.node, snapshot: opts.snapshot ?? null, mode: 'refused', refusal: plan }, null, 2)}\n`,
        );
      log.error(`guest ${opts.vmid} on ${state.node}: ${describeRefusal(plan, state.node, opts.vmid)}`);
      return ExitCode.failure;
    }
    const work = plan.datasets.filter((p) => p.destroy.length + p.bookmarks.length > 0);
    const target = opts.snapshot === undefined ? '' : ` ${opts.snapshot}`;
    if (!opts.json) {
      out(
        `guest ${opts.vmid} on ${state.node}: ${opts.snapshot === undefined ? "zbm's snapshots and bookmarks" : `what zbm has newer than ${opts.snapshot}`}\n`,
      );
      for (const p of plan.datasets) for (const l of describe(p, opts.snapshot, server)) out(`${l}\n`);
      for (const u of plan.untouched) out(`${u}: has no snapshot ${opts.snapshot}; left as it is\n`);
    }
    let go = opts.yes === true && opts.dryRun !== true;
    if (!go && work.length > 0 && opts.dryRun !== true && !opts.json) {
      const ask = io.confirm ?? (process.stdin.isTTY === true ? askOnTerminal : undefined);
      if (ask) go = await ask('Destroy the zbm snapshots and bookmarks above?');
      else log.info('nothing destroyed: run again with -y to destroy them');
    }
    const done: { dataset: string; destroyed: string[]; bookmarks: string[]; error: string | null }[] = [];
    if (go) {
      for (const p of work) {
        const r = {
          dataset: p.dataset,
          destroyed: [] as string[],
          bookmarks: [] as string[],
          error: null as string | null,
        };
        done.push(r);
        try {
          // An earlier zbm held its base on the node: its tags go first, no one else's.
          const tags = (await zfs.holds(p.held)).filter((h) => isHoldTag(h.tag));
          for (const t of new Set(tags.map((h) => h.tag)))
            await zfs.release(
              t,
              tags.filter((h) => h.tag === t).map((h) => h.snapshot),
            );
          for (const b of p.bookmarks) {
            await zfs.destroyBookmark(b);
            r.bookmarks.push(b);
          }
          await zfs.destroySnapshots(p.dataset, p.destroy);
          r.destroyed.push(...p.destroy);
        } catch (err) {
          r.error = errorMessage(err);
          log.error(`on ${local.name}: ${p.dataset}: ${r.error}`);
        }
      }
    }
    const failed = done.some((r) => r.error !== null);
    const blocked = plan.datasets.some((p) => p.blockers.length + p.foreignBookmarks.length > 0);
    if (opts.json) {
      out(
        `${JSON.stringify(
          {
            vmid: opts.vmid,
            node: state.node,
            snapshot: opts.snapshot ?? null,
            mode: go ? 'destroy' : 'dry-run',
            datasets: plan.datasets.map((p) => ({
              ...p,
              destroyed: done.find((r) => r.dataset === p.dataset)?.destroyed ?? [],
              error: done.find((r) => r.dataset === p.dataset)?.error ?? null,
            })),
            untouched: plan.untouched,
          },
          null,
          2,
        )}\n`,
      );
    } else if (go && !failed) {
      const cmd = entry.type === 'qemu' ? 'qm' : 'pct';
      out(
        opts.snapshot === undefined
          ? `zbm's snapshots and bookmarks of guest ${opts.vmid} are gone from ${state.node}\n`
          : blocked
            ? `zbm is out of the way; ${cmd} rollback ${opts.vmid}${target} still needs the other snapshots above gone\n`
            : `zbm is out of the way: ${cmd} rollback ${opts.vmid}${target}\n`,
      );
    }
    // Forced: what the server was seen to lack, or without a look at it, everything destroyed.
    const lost = done.flatMap((r) => {
      const p = plan.datasets.find((x) => x.dataset === r.dataset);
      const atRisk = new Set(p?.unreplicated ?? p?.destroy);
      return r.destroyed.filter((s) => atRisk.has(s)).map((s) => `${r.dataset}@${s}`);
    });
    if (lost.length > 0)
      log.warn(
        server
          ? `guest ${opts.vmid}: --force destroyed restore points ${server.host} does not have, which exist nowhere else now: ${lost.join(', ')}`
          : `guest ${opts.vmid}: --force destroyed zbm snapshots without checking that a backup server has them: ${lost.join(', ')}`,
      );
    if (go && done.some((r) => r.destroyed.length > 0))
      log.warn(
        `guest ${opts.vmid}: the backup server keeps every restore point${lost.length > 0 ? ' it received' : ''}, but its chain now has backups this node no longer has: ` +
          'the next backup of each of its disks starts a new chain beside the old one, from the newest zbm snapshot it still shares with the server (docs/proxmox.md, "A disk\'s chains")',
      );
    else if (!go && work.length === 0 && !opts.json) {
      out(`nothing of zbm stands in the way${blocked ? ' (but see above)' : ''}\n`);
    }
    if (blocked)
      log.warn(
        `guest ${opts.vmid}: other snapshots or bookmarks still stand in the way of the rollback (see above)`,
      );
    return failed ? ExitCode.failure : ExitCode.ok;
  } finally {
    acquired.lock.release();
    if (remote && io.remote === undefined) await remote.host.close();
  }
}
