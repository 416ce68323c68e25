/**
 * The run of prepare-rollback: the guest's datasets on this node, the backup server's copies, the
 * plan (plan.ts), and with a yes the destruction of zbm's snapshots and bookmarks in the way, under
 * the guest's lock. The command (commands/prepare-rollback.ts) checks its flags, gives the hosts
 * and the question on a terminal; the plan, the JSON and the closing line are report.ts's.
 */
import { families, isHoldTag, targetDataset } from '../conventions/names.ts';
import { ExitCode, errorMessage, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { acquire, describeHolder, describeWait } from '../lock/lock.ts';
import { parseStorageCfg, parseVmlist, readPveState, zfsPools } from '../pve/index.ts';
import { isVolumeOf } from '../pve/volumes.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';
import { describeRefusal, planRollbackPreparation, type ServerCopy, type ServerView } from './plan.ts';
import { type DatasetDone, printCleared, printJson, printPlan, printRefusal } from './report.ts';

/** What a run does, from prepare-rollback's flags (the command's options are one). */
export interface RollbackScope {
  readonly vmid: number;
  readonly node?: string;
  readonly snapshot?: string;
  readonly prefix: string;
  readonly remote?: string;
  readonly remoteZfsRoot?: string;
  readonly force?: boolean;
  readonly yes?: boolean;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly lockWait: number;
}

/** What a run reaches and asks; the command gives them. */
export interface RollbackIO {
  readonly out: (s: string) => void;
  /** This node, under its Proxmox name. */
  local(node: string): Host;
  /** The backup server (--remote), made once the guest's lock is held. */
  remote(destination: string): Host;
  readonly pveRoot: string;
  /** How to ask before destroying, when there is a way (a terminal): looked up only when needed. */
  asker(): ((question: string) => Promise<boolean>) | undefined;
}

/** What a run reports besides stdout; the command's logger is one. */
export interface RollbackLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
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

/**
 * Clears what zbm has on one guest's datasets of this node that would stand in the way of `qm
 * rollback <vmid> <snapshot>` (without --snapshot: everything zbm has there), under the guest's
 * lock so that no backup runs meanwhile; returns the exit code.
 */
export async function prepareGuestRollback(
  scope: RollbackScope,
  io: RollbackIO,
  log: RollbackLog,
): Promise<number> {
  const { out } = io;
  const state = await readPveState(io.pveRoot, scope.node);
  const entry = parseVmlist(state.vmlist).entries.find((e) => e.vmid === scope.vmid);
  if (!entry) throw new ZbmError(`guest ${scope.vmid} is not in /etc/pve/.vmlist`);
  if (entry.node !== state.node)
    throw new ZbmError(
      `guest ${scope.vmid} runs on node ${entry.node}, not on ${state.node}: run zbm prepare-rollback there`,
    );
  const pools = [
    ...new Set(
      [...zfsPools(parseStorageCfg(state.storageCfg)).values()]
        .filter((p) => !p.disabled && p.pool !== '' && (p.nodes === null || p.nodes.includes(state.node)))
        .map((p) => p.pool),
    ),
  ];
  const local = io.local(state.node);
  const zfs = new Zfs(local);

  const acquired = await acquire(
    `guest-${scope.vmid}`,
    `prepare-rollback of guest ${scope.vmid}`,
    scope.lockWait * 1000,
    (h, ms) => log.info(describeWait(`guest ${scope.vmid}`, h, ms)),
  );
  if ('heldBy' in acquired) {
    log.error(
      `guest ${scope.vmid}: ${describeHolder(acquired.heldBy)} is working on it; nothing changed, try again`,
    );
    return ExitCode.failure;
  }
  const remote =
    scope.remote === undefined || scope.remoteZfsRoot === undefined
      ? null
      : { host: io.remote(scope.remote), root: scope.remoteZfsRoot };
  try {
    const datasets = await guestDatasets(zfs, pools, scope.vmid);
    let server: ServerView | null = null;
    if (remote) {
      try {
        server = await observeServer(remote.host, remote.root, datasets, scope.prefix);
      } catch (err) {
        const where = `${remote.host.name}:${datasets.map((d) => targetDataset(remote.root, d.name)).join(', ')}`;
        if (scope.force !== true) {
          log.error(
            `guest ${scope.vmid} on ${state.node}: nothing destroyed: cannot see which zbm snapshots the backup server has (${where}): ${errorMessage(err)}; ` +
              `run again when ${remote.host.name} answers, or with --force to destroy them unchecked, losing any restore point that exists nowhere else`,
          );
          return ExitCode.failure;
        }
        log.warn(`guest ${scope.vmid}: --force: not checked against ${where}: ${errorMessage(err)}`);
      }
    }
    const plan = planRollbackPreparation(datasets, {
      prefix: scope.prefix,
      snapshot: scope.snapshot,
      server,
      force: scope.force === true,
    });
    const head = { vmid: scope.vmid, node: state.node, snapshot: scope.snapshot };
    if (plan.kind === 'error') {
      log.error(`guest ${scope.vmid} on ${state.node}: ${plan.error}`);
      return ExitCode.failure;
    }
    if (plan.kind !== 'plan') {
      if (scope.json) printRefusal(head, plan, out);
      log.error(`guest ${scope.vmid} on ${state.node}: ${describeRefusal(plan, state.node, scope.vmid)}`);
      return ExitCode.failure;
    }
    const work = plan.datasets.filter((p) => p.destroy.length + p.bookmarks.length > 0);
    if (!scope.json) printPlan(head, plan, server, out);
    let go = scope.yes === true && scope.dryRun !== true;
    if (!go && work.length > 0 && scope.dryRun !== true && !scope.json) {
      const ask = io.asker();
      if (ask) go = await ask('Destroy the zbm snapshots and bookmarks above?');
      else log.info('nothing destroyed: run again with -y to destroy them');
    }
    const done: DatasetDone[] = [];
    if (go) {
      for (const p of work) {
        const r: DatasetDone = { dataset: p.dataset, destroyed: [], bookmarks: [], error: null };
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
    if (scope.json) printJson(head, plan, done, go, out);
    else if (go && !failed) printCleared(head, entry.type, blocked, out);
    // Forced: what the server was seen to lack, or without a look at it, everything destroyed.
    const lost = done.flatMap((r) => {
      const p = plan.datasets.find((x) => x.dataset === r.dataset);
      const atRisk = new Set(p?.unreplicated ?? p?.destroy);
      return r.destroyed.filter((s) => atRisk.has(s)).map((s) => `${r.dataset}@${s}`);
    });
    if (lost.length > 0)
      log.warn(
        server
          ? `guest ${scope.vmid}: --force destroyed restore points ${server.host} does not have, which exist nowhere else now: ${lost.join(', ')}`
          : `guest ${scope.vmid}: --force destroyed zbm snapshots without checking that a backup server has them: ${lost.join(', ')}`,
      );
    if (go && done.some((r) => r.destroyed.length > 0))
      log.warn(
        `guest ${scope.vmid}: the backup server keeps every restore point${lost.length > 0 ? ' it received' : ''}, but its chain now has backups this node no longer has: ` +
          'the next backup of each of its disks starts a new chain beside the old one, from the newest zbm snapshot it still shares with the server (docs/proxmox.md, "A disk\'s chains")',
      );
    else if (!go && work.length === 0 && !scope.json) {
      out(`nothing of zbm stands in the way${blocked ? ' (but see above)' : ''}\n`);
    }
    if (blocked)
      log.warn(
        `guest ${scope.vmid}: other snapshots or bookmarks still stand in the way of the rollback (see above)`,
      );
    return failed ? ExitCode.failure : ExitCode.ok;
  } finally {
    acquired.lock.release();
  }
}
