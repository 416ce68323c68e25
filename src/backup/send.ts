/**
 * The send step of a run: one `zfs list` of the fresh snapshots, then every disk of every guest
 * through the shared send loop (transfer/send-loop.ts), each result kept in its guest's slot in
 * the order of its disks. A disk's failure stays its own. A template's disks go first, so that its
 * linked clones, backed up in the same run, start on the backup server as clones of it.
 */
import { errorMessage, ZbmError } from '../errors.ts';
import { type ChainPlan, planChain, type SharedHistory } from '../plan/chain.ts';
import type { SnapRef } from '../plan/diff.ts';
import { TEMPLATE_SNAPSHOT } from '../pve/volumes.ts';
import { sendEach } from '../transfer/send-loop.ts';
import { type Renamed, renamedListing, sourceRefs, syncDataset } from '../transfer/sync.ts';
import { splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { batchThenEach } from './batch.ts';
import type { BackupContext, DiskResult, GuestRun } from './context.ts';

/** One disk's transfer: its result, and what it left to protect when it went through. */
interface SentDisk {
  readonly disk: DiskResult;
  /** The disk as listed after its snapshot, as the manifest names it (a template's under zbm's name). */
  readonly source?: Dataset;
  readonly synced?: GuestRun['synced'][number];
}

/**
 * Lists the disks of every guest just snapshotted, in one call (one per guest if that fails: the
 * guest whose listing fails ends here, failed). The listing names the fresh snapshots' guids.
 */
export async function listFresh(
  ctx: BackupContext,
  runs: readonly GuestRun[],
): Promise<Map<string, Dataset>> {
  const { log } = ctx;
  const fresh = new Map<string, Dataset>();
  const errors = await batchThenEach(
    runs,
    async (rs) => {
      const roots = rs.flatMap((r) => (r.prepared?.disks ?? []).map((d) => d.dataset));
      for (const d of await ctx.localZfs.list({ roots, depth: 1, withOrigin: true })) fresh.set(d.name, d);
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
  return fresh;
}

/**
 * Sends each disk of the guests, ctx.jobs at a time, from their fresh listing (listFresh). A disk's
 * failure is its own: the other disks and guests go on.
 */
export async function sendAll(
  ctx: BackupContext,
  runs: readonly GuestRun[],
  /** Each disk's chains on the backup server, by its first chain (conventions/names.ts families). */
  chains: ReadonlyMap<string, readonly Dataset[]>,
  /** The node's datasets as listed at the start of the run: where a linked clone's origin is. */
  sourceListing: ReadonlyMap<string, Dataset>,
  /** The guests' disks as listed after their snapshots (listFresh). */
  fresh: ReadonlyMap<string, Dataset>,
): Promise<void> {
  const { log } = ctx;
  const sending = runs.filter((x) => x.end === null);
  const work = sending.flatMap((r) => (r.prepared?.disks ?? []).map((disk) => ({ r, disk })));
  const left = new Map(sending.map((r) => [r, r.prepared?.disks.length ?? 0]));
  // Every snapshot on the backup server by guid: what a disk's first backup may start from.
  const onServer = snapshotsByGuid([...chains.values()].flat());
  // A linked clone whose template goes in this run waits for it: then it starts as its clone.
  const inRun = new Set(work.map((w) => w.disk.dataset));
  const originIn = (dataset: string) => {
    const origin = fresh.get(dataset)?.origin;
    return origin ? inRun.has(splitSnapshot(origin).dataset) : false;
  };
  const waves = [work.filter((w) => !originIn(w.disk.dataset)), work.filter((w) => originIn(w.disk.dataset))];
  // By work item: the waves end in another order than the work's.
  const sent = new Map<(typeof work)[number], SentDisk>();
  for (const [n, wave] of waves.entries()) {
    if (wave.length === 0) continue;
    if (n > 0) {
      const origins = [
        ...new Set(
          wave.flatMap(({ disk }) => {
            const origin = fresh.get(disk.dataset)?.origin;
            const dataset = origin ? splitSnapshot(origin).dataset : '';
            const r = work.find((w) => w.disk.dataset === dataset)?.r;
            const target = r?.prepared?.targets.get(dataset);
            return target ? [target] : [];
          }),
        ),
      ];
      try {
        const listed = await ctx.remoteZfs.list({ roots: origins, depth: 1 });
        for (const [guid, name] of snapshotsByGuid(listed)) onServer.set(guid, name);
      } catch (err) {
        log.warn(`listing the templates just sent on ${ctx.remote.name}: ${errorMessage(err)}`);
      }
    }
    const done = await sendWave(wave);
    for (const [i, w] of wave.entries()) {
      const d = done[i];
      if (d) sent.set(w, d);
    }
  }

  async function sendWave(wave: typeof work): Promise<SentDisk[]> {
    return sendEach(
      wave,
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
        const listed = fresh.get(disk.dataset) ?? null;
        const family = chains.get(primary) ?? [];
        const { chain, source, sends, renamed } = planDisk({
          prefix: ctx.prefix,
          where: { node: ctx.node, dataset: disk.dataset, server: ctx.remote.name },
          primary,
          listed,
          family,
          templateName: r.prepared?.template ? r.snapshot : null,
          sourceListing,
          onServer,
        });
        if (chain.kind === 'refused') throw new ZbmError(chain.reason);
        const target = chain.target;
        if (chain.kind === 'new' && chain.first)
          log.info(
            `${r.label}: disk ${disk.key}: its first backup starts as a clone of ${chain.origin}: ${chain.why}, so only what differs travels`,
          );
        else if (chain.kind === 'new')
          log.warn(
            `${r.label}: disk ${disk.key}: ${chain.why}. Its backups go on in a new chain, ${target}, ` +
              (chain.origin ? `a clone of ${chain.origin}` : 'a full copy') +
              '; the older chain stays with its restore points',
          );
        const streamEnded = await takeStream();
        const sync = await syncDataset(
          { zfs: ctx.localZfs, dataset: disk.dataset, listing: listed },
          {
            zfs: ctx.remoteZfs,
            dataset: target,
            listing: chain.kind === 'new' ? null : (family.find((d) => d.name === target) ?? null),
          },
          {
            select: sends,
            renamed,
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
          source: source ?? undefined,
          // A template's disk leaves nothing to protect: its @__base__ is Proxmox's and never changes.
          synced: listed && !renamed ? { source: listed, target, primary, sync } : undefined,
        };
      },
    );
  }
  // In the order of the work, so that a guest's disks keep their order in its result and manifest
  // whatever order the transfers end in.
  for (const w of work) {
    const { r } = w;
    const s = sent.get(w);
    if (!s) continue;
    r.disks.push(s.disk);
    if (s.source) r.listed.set(s.source.name, s.source);
    if (s.synced) r.synced.push(s.synced);
  }
  for (const r of sending) r.finished ??= Date.now();
}

/**
 * Where a disk goes and what travels, for a run and for its dry run alike. A template's disk sends
 * its @__base__ alone, under zbm's name for the template (templateName).
 */
export function planDisk(p: {
  readonly prefix: string;
  readonly where: { readonly node: string; readonly dataset: string; readonly server: string };
  readonly primary: string;
  readonly listed: Dataset | null;
  readonly family: readonly Dataset[];
  readonly templateName: string | null;
  readonly sourceListing: ReadonlyMap<string, Dataset>;
  readonly onServer: ReadonlyMap<string, string>;
}): {
  readonly chain: ChainPlan;
  readonly source: Dataset | null;
  readonly sends: (short: string) => boolean;
  readonly renamed: Renamed | undefined;
} {
  const ours = (short: string) => short.startsWith(p.prefix);
  const renamed: Renamed | undefined =
    p.templateName === null ? undefined : { short: TEMPLATE_SNAPSHOT, as: p.templateName };
  const source = renamedListing(p.listed, renamed);
  const sends = renamed ? (short: string) => short === renamed.as : ours;
  const chain = planChain(
    sourceRefs(source, sends),
    p.primary,
    p.family,
    p.where,
    ours,
    sharedHistory(source, sends, ours, p.sourceListing, p.onServer),
  );
  return { chain, source, sends, renamed };
}

/** Every snapshot under the backup server's root by guid, as `<dataset>@<snapshot>`. */
export function snapshotsByGuid(datasets: Iterable<Dataset>): Map<string, string> {
  const byGuid = new Map<string, string>();
  for (const ds of datasets) for (const s of ds.snapshots) byGuid.set(s.guid, `${ds.name}@${s.short}`);
  return byGuid;
}

/**
 * What a disk's first backup may start from (plan/chain.ts SharedHistory): its snapshots of zbm that
 * do not travel themselves (a template's, carried over from the guest it was), and the origin of a
 * linked clone, looked up in the node's listing.
 */
function sharedHistory(
  source: Dataset | null,
  sends: (short: string) => boolean,
  ours: (short: string) => boolean,
  sourceListing: ReadonlyMap<string, Dataset>,
  onServer: ReadonlyMap<string, string>,
): SharedHistory {
  const history: (SnapRef & { dataset?: string })[] = (source?.snapshots ?? []).filter(
    (s) => ours(s.short) && !sends(s.short),
  );
  if (source?.origin) {
    const { dataset, snapshot } = splitSnapshot(source.origin);
    const origin = sourceListing.get(dataset)?.snapshots.find((s) => s.short === snapshot);
    if (origin) history.push({ ...origin, dataset });
  }
  return { history, onServer };
}
