import { errorMessage, UsageError } from '../errors.ts';
import { CommandError } from '../host/failure.ts';
import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import * as argv from './argv.ts';
import { moveHoldArgv } from './move-hold.ts';
import { poolOf, splitSnapshot } from './names.ts';
import { refusedByOlderServe } from './older-serve.ts';
import { parseCreation, parseGet, parseHolds, parseList, parseSendEstimate } from './parse.ts';
import {
  BATCH_CHUNK,
  BATCH_SCRIPT,
  type BatchOp,
  type BatchOutcome,
  batchArgv,
  parseBatchOutput,
  programFallback,
} from './program.ts';
import type { Dataset, Hold, PropertyValue, SendEstimate } from './types.ts';

/** Hosts whose `zbm serve` refused the hold moved in one command: two commands there. */
const oneCommandRefused = new WeakSet<Host>();

const USER_PROPERTY = /^[a-z0-9_.-]+:[a-z0-9_.:-]+$/;

export function checkUserProperty(name: string): string {
  if (!USER_PROPERTY.test(name)) throw new UsageError(`invalid user property name ${JSON.stringify(name)}`);
  return name;
}

function isMissing(err: unknown): boolean {
  return err instanceof CommandError && /does not exist/.test(err.stderr);
}

function describeOp(op: BatchOp): string {
  return op.kind === 'bookmark'
    ? `bookmarking ${op.snapshot} as ${op.bookmark}`
    : `destroying ${op.snapshot}`;
}

/** The zfs operations zbm needs, on one host. Parsing and argv building live in parse.ts and argv.ts. */
export class Zfs {
  constructor(readonly host: Host) {}

  /**
   * Datasets under root with their snapshots and bookmarks, in ONE zfs call.
   * A root that does not exist gives an empty list.
   */
  async list(req: argv.ListRequest): Promise<Dataset[]> {
    for (const p of req.userProps ?? []) checkUserProperty(p);
    if (req.roots.length === 0) return [];
    try {
      const { stdout } = await run(this.host, argv.listArgv(req));
      return parseList(stdout, argv.extraColumns(req));
    } catch (err) {
      if (!isMissing(err)) throw err;
      if (req.roots.length === 1) return [];
      // One missing root fails the whole call: list the others one by one.
      const each = await Promise.all(req.roots.map((root) => this.list({ ...req, roots: [root] })));
      return each.flat();
    }
  }

  async exists(name: string): Promise<boolean> {
    const found = await this.list({ roots: [name], depth: 0, withSnapshots: false });
    return found.length > 0;
  }

  async create(name: string, props: Readonly<Record<string, string>> = {}): Promise<void> {
    await run(this.host, argv.createArgv(name, props));
  }

  async snapshot(names: readonly string[], props: Readonly<Record<string, string>> = {}): Promise<void> {
    await run(this.host, argv.snapshotArgv(names, props));
  }

  async estimateSend(req: argv.SendRequest): Promise<SendEstimate> {
    const { stdout } = await run(this.host, argv.sendArgv(req, true));
    return parseSendEstimate(stdout);
  }

  async estimateResume(token: string): Promise<SendEstimate> {
    const { stdout } = await run(this.host, argv.resumeSendArgv(token, true));
    return parseSendEstimate(stdout);
  }

  /** `zfs rollback -r`: destroys later snapshots; only ever run when the user asked for it. */
  async rollback(snapshot: string): Promise<void> {
    await run(this.host, ['zfs', 'rollback', '-r', snapshot]);
  }

  async abortReceive(dataset: string): Promise<void> {
    await run(this.host, argv.abortReceiveArgv(dataset));
  }

  async destroySnapshots(dataset: string, shorts: readonly string[]): Promise<void> {
    if (shorts.length > 0) await run(this.host, argv.destroySnapshotsArgv(dataset, shorts));
  }

  async destroyBookmark(bookmark: string): Promise<void> {
    await run(this.host, argv.destroyBookmarkArgv(bookmark));
  }

  async hold(tag: string, snapshots: readonly string[]): Promise<void> {
    if (snapshots.length > 0) await run(this.host, argv.holdArgv(tag, snapshots));
  }

  async release(tag: string, snapshots: readonly string[]): Promise<void> {
    if (snapshots.length > 0) await run(this.host, argv.releaseArgv(tag, snapshots));
  }

  /**
   * Holds `hold` and then releases `release` under tag: one command when both have snapshots
   * (move-hold.ts), the two commands one after the other from a `zbm serve` too old for it.
   */
  async moveHold(tag: string, hold: readonly string[], release: readonly string[]): Promise<void> {
    if (hold.length > 0 && release.length > 0 && !oneCommandRefused.has(this.host)) {
      try {
        await run(this.host, moveHoldArgv(tag, hold, release));
        return;
      } catch (err) {
        if (!(err instanceof CommandError && err.exitCode === 1 && refusedByOlderServe(err.stderr)))
          throw err;
        oneCommandRefused.add(this.host);
      }
    }
    await this.hold(tag, hold);
    await this.release(tag, release);
  }

  async holds(snapshots: readonly string[], recursive = false): Promise<Hold[]> {
    if (snapshots.length === 0) return [];
    const { stdout } = await run(this.host, argv.holdsArgv(snapshots, recursive));
    return parseHolds(stdout);
  }

  async bookmark(snapshot: string, bookmark: string): Promise<void> {
    await run(this.host, argv.bookmarkArgv(snapshot, bookmark));
  }

  /**
   * Bookmarks and snapshot destroys, one outcome per op in order: one channel program per pool
   * (per BATCH_CHUNK ops). Where the program cannot run at all (not root, an old zfs), each op is
   * done with its own zfs call instead, and onFallback gets the sentence saying so (host, why).
   * Never throws for an op's failure.
   */
  async batch(ops: readonly BatchOp[], onFallback?: (message: string) => void): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = new Array(ops.length);
    const byPool = new Map<string, number[]>();
    for (const [i, op] of ops.entries()) {
      const pool = poolOf(op.snapshot);
      const indexes = byPool.get(pool) ?? [];
      indexes.push(i);
      byPool.set(pool, indexes);
    }
    for (const [pool, indexes] of byPool) {
      for (let at = 0; at < indexes.length; at += BATCH_CHUNK) {
        const part = indexes.slice(at, at + BATCH_CHUNK);
        const partOps = part.map((i) => ops[i] as BatchOp);
        let results: BatchOutcome[];
        try {
          const { stdout } = await run(this.host, batchArgv(pool, partOps), { input: BATCH_SCRIPT });
          results = parseBatchOutput(stdout, partOps.length).map((r, k) =>
            r.ok
              ? r
              : { ...r, error: `on ${this.host.name}: ${describeOp(partOps[k] as BatchOp)}: ${r.error}` },
          );
        } catch (err) {
          onFallback?.(programFallback(this.host.name, errorMessage(err)));
          results = [];
          for (const op of partOps) results.push(await this.#one(op));
        }
        for (const [k, i] of part.entries()) outcomes[i] = results[k] as BatchOutcome;
      }
    }
    return outcomes;
  }

  async #one(op: BatchOp): Promise<BatchOutcome> {
    try {
      if (op.kind === 'bookmark') await this.bookmark(op.snapshot, op.bookmark);
      else {
        const { dataset, snapshot } = splitSnapshot(op.snapshot);
        await this.destroySnapshots(dataset, [snapshot]);
      }
      return { ok: true };
    } catch (err) {
      const stderr = err instanceof CommandError ? err.stderr : '';
      // What the channel program counts as done: a snapshot already gone.
      if (op.kind === 'destroy-snapshot' && /could not find any snapshots to destroy/.test(stderr)) {
        return { ok: true };
      }
      return { ok: false, busy: /dataset is busy/.test(stderr), error: errorMessage(err) };
    }
  }

  async get(
    properties: readonly string[],
    names: readonly string[],
    recursive = false,
  ): Promise<PropertyValue[]> {
    if (names.length === 0) return [];
    const { stdout } = await run(this.host, argv.getArgv(properties, names, recursive));
    return parseGet(stdout);
  }

  /** When a dataset was created, in seconds since the epoch, as ZFS recorded it (read only). */
  async creation(name: string): Promise<number> {
    const { stdout } = await run(this.host, argv.creationArgv(name));
    return parseCreation(stdout, name);
  }

  async rename(from: string, to: string): Promise<void> {
    await run(this.host, argv.renameArgv(from, to));
  }

  async mount(dataset: string): Promise<void> {
    await run(this.host, argv.mountArgv(dataset));
  }

  /** Native properties (acltype, refquota, ...): only restore sets them, on what it received. */
  async setProperties(name: string, props: Readonly<Record<string, string>>): Promise<void> {
    await run(this.host, argv.setArgv(name, props));
  }

  /** `zpool status` of the pool as zpool prints it: verify/checks.ts reads it. */
  async poolStatus(pool: string): Promise<string> {
    return (await run(this.host, argv.poolStatusArgv(pool))).stdout;
  }

  async setUserProperties(name: string, props: Readonly<Record<string, string>>): Promise<void> {
    for (const p of Object.keys(props)) checkUserProperty(p);
    await run(this.host, argv.setArgv(name, props));
  }

  async resumeToken(dataset: string): Promise<string | null> {
    const [row] = await this.get(['receive_resume_token'], [dataset]);
    return row?.value ?? null;
  }
}
