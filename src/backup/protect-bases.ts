/**
 * What a run leaves behind once its disks are sent: the new bases held on the backup server (moved
 * from the old ones), what an earlier zbm left on the node (holds, bookmarks) cleared, and the node
 * snapshots no longer needed listed for destruction, only for a guest whose bases are held. The
 * decisions (protection, obsoleteSnapshots) are pure; protectAll carries them out.
 */
import { forEachLimited } from '../concurrency.ts';
import { holdTag, isHoldTagFrom } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import { isProxmoxSnapshot } from '../pve/volumes.ts';
import { BOOKMARK_CONCURRENCY, moveHold } from '../transfer/protect.ts';
import type { SyncResult } from '../transfer/sync.ts';
import type { Dataset, Hold } from '../zfs/types.ts';
import { batchThenEach } from './batch.ts';
import type { BackupContext, GuestRun } from './context.ts';

/**
 * The source side of backup-pve's hold tag names no node: a guest that migrates takes its datasets
 * and their holds to another node, and the backup server's hold must be the same from either node,
 * or the old node's hold would pin an old base there forever.
 */
export const PVE_SOURCE = 'pve';

/**
 * The snapshots on the backup server that had a hold when the run began, by target of the runs'
 * disks: the ones that may carry the run's tag, to look up early and to release unless still needed.
 */
export function heldOnServer(
  runs: readonly GuestRun[],
  chains: ReadonlyMap<string, readonly Dataset[]>,
): Map<string, string[]> {
  return new Map(
    runs.flatMap((r) =>
      [...(r.prepared?.targets.values() ?? [])].map((t): [string, string[]] => [
        t,
        serverSnapshots(chains, t)
          .filter((s) => s.userrefs > 0)
          .map((s) => s.name),
      ]),
    ),
  );
}

/** The snapshots of every chain of a disk on the backup server (primary: `<root>/<volume>`). */
export function serverSnapshots(
  chains: ReadonlyMap<string, readonly Dataset[]>,
  primary: string,
): Dataset['snapshots'] {
  return (chains.get(primary) ?? []).flatMap((d) => d.snapshots);
}

/** The hold tags backup-pve ever put on a node's snapshots (`zbm-base:pve:<remote>`), whatever the remote. */
function isNodeHoldTag(tag: string): boolean {
  return isHoldTagFrom(tag, PVE_SOURCE);
}

/** One disk sent this run, and what stays of it on both sides (docs/proxmox.md). */
interface Protection {
  readonly run: GuestRun;
  /** zbm's snapshots of the node dataset to destroy once the base is held (with -y). */
  readonly obsolete: readonly string[];
  /** Snapshots on the backup server to hold: the ones whose guid the node keeps. */
  readonly hold: readonly string[];
  /** Node snapshots that carry a hold (an earlier zbm held its base on the node): to release. */
  readonly nodeHeld: readonly string[];
  /** zbm bookmarks on the node (an earlier zbm bookmarked its base): to destroy. */
  readonly nodeBookmarks: readonly string[];
}

/**
 * What a synced disk leaves behind. On the node: zbm's snapshots only, never a hold (it would make
 * Proxmox's `zfs destroy -r` fail) nor a bookmark (one newer than a rollback target passes Proxmox's
 * check and then makes `zfs rollback` fail, leaving the guest stopped and locked). On the backup
 * server: a hold on every snapshot whose guid the node keeps, so that whatever the node does next
 * (a rollback to before its newest backup keeps an older zbm snapshot), the base is there. Pure.
 */
export function protection(
  source: Dataset,
  target: string,
  /** The disk's snapshots on the server before the run, in any of its chains. */
  serverBefore: readonly { readonly guid: string; readonly name: string }[],
  sync: Pick<SyncResult, 'common' | 'sent'>,
  prefix: string,
  keepSource: number,
): Omit<Protection, 'run'> {
  const onServer = new Map<string, string>();
  for (const s of serverBefore) onServer.set(s.guid, s.name);
  for (const short of sync.sent) {
    const s = source.snapshots.find((x) => x.short === short);
    if (s) onServer.set(s.guid, `${target}@${short}`);
  }
  onServer.set(sync.common.guid, `${target}@${sync.common.short}`);
  const obsolete = obsoleteSnapshots(source, sync.common.short, prefix, keepSource, new Set(onServer.keys()));
  const gone = new Set(obsolete);
  const kept = source.snapshots.filter((s) => s.short.startsWith(prefix) && !gone.has(s.name));
  const hold = [
    ...new Set(kept.flatMap((s) => onServer.get(s.guid) ?? []).concat(onServer.get(sync.common.guid) ?? [])),
  ];
  return {
    obsolete,
    hold,
    nodeHeld: source.snapshots.filter((s) => s.userrefs > 0).map((s) => s.name),
    nodeBookmarks: source.bookmarks.filter((b) => b.short.startsWith(prefix)).map((b) => b.name),
  };
}

/**
 * Protects every new base of the run on the backup server (the holds moved in one `zfs holds`,
 * `hold` and `release`), then clears what an earlier zbm left on the node: its holds (one `zfs
 * holds` and `release`, none when no snapshot there has a hold) and its bookmarks (one call each).
 * Only a guest whose bases are held on the backup server gets its obsolete snapshots on the list
 * to destroy: without a protected base, nothing is destroyed on the node.
 */
export async function protectAll(
  ctx: BackupContext,
  runs: readonly GuestRun[],
  chains: ReadonlyMap<string, readonly Dataset[]>,
  /** heldOnServer's answer: what may carry the tag now, released unless held again. */
  heldBefore: ReadonlyMap<string, readonly string[]>,
  earlyHolds: readonly Hold[] | undefined,
): Promise<void> {
  const { log } = ctx;
  const withPairs = runs.filter((r) => r.synced.length > 0);
  const plans = new Map(
    withPairs.map((r) => [
      r,
      r.synced.map(({ source, target, primary, sync }) => ({
        run: r,
        ...protection(source, target, serverSnapshots(chains, primary), sync, ctx.prefix, ctx.keepSource),
      })),
    ]),
  );
  const problems = new Map<GuestRun, string>();
  const tag = holdTag(PVE_SOURCE, ctx.remote.name);
  const move = (rs: readonly GuestRun[], known?: readonly Hold[]) => {
    const ps = rs.flatMap((r) => plans.get(r) ?? []);
    return moveHold(
      ctx.remoteZfs,
      tag,
      ps.flatMap((p) => p.hold),
      rs.flatMap((r) => r.synced.flatMap((x) => heldBefore.get(x.primary) ?? [])),
      known,
    );
  };
  // Idempotent (holds are looked up again before they are moved), so a failed batch is redone per
  // guest; also for one guest when the batch used the early lookup, which may have gone stale.
  const holdErrors = await batchThenEach(
    withPairs,
    (rs) => move(rs, earlyHolds),
    log,
    'holding the bases on the backup server',
    (r) => move([r]),
    earlyHolds !== undefined,
  );
  for (const [i, err] of holdErrors) problems.set(withPairs[i] as GuestRun, err);

  // What an earlier zbm left on the node. Its failure is reported; the base is safe all the same.
  const leftovers = withPairs.flatMap((r) => plans.get(r) ?? []);
  const cleanup: string[] = [];
  const nodeHeld = leftovers.flatMap((p) => p.nodeHeld);
  try {
    const held = (nodeHeld.length > 0 ? await ctx.localZfs.holds(nodeHeld) : []).filter((h) =>
      isNodeHoldTag(h.tag),
    );
    for (const t of new Set(held.map((h) => h.tag))) {
      await ctx.localZfs.release(
        t,
        held.filter((h) => h.tag === t).map((h) => h.snapshot),
      );
    }
    if (held.length > 0) cleanup.push(`released ${held.length} hold(s) an earlier zbm put on this node`);
  } catch (err) {
    log.error(`releasing the holds an earlier zbm put on this node's snapshots: ${errorMessage(err)}`);
  }
  await forEachLimited(leftovers, BOOKMARK_CONCURRENCY, async (p) => {
    for (const b of p.nodeBookmarks) {
      try {
        await ctx.localZfs.destroyBookmark(b);
        cleanup.push(`destroyed bookmark ${b}`);
      } catch (err) {
        log.error(
          `${p.run.label}: destroying ${b} (an earlier zbm's bookmark: it would make a rollback to an older snapshot fail): ${errorMessage(err)}`,
        );
      }
    }
  });
  for (const c of cleanup) log.info(c);

  for (const r of withPairs) {
    const err = problems.get(r);
    if (err !== undefined) {
      // Without a protected base, nothing is destroyed on the node this run.
      log.error(`${r.label}: holding the new base snapshots on ${ctx.remote.name}: ${err}`);
      continue;
    }
    for (const p of plans.get(r) ?? []) r.obsolete.push(...p.obsolete);
  }
}

/**
 * zbm's snapshots of source that are no longer needed: all but the newest keepSource, the common
 * base, and the rollback anchors, the newest zbm snapshot before each snapshot an administrator
 * took (Proxmox's own snapshots aside) when the backup server has it (onServer, by guid). After
 * `qm rollback` to that snapshot the anchor is still on the node: the base from which a new chain
 * beside the old one starts without sending the whole disk again (plan/chain.ts). Pure.
 */
export function obsoleteSnapshots(
  source: Dataset,
  common: string,
  prefix: string,
  keepSource: number,
  onServer: ReadonlySet<string> = new Set(),
): string[] {
  const ours = source.snapshots.filter((s) => s.short.startsWith(prefix));
  const keep = new Set(ours.slice(Math.max(0, ours.length - keepSource)).map((s) => s.short));
  keep.add(common);
  let last: Dataset['snapshots'][number] | null = null;
  for (const s of [...source.snapshots].sort((a, b) => a.createtxg - b.createtxg)) {
    if (s.short.startsWith(prefix)) last = s;
    else if (!isProxmoxSnapshot(s.short) && last && onServer.has(last.guid)) keep.add(last.short);
  }
  return ours.filter((s) => !keep.has(s.short)).map((s) => s.name);
}
