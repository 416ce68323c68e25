import { ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { type Endpoint, PipeError, type PipeOptions, type PipeResult, pipe } from '../host/pipe.ts';
import type { RateLimiter } from '../host/rate.ts';
import { splice } from '../host/splice.ts';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../lock/lock.ts';
import { lockedArgv } from '../lock/remote.ts';
import { type Diff, describeConflict, diff, type SnapRef, type Step } from '../plan/diff.ts';
import { receiveArgv, resumeSendArgv, sendArgv } from '../zfs/argv.ts';
import { countedSendArgv, streamBytes } from '../zfs/counted-send.ts';
import { refusedByOlderServe } from '../zfs/older-serve.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';

export interface SyncSide {
  readonly zfs: Zfs;
  readonly dataset: string;
  /** The dataset as listed at the start of the run; null when it does not exist. */
  readonly listing: Dataset | null;
}

export interface SyncOptions {
  /** Only snapshots whose short name passes travel (zbm's prefix). */
  readonly select: (short: string) => boolean;
  readonly limiter?: RateLimiter;
  readonly onProgress?: (bytes: number) => void;
  readonly onMessage?: (msg: string) => void;
  /** The option that rolls a diverged target back, named in the conflict message. */
  readonly rollbackOption?: string;
  /**
   * A receive on another host runs under that host's lock of the target dataset (the lock its
   * prune takes), waiting this long for it; false when the caller holds that lock itself.
   */
  readonly receiveLock?: { readonly what: string; readonly waitSeconds: number } | false;
  /**
   * Called once the last stream has passed, while its receive may still be committing (for a
   * small increment, most of its time): the caller may start the next stream meanwhile.
   */
  readonly onStreamsEnd?: () => void;
  /**
   * The target is a disk's new chain (plan/chain.ts), which does not exist yet: these steps, the
   * first received as a clone of origin (a snapshot on the target's host) when it is not null.
   */
  readonly newChain?: { readonly origin: string | null; readonly steps: readonly Step[] };
  /**
   * A snapshot that travels under another name: `short` on the source is received as `as`
   * (`zfs receive <dataset>@<as>`, also when an interrupted receive of it resumes), and the plan
   * and the result speak of `as`. A template's `@__base__` is kept under zbm's name this way.
   */
  readonly renamed?: Renamed;
}

export interface Renamed {
  readonly short: string;
  readonly as: string;
}

/** The listing as the plan sees it: renamed.short under its new name. */
export function renamedListing(listing: Dataset | null, renamed: Renamed | undefined): Dataset | null {
  if (!listing || !renamed) return listing;
  return {
    ...listing,
    snapshots: listing.snapshots.map((s) => (s.short === renamed.short ? { ...s, short: renamed.as } : s)),
  };
}

export type SyncMode = 'full' | 'incremental' | 'up-to-date';

export interface SyncResult {
  readonly mode: SyncMode;
  readonly bytes: number;
  /** A resumed interrupted transfer, or a stale token that was cleared. */
  readonly resumed: 'resumed' | 'stale-token-cleared' | null;
  /** The newest snapshot both sides now have. */
  readonly common: SnapRef;
  readonly sent: readonly string[];
}

export class SyncConflictError extends ZbmError {
  override name = 'SyncConflictError';
}

/** The sender's messages when the snapshot a resume token points at is gone. */
const STALE_TOKEN =
  /no longer exists|does not exist|cannot resume send|invalid resume token|kernel modules must be upgraded/i;

/** What a source offers to send: its selected snapshots and bookmarks. */
export function sourceRefs(listing: Dataset | null, select: (s: string) => boolean) {
  return {
    snapshots: (listing?.snapshots ?? []).filter((s) => select(s.short)),
    bookmarks: (listing?.bookmarks ?? []).filter((b) => select(b.short)),
  };
}

export function planSync(source: SyncSide, target: SyncSide, select: (s: string) => boolean): Diff {
  return diff(sourceRefs(source.listing, select), {
    snapshots: target.listing ? target.listing.snapshots : null,
    written: target.listing?.written ?? 0,
  });
}

function stepArgv(dataset: string, step: Step, raw: boolean, renamed: Renamed | undefined): string[] {
  const from = step.from
    ? `${step.from.dataset ?? dataset}${step.from.bookmark ? '#' : '@'}${step.from.short}`
    : undefined;
  const to = renamed?.as === step.to.short ? renamed.short : step.to.short;
  return sendArgv({ snapshot: `${dataset}@${to}`, from, raw });
}

/** Hosts whose zbm serve refused the counted send: their streams pass through node. */
const uncounted = new WeakSet<Host>();

/**
 * One stream from a `zfs send` into a `zfs receive`. Without a rate limit the stream goes through
 * the kernel alone (splice.ts) and the sender reports its size; with one, or from a `zbm serve`
 * too old to report it, it passes through node, which meters it.
 */
async function transfer(
  send: Endpoint,
  receive: Endpoint,
  opts: PipeOptions & { readonly onMessage?: (msg: string) => void },
): Promise<PipeResult> {
  if (opts.limiter || uncounted.has(send.host)) return pipe(send, receive, opts);
  try {
    return await splice({ ...send, argv: countedSendArgv(send.argv) }, receive, {
      measure: streamBytes,
      onProgress: opts.onProgress,
      onStreamEnd: opts.onStreamEnd,
    });
  } catch (err) {
    if (!(err instanceof PipeError)) throw err;
    if (err.fromExit.code === 1 && refusedByOlderServe(err.fromStderr)) {
      uncounted.add(send.host);
      opts.onMessage?.(
        `${send.host.name} runs a zbm serve that refuses zbm's counted send (upgrade zbm there): its streams pass through zbm`,
      );
      return pipe(send, receive, opts);
    }
    // Messages name zfs send, not the script that counts its stream.
    throw new PipeError(send, receive, err.fromExit, err.toExit, err.fromStderr, err.toStderr, err.bytes);
  }
}

async function reload(side: SyncSide): Promise<Dataset | null> {
  const found = await side.zfs.list({ roots: [side.dataset], depth: 1 });
  return found.find((d) => d.name === side.dataset) ?? null;
}

/**
 * Brings target up to date with source: first finishes an interrupted receive from its token (or
 * clears a stale one, saying so), then sends every selected snapshot the target lacks. Never rolls
 * the target back: a conflict is an error that leaves both sides untouched.
 */
export async function syncDataset(
  source: SyncSide,
  target: SyncSide,
  opts: SyncOptions,
): Promise<SyncResult> {
  const raw = source.listing?.encrypted ?? false;
  const { renamed } = opts;
  const sourceView = { ...source, listing: renamedListing(source.listing, renamed) };
  let bytes = 0;
  let resumed: SyncResult['resumed'] = null;
  let targetListing = target.listing;
  const progress = (n: number) => opts.onProgress?.(bytes + n);
  const lock = opts.receiveLock ?? { what: 'a transfer', waitSeconds: DEFAULT_LOCK_WAIT_SECONDS };
  const recvArgv = (origin?: string | null) => {
    const argv = receiveArgv({
      target: renamed ? `${target.dataset}@${renamed.as}` : target.dataset,
      set: origin ? { origin } : undefined,
    });
    return lock && !target.zfs.host.isLocal
      ? lockedArgv(target.dataset, lock.waitSeconds, `${lock.what} into ${target.dataset}`, argv)
      : argv;
  };
  const recv = recvArgv();

  const token = targetListing?.resumeToken;
  if (token) {
    try {
      const r = await transfer(
        { host: source.zfs.host, argv: resumeSendArgv(token) },
        { host: target.zfs.host, argv: recv },
        { limiter: opts.limiter, onProgress: progress, onMessage: opts.onMessage },
      );
      bytes += r.bytes;
      resumed = 'resumed';
      opts.onMessage?.(`${target.dataset}: resumed the interrupted transfer (${r.bytes} bytes)`);
    } catch (err) {
      if (!(err instanceof PipeError) || err.fromExit.code === 0 || !STALE_TOKEN.test(err.fromStderr))
        throw err;
      await target.zfs.abortReceive(target.dataset);
      resumed = 'stale-token-cleared';
      opts.onMessage?.(
        `${target.dataset}: the interrupted transfer cannot resume (${err.fromStderr.trim().split('\n')[0]}); ` +
          'its partial state was discarded and the transfer restarts from the common snapshot',
      );
    }
    targetListing = await reload(target);
  }

  const newChain = opts.newChain && targetListing === null ? opts.newChain : null;
  const plan = newChain
    ? { kind: newChain.origin ? ('incremental' as const) : ('full' as const), steps: newChain.steps }
    : planSync(sourceView, { ...target, listing: targetListing }, opts.select);
  switch (plan.kind) {
    case 'up-to-date':
      return {
        mode: resumed === 'resumed' ? 'incremental' : 'up-to-date',
        bytes,
        resumed,
        common: plan.common,
        sent: [],
      };
    case 'full':
    case 'incremental': {
      if (renamed && plan.steps.some((s, i) => i > 0 || s.to.short !== renamed.as))
        throw new Error(`only ${renamed.short} may travel as ${renamed.as}, and alone`);
      const sent: string[] = [];
      for (const [i, step] of plan.steps.entries()) {
        // A new chain's first stream is received as a clone of the snapshot it starts from.
        const into = i === 0 && newChain?.origin ? recvArgv(newChain.origin) : recv;
        const r = await transfer(
          { host: source.zfs.host, argv: stepArgv(source.dataset, step, raw, renamed) },
          { host: target.zfs.host, argv: into },
          {
            limiter: opts.limiter,
            onProgress: progress,
            onStreamEnd: i === plan.steps.length - 1 ? opts.onStreamsEnd : undefined,
            onMessage: opts.onMessage,
          },
        );
        bytes += r.bytes;
        sent.push(step.to.short);
      }
      const last = plan.steps.at(-1);
      if (!last) throw new Error('a plan to send has no step');
      return { mode: plan.kind, bytes, resumed, common: last.to, sent };
    }
    default:
      throw new SyncConflictError(
        describeConflict(
          plan,
          { host: source.zfs.host.name, dataset: source.dataset },
          { host: target.zfs.host.name, dataset: target.dataset },
          opts.rollbackOption,
        ),
      );
  }
}
