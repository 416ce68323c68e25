/**
 * One side of a transfer for unit tests: a host whose commands are small shell scripts (a send
 * prints a stream, a receive reads it), and that side's zfs in memory, which records every call
 * the way the CLI would be called.
 */
import type { Host, Invocation } from '../../src/host/host.ts';
import { isCountedSend } from '../../src/zfs/counted-send.ts';
import type { BatchOp, BatchOutcome } from '../../src/zfs/program.ts';
import type { Dataset, Hold } from '../../src/zfs/types.ts';
import { snapshot } from './zfs.ts';

/** A command that fails with stderr (or "refused"), exit 1. */
function failing(stderr: string | true): Invocation {
  const said = stderr === true ? 'refused' : stderr;
  return { file: 'sh', args: ['-c', 'printf "%s\\n" "$1" >&2; exit 1', 'fail', said] };
}

/** What a send of FakeHost prints: its length is the bytes of each stream. */
export const FAKE_STREAM = 'stream';

/**
 * A host whose commands succeed at once (qm, the metadata writes, the sends and receives), or fail
 * when fail() says so: with its answer as the command's stderr when that is a string.
 */
export class FakeHost implements Host {
  readonly calls: string[][] = [];
  constructor(
    readonly name: string,
    private readonly fail: (argv: readonly string[]) => boolean | string = () => false,
    readonly isLocal = true,
  ) {}
  invocation(argv: readonly string[]): Invocation {
    if (isCountedSend(argv)) {
      // zbm's real counting script around the fake send (the bytes it reports are what it wrote),
      // or, when fail() refuses the wrapped command but not the send, refused as a whole (an
      // older zbm serve).
      const send = argv.slice(4);
      const refused = this.fail(send) === false ? this.fail(argv) : false;
      if (refused !== false) {
        this.calls.push([...argv]);
        return failing(refused);
      }
      const inner = this.invocation(send);
      return { file: 'sh', args: [...argv.slice(1, 4), inner.file, ...inner.args] };
    }
    this.calls.push([...argv]);
    const failure = this.fail(argv);
    if (failure !== false) return failing(failure);
    if (argv[0] === 'zfs' && argv[1] === 'send') {
      // With a log file: each send says when it starts and ends, and lasts long enough to overlap.
      const log = process.env.ZBM_TEST_SEND_LOG;
      const script = log
        ? `echo start >> "$1"; sleep 0.3; echo end >> "$1"; printf ${FAKE_STREAM}`
        : `printf ${FAKE_STREAM}`;
      return { file: 'sh', args: ['-c', script, 'send', log ?? ''] };
    }
    if (argv[0] === 'zfs' && argv[1] === 'receive') {
      // With a log file: each receive reads its stream, then commits for a while, as zfs does.
      const log = process.env.ZBM_TEST_RECEIVE_LOG;
      const script = log
        ? 'cat > /dev/null; echo commit >> "$1"; sleep 0.4; echo committed >> "$1"'
        : 'cat > /dev/null';
      return { file: 'sh', args: ['-c', script, 'receive', log ?? ''] };
    }
    return { file: 'sh', args: ['-c', 'cat > /dev/null'] };
  }
  async close(): Promise<void> {}
}

/** The zfs of one side, in memory: records every call the way the CLI would be called. */
export class FakeZfs {
  readonly calls: string[] = [];
  readonly data = new Map<string, Dataset>();
  readonly holdsOf = new Map<string, Set<string>>();
  txg = 100;
  failSnapshot: (names: readonly string[]) => boolean = () => false;
  failHold: (snapshots: readonly string[]) => boolean = () => false;
  failBookmark: (snapshot: string) => boolean = () => false;
  constructor(readonly host: Host) {}
  async snapshot(names: readonly string[]): Promise<void> {
    this.calls.push(`snapshot ${names.join(' ')}`);
    if (this.failSnapshot(names)) throw new Error(`cannot create snapshots: injected (${names.join(' ')})`);
    for (const n of names) {
      const [ds = '', short = ''] = n.split('@');
      const d = this.data.get(ds);
      const txg = this.txg++;
      const s = snapshot(ds, short, { guid: `${txg}`, createtxg: txg, creation: txg });
      if (d) this.data.set(ds, { ...d, snapshots: [...d.snapshots, s] });
    }
  }
  async list(req: { roots: readonly string[] }): Promise<Dataset[]> {
    this.calls.push(`list ${req.roots.join(' ')}`);
    return req.roots.flatMap((r) => this.data.get(r) ?? []);
  }
  async holds(snapshots: readonly string[]): Promise<Hold[]> {
    this.calls.push(`holds ${snapshots.join(' ')}`);
    return snapshots.flatMap((s) =>
      [...(this.holdsOf.get(s) ?? [])].map((tag) => ({ snapshot: s, tag, timestamp: 0 })),
    );
  }
  async hold(tag: string, snapshots: readonly string[]): Promise<void> {
    if (snapshots.length === 0) return;
    this.calls.push(`hold ${snapshots.join(' ')}`);
    if (this.failHold(snapshots)) throw new Error('cannot hold: injected');
    // As zfs: the whole call fails, and nothing is held, when one snapshot has the tag already.
    if (snapshots.some((s) => this.holdsOf.get(s)?.has(tag)))
      throw new Error('cannot hold: tag already exists');
    for (const s of snapshots) this.holdsOf.set(s, new Set([...(this.holdsOf.get(s) ?? []), tag]));
  }
  async release(tag: string, snapshots: readonly string[]): Promise<void> {
    if (snapshots.length === 0) return;
    this.calls.push(`release ${snapshots.join(' ')}`);
    if (snapshots.some((s) => !this.holdsOf.get(s)?.has(tag))) throw new Error('cannot release: no such tag');
    for (const s of snapshots) this.holdsOf.get(s)?.delete(tag);
  }
  /** As Zfs.moveHold: the hold, then the release only if the hold went through. */
  async moveHold(tag: string, hold: readonly string[], release: readonly string[]): Promise<void> {
    await this.hold(tag, hold);
    await this.release(tag, release);
  }
  async bookmark(snapshot: string, bm: string): Promise<void> {
    this.calls.push(`bookmark ${snapshot}`);
    if (this.failBookmark(snapshot)) throw new Error('cannot bookmark: injected');
    void bm;
  }
  /** The channel program: one call, its operations kept apart from the one-object CLI calls. */
  readonly programOps: BatchOp[] = [];
  async batch(ops: readonly BatchOp[]): Promise<BatchOutcome[]> {
    this.calls.push(`program ${ops.length}`);
    this.programOps.push(...ops);
    for (const op of ops) {
      if (op.kind !== 'destroy-snapshot') continue;
      const [ds = '', short = ''] = op.snapshot.split('@');
      const d = this.data.get(ds);
      if (d) this.data.set(ds, { ...d, snapshots: d.snapshots.filter((x) => x.short !== short) });
    }
    return ops.map((op) =>
      op.kind === 'bookmark' && this.failBookmark(op.snapshot)
        ? { ok: false, busy: false, error: `cannot bookmark ${op.snapshot}: injected` }
        : { ok: true },
    );
  }
  async destroyBookmark(bm: string): Promise<void> {
    this.calls.push(`destroy ${bm}`);
  }
  /** As `zfs receive -A`: the partial state, and with it the resume token, is gone. */
  async abortReceive(dataset: string): Promise<void> {
    this.calls.push(`abort ${dataset}`);
    const d = this.data.get(dataset);
    if (d) this.data.set(dataset, { ...d, resumeToken: null });
  }
  count(op: string): number {
    return this.calls.filter((c) => c.startsWith(`${op} `)).length;
  }
}
