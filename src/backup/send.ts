/**
 * The send step of a run: one `zfs list` of the fresh snapshots, then every disk of every guest
 * through the shared send loop (transfer/send-loop.ts), each result kept in its guest's slot in
 * the order of its disks. A disk's failure stays its own.
 */
import { errorMessage, ZbmError } from '../errors.ts';
import { planChain } from '../plan/chain.ts';
import { sendEach } from '../transfer/send-loop.ts';
import { sourceRefs, syncDataset } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import { batchThenEach } from './batch.ts';
import type { BackupContext, DiskResult, GuestRun } from './context.ts';

/** One disk's transfer: its result, and what it left to protect when it went through. */
interface SentDisk {
  readonly disk: DiskResult;
  readonly synced?: GuestRun['synced'][number];
}

/**
 * Lists the fresh snapshots of every guest in one call, then sends each disk, ctx.jobs at a time.
 * A disk's failure is its own: the other disks and guests go on.
 */
export async function sendAll(
  ctx: BackupContext,
  runs: readonly GuestRun[],
  /** Each disk's chains on the backup server, by its first chain (conventions/names.ts families). */
  chains: ReadonlyMap<string, readonly Dataset[]>,
): Promise<void> {
  const { log } = ctx;
  const fresh = new Map<string, Dataset>();
  const errors = await batchThenEach(
    runs,
    async (rs) => {
      const roots = rs.flatMap((r) => (r.prepared?.disks ?? []).map((d) => d.dataset));
      for (const d of await ctx.localZfs.list({ roots, depth: 1 })) fresh.set(d.name, d);
    },
    log,
    'zfs list',
  );
  for (const [i, r] of runs.entries()) {
    const err = errors.get(i);
    if (err !== undefined) {
      log.error(`${r.label}: ${err}`);
      r.end = { result: 'failed', error: err };
    }
  }

  const select = (short: string) => short.startsWith(ctx.prefix);
  const sending = runs.filter((x) => x.end === null);
  const work = sending.flatMap((r) => (r.prepared?.disks ?? []).map((disk) => ({ r, disk })));
  const left = new Map(sending.map((r) => [r, r.prepared?.disks.length ?? 0]));
  const sent = await sendEach(
    work,
    {
      jobs: ctx.jobs ?? 1,
      failed: ({ r, disk }, err): SentDisk => {
        const target = r.prepared?.targets.get(disk.dataset) ?? '';
        const error = errorMessage(err);
        log.error(`${r.label}: disk ${disk.key} ${disk.dataset} → ${ctx.remote.name}:${target}: ${error}`);
        return {
          disk: {
            key: disk.key,
            source: disk.dataset,
            target,
            mode: 'failed',
            resumed: null,
            bytes: 0,
            error,
          },
        };
      },
      // The guest's last disk: its own duration ends here, not with the run.
      settled: ({ r }) => {
        const n = (left.get(r) ?? 0) - 1;
        left.set(r, n);
        if (n === 0) r.finished = Date.now();
      },
    },
    async ({ r, disk }, takeStream): Promise<SentDisk> => {
      const primary = r.prepared?.targets.get(disk.dataset) ?? '';
      const source = fresh.get(disk.dataset) ?? null;
      const family = chains.get(primary) ?? [];
      const chain = planChain(
        sourceRefs(source, select),
        primary,
        family,
        {
          node: ctx.node,
          dataset: disk.dataset,
          server: ctx.remote.name,
        },
        select,
      );
      if (chain.kind === 'refused') throw new ZbmError(chain.reason);
      const target = chain.target;
      if (chain.kind === 'new')
        log.warn(
          `${r.label}: disk ${disk.key}: ${chain.why}. Its backups go on in a new chain, ${target}, ` +
            (chain.origin ? `a clone of ${chain.origin}` : 'a full copy') +
            '; the older chain stays with its restore points',
        );
      const streamEnded = await takeStream();
      const sync = await syncDataset(
        { zfs: ctx.localZfs, dataset: disk.dataset, listing: source },
        {
          zfs: ctx.remoteZfs,
          dataset: target,
          listing: chain.kind === 'new' ? null : (family.find((d) => d.name === target) ?? null),
        },
        {
          select,
          limiter: ctx.limiter,
          onProgress: (b) => ctx.onProgress?.(`${r.label} ${disk.key}`, b),
          onMessage: (m) => log.warn(`${r.label}: ${m}`),
          // The backup server's prune waits for (or skips) a dataset while this receive runs.
          receiveLock: { what: 'backup-pve', waitSeconds: ctx.lockWaitMs / 1000 },
          onStreamsEnd: streamEnded,
          newChain: chain.kind === 'new' ? { origin: chain.origin, steps: chain.steps } : undefined,
        },
      );
      return {
        disk: {
          key: disk.key,
          source: disk.dataset,
          target,
          mode: sync.mode,
          resumed: sync.resumed,
          bytes: sync.bytes,
        },
        synced: source ? { source, target, primary, sync } : undefined,
      };
    },
  );
  // In the order of the work, so that a guest's disks keep their order in its result and manifest
  // whatever order the transfers end in.
  for (const [i, { r }] of work.entries()) {
    const s = sent[i];
    if (!s) continue;
    r.disks.push(s.disk);
    if (s.synced) r.synced.push(s.synced);
  }
  for (const r of sending) r.finished ??= Date.now();
}
