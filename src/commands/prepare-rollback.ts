import { confirm as askOnTerminal } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { isHoldTag } from '../conventions/names.ts';
import { ExitCode, errorMessage, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { acquire, describeHolder, describeWait } from '../lock/lock.ts';
import { parseStorageCfg, parseVmlist, readPveState, zfsPools } from '../pve/index.ts';
import { isVolumeOf } from '../pve/volumes.ts';
import { type DatasetRollbackPlan, planRollbackPreparation } from '../rollback/plan.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type PrepareRollbackOptions = CommandOptions<'prepare-rollback'>;

/** What the command touches besides zfs; tests replace it. */
export interface PrepareRollbackIO {
  readonly out?: (s: string) => void;
  readonly local?: Host;
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

function describe(p: DatasetRollbackPlan, snapshot: string | undefined): string[] {
  const lines = [`${p.dataset}:`];
  if (p.destroy.length === 0 && p.bookmarks.length === 0) lines.push('  nothing of zbm in the way');
  if (p.destroy.length > 0) lines.push(`  destroy zbm snapshot(s) ${p.destroy.join(', ')}`);
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
 * (or a yes on a terminal). The backup server keeps its chain, which then has backups the node no
 * longer has: the guest's next backup is refused as diverged (a new chain beside the old one is
 * not built yet), and the command says so.
 */
export async function prepareRollback(
  opts: PrepareRollbackOptions,
  log: Logger,
  io: PrepareRollbackIO = {},
): Promise<number> {
  const out = io.out ?? writeOut;
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
  try {
    const datasets = await guestDatasets(zfs, pools, opts.vmid);
    const plan = planRollbackPreparation(datasets, opts.prefix, opts.snapshot);
    if ('error' in plan) {
      log.error(`guest ${opts.vmid} on ${state.node}: ${plan.error}`);
      return ExitCode.failure;
    }
    const work = plan.datasets.filter((p) => p.destroy.length + p.bookmarks.length > 0);
    const target = opts.snapshot === undefined ? '' : ` ${opts.snapshot}`;
    if (!opts.json) {
      out(
        `guest ${opts.vmid} on ${state.node}: ${opts.snapshot === undefined ? "zbm's snapshots and bookmarks" : `what zbm has newer than ${opts.snapshot}`}\n`,
      );
      for (const p of plan.datasets) for (const l of describe(p, opts.snapshot)) out(`${l}\n`);
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
    if (go && done.some((r) => r.destroyed.length > 0))
      log.warn(
        `guest ${opts.vmid}: the backup server keeps every restore point, but its chain now has backups this node no longer has: ` +
          'the next backups of this guest are refused as diverged until a new chain can start beside the old one, which zbm does not do yet (docs/proxmox.md, "Not built yet")',
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
  }
}
