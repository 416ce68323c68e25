import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PipeError } from '../../../src/host/pipe.ts';
import { LOCK_ARGV0 } from '../../../src/lock/remote.ts';
import { SyncConflictError, type SyncOptions, syncDataset } from '../../../src/transfer/sync.ts';
import { isCountedSend } from '../../../src/zfs/counted-send.ts';
import type { Dataset, Snapshot } from '../../../src/zfs/types.ts';
import type { Zfs } from '../../../src/zfs/zfs.ts';
import { FAKE_STREAM, FakeHost, FakeZfs } from '../../support/fake-zfs.ts';
import { bookmark, dataset, snapshot } from '../../support/zfs.ts';

const SRC = 'rpool/data/vm-100-disk-0';
const DST = 'main/bak/vm-100-disk-0';
const STREAM = FAKE_STREAM.length;

/** The same snapshot on both sides has the same guid, whatever the dataset. */
const snap = (ds: string, short: string, txg: number): Snapshot =>
  snapshot(ds, short, { guid: `guid-${short}`, createtxg: txg, creation: txg });

interface Sides {
  source: FakeZfs;
  target: FakeZfs;
  sourceHost: FakeHost;
  targetHost: FakeHost;
  messages: string[];
  opts: SyncOptions;
  run: (
    source: Dataset | null,
    target: Dataset | null,
    opts?: Partial<SyncOptions>,
  ) => ReturnType<typeof syncDataset>;
}

/** Two sides on fake hosts; the target's zfs answers a reload from target.data. */
function sides(
  fail: { source?: (argv: readonly string[]) => boolean | string; targetIsLocal?: boolean } = {},
): Sides {
  const sourceHost = new FakeHost('pve1', fail.source);
  const targetHost = new FakeHost('zbm-dest', undefined, fail.targetIsLocal ?? true);
  const source = new FakeZfs(sourceHost);
  const target = new FakeZfs(targetHost);
  const messages: string[] = [];
  const opts: SyncOptions = {
    select: (short) => short.startsWith('z-'),
    onMessage: (m) => messages.push(m),
  };
  return {
    source,
    target,
    sourceHost,
    targetHost,
    messages,
    opts,
    run: (s, t, more = {}) =>
      syncDataset(
        { zfs: source as unknown as Zfs, dataset: SRC, listing: s },
        { zfs: target as unknown as Zfs, dataset: DST, listing: t },
        { ...opts, ...more },
      ),
  };
}

const sends = (h: FakeHost) => h.calls.filter((c) => c[0] === 'zfs' && c[1] === 'send');
/** What a send sends: its last arguments, from the -i/-t on. */
const sent = (h: FakeHost) =>
  sends(h).map((c) => {
    const at = c.findIndex((a) => a === '-i' || a === '-t');
    return (at < 0 ? c.slice(-1) : c.slice(at)).join(' ');
  });
const receives = (h: FakeHost) => h.calls.filter((c) => c.includes('receive'));

describe('syncDataset: bringing one dataset up to date on another host', () => {
  it('a target that does not exist gets the selected snapshots, the first whole and each next one as an increment', async () => {
    const w = sides();
    const source = dataset(SRC, [
      snap(SRC, 'z-1', 1),
      snap(SRC, 'admin', 2),
      snap(SRC, 'z-2', 3),
      snap(SRC, 'z-3', 4),
    ]);
    const r = await w.run(source, null);
    assert.equal(r.mode, 'full');
    assert.deepEqual(r.sent, ['z-1', 'z-2', 'z-3']);
    assert.equal(r.common.short, 'z-3');
    assert.equal(r.bytes, 3 * STREAM);
    assert.equal(r.resumed, null);
    // Snapshot by snapshot: the administrator's own snapshot in between never travels.
    assert.deepEqual(sent(w.sourceHost), [
      `${SRC}@z-1`,
      `-i ${SRC}@z-1 ${SRC}@z-2`,
      `-i ${SRC}@z-2 ${SRC}@z-3`,
    ]);
    assert.ok(
      sends(w.sourceHost).every((c) => !c.includes('-w')),
      'not raw: the source is not encrypted',
    );
    assert.deepEqual(
      receives(w.targetHost),
      [1, 2, 3].map(() => ['zfs', 'receive', '-s', '-u', DST]),
    );
  });

  it('an encrypted source is sent raw: the backup server never sees the key', async () => {
    const w = sides();
    await w.run(dataset(SRC, [snap(SRC, 'z-1', 1)], { encrypted: true }), null);
    assert.ok(sends(w.sourceHost)[0]?.includes('-w'));
  });

  it('continues from the newest common snapshot, or from its bookmark once the snapshot is gone', async () => {
    const target = dataset(DST, [snap(DST, 'z-1', 1)]);
    const w = sides();
    const r = await w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2)]), target);
    assert.equal(r.mode, 'incremental');
    assert.deepEqual(r.sent, ['z-2']);
    assert.deepEqual(sent(w.sourceHost), [`-i ${SRC}@z-1 ${SRC}@z-2`]);

    const b = sides();
    const fromMark = dataset(SRC, [snap(SRC, 'z-2', 2)], {
      bookmarks: [bookmark(SRC, 'z-1', { guid: 'guid-z-1', createtxg: 1, creation: 1 })],
    });
    const rb = await b.run(fromMark, target);
    assert.equal(rb.mode, 'incremental');
    assert.deepEqual(sent(b.sourceHost), [`-i ${SRC}#z-1 ${SRC}@z-2`]);
  });

  it('an up-to-date target costs no transfer at all', async () => {
    const w = sides();
    let ended = 0;
    const r = await w.run(dataset(SRC, [snap(SRC, 'z-1', 1)]), dataset(DST, [snap(DST, 'z-1', 1)]), {
      onStreamsEnd: () => ended++,
    });
    assert.equal(r.mode, 'up-to-date');
    assert.equal(r.common.short, 'z-1');
    assert.deepEqual(w.sourceHost.calls, []);
    assert.deepEqual(w.targetHost.calls, []);
    assert.equal(ended, 0);
  });

  it('a diverged target is refused, naming both sides and the way out, and nothing is sent', async () => {
    const w = sides();
    const target = dataset(DST, [snap(DST, 'z-1', 1), snap(DST, 'someone-elses', 5)]);
    await assert.rejects(
      w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2)]), target, {
        rollbackOption: '--force-rollback -y',
      }),
      (err: unknown) => {
        assert.ok(err instanceof SyncConflictError);
        assert.match(err.message, new RegExp(`zbm-dest:${DST} has diverged from pve1:${SRC}`));
        assert.match(err.message, /someone-elses/);
        assert.match(err.message, /--force-rollback -y/);
        return true;
      },
    );
    assert.deepEqual(w.sourceHost.calls, []);
    assert.deepEqual(w.targetHost.calls, []);
  });

  it('tells the caller once, at the last stream, that the streams have passed', async () => {
    const w = sides();
    const sendsAtEnd: number[] = [];
    await w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2), snap(SRC, 'z-3', 3)]), null, {
      onStreamsEnd: () => sendsAtEnd.push(sends(w.sourceHost).length),
    });
    assert.deepEqual(sendsAtEnd, [3]);
  });

  it('finishes an interrupted transfer from its token first, then sends the rest', async () => {
    const w = sides();
    const before = dataset(DST, [snap(DST, 'z-1', 1)], { resumeToken: 'token-of-z-2' });
    // What the target lists once the resumed receive is done.
    w.target.data.set(DST, dataset(DST, [snap(DST, 'z-1', 1), snap(DST, 'z-2', 2)]));
    const r = await w.run(
      dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2), snap(SRC, 'z-3', 3)]),
      before,
    );
    assert.deepEqual(sent(w.sourceHost), ['-t token-of-z-2', `-i ${SRC}@z-2 ${SRC}@z-3`]);
    assert.equal(r.resumed, 'resumed');
    assert.equal(r.mode, 'incremental');
    assert.deepEqual(r.sent, ['z-3']);
    assert.equal(r.bytes, 2 * STREAM);
    assert.deepEqual(w.messages, [`${DST}: resumed the interrupted transfer (${STREAM} bytes)`]);
    assert.deepEqual(w.target.calls, [`list ${DST}`]);
  });

  it('a token whose snapshot is gone is cleared, saying so, and the transfer starts again from the common snapshot', async () => {
    const w = sides({
      source: (argv) => argv.includes('-t') && `cannot resume send: '${SRC}@z-2' no longer exists`,
    });
    const before = dataset(DST, [snap(DST, 'z-1', 1)], { resumeToken: 'token-of-z-2' });
    w.target.data.set(DST, before);
    const r = await w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-3', 3)]), before);
    assert.equal(r.resumed, 'stale-token-cleared');
    assert.deepEqual(w.target.calls, [`abort ${DST}`, `list ${DST}`]);
    assert.deepEqual(sent(w.sourceHost), ['-t token-of-z-2', `-i ${SRC}@z-1 ${SRC}@z-3`]);
    assert.deepEqual(r.sent, ['z-3']);
    assert.equal(w.messages.length, 1);
    assert.match(
      w.messages[0] ?? '',
      new RegExp(
        `^${DST}: the interrupted transfer cannot resume \\(cannot resume send: '${SRC}@z-2' no longer exists\\); its partial state was discarded`,
      ),
    );
  });

  it('any other failure of a resume is an error: the partial state is kept for the next try', async () => {
    const w = sides({
      source: (argv) => argv.includes('-t') && 'ssh: connect to host pve1: Connection refused',
    });
    const before = dataset(DST, [snap(DST, 'z-1', 1)], { resumeToken: 'token-of-z-2' });
    await assert.rejects(w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2)]), before), PipeError);
    assert.deepEqual(w.target.calls, [], 'no abort, no reload');
    assert.deepEqual(w.messages, []);
  });

  it('from a zbm serve too old for the counted send, the streams pass through zbm: said once, nothing lost', async () => {
    // What such a serve says, as zbm serve of today says it of any sh (its log's prefix included):
    // the command line it shows is cut before the send.
    const old = `error: zbm serve on main/bak-zbm: refused "sh -c 'w=0; while read -r k v; do [ \\"$k\\" = wchar: ]...": only zfs commands and config writes are served, not sh`;
    const w = sides({ source: (argv) => isCountedSend(argv) && old });
    const r = await w.run(dataset(SRC, [snap(SRC, 'z-1', 1), snap(SRC, 'z-2', 2)]), null);
    assert.deepEqual(r.sent, ['z-1', 'z-2']);
    assert.equal(r.bytes, 2 * STREAM);
    assert.deepEqual(sent(w.sourceHost), [`${SRC}@z-1`, `-i ${SRC}@z-1 ${SRC}@z-2`]);
    // Asked once; the second stream went through zbm straight away.
    assert.equal(w.sourceHost.calls.filter((c) => isCountedSend(c)).length, 1);
    assert.deepEqual(w.messages, [
      "pve1 runs a zbm serve that refuses zbm's counted send (upgrade zbm there): its streams pass through zbm",
    ]);
  });

  it('a counted send refused for another reason is an error, not a way around serve', async () => {
    const w = sides({
      source: (argv) =>
        isCountedSend(argv) &&
        'zbm serve on main/bak-zbm: refused "sh -c ...": zfs send is not allowed (only with zbm serve --send-only)',
    });
    await assert.rejects(w.run(dataset(SRC, [snap(SRC, 'z-1', 1)]), null), PipeError);
    assert.equal(w.sourceHost.calls.filter((c) => c[1] === 'send').length, 0, 'no send through zbm either');
  });

  it("a receive on another host runs under that host's lock of the dataset, unless the caller holds it", async () => {
    const source = dataset(SRC, [snap(SRC, 'z-1', 1)]);
    const locked = sides({ targetIsLocal: false });
    await locked.run(source, null, { receiveLock: { what: 'backup-pve', waitSeconds: 30 } });
    const [argv = []] = receives(locked.targetHost);
    assert.equal(argv[0], 'sh');
    assert.ok(argv.includes(LOCK_ARGV0));
    assert.ok(argv.includes('30'), 'waits as long as asked');
    assert.ok(
      argv.some((a) => a.includes(`backup-pve into ${DST}`)),
      'the holder says who receives',
    );
    assert.deepEqual(argv.slice(-5), ['zfs', 'receive', '-s', '-u', DST]);

    const mine = sides({ targetIsLocal: false });
    await mine.run(source, null, { receiveLock: false });
    assert.deepEqual(receives(mine.targetHost), [['zfs', 'receive', '-s', '-u', DST]]);

    // On this host the caller's own lock covers it.
    const here = sides();
    await here.run(source, null, { receiveLock: { what: 'backup-pve', waitSeconds: 30 } });
    assert.deepEqual(receives(here.targetHost), [['zfs', 'receive', '-s', '-u', DST]]);
  });
});
