import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BasePair,
  bookmarkBases,
  bookmarkPlan,
  moveHold,
  moveHolds,
  protectBases,
} from '../../../src/transfer/protect.ts';
import type { BatchOp, BatchOutcome } from '../../../src/zfs/program.ts';
import type { Bookmark, Dataset, Hold, Snapshot } from '../../../src/zfs/types.ts';
import type { Zfs } from '../../../src/zfs/zfs.ts';
import { bookmark, dataset, snapshot } from '../../support/zfs.ts';

const snap = (ds: string, short: string, userrefs = 0): Snapshot =>
  snapshot(ds, short, { guid: short, createtxg: 1, creation: 1, userrefs });
const mark = (ds: string, short: string): Bookmark =>
  bookmark(ds, short, { guid: short, createtxg: 1, creation: 1 });
const ds = (name: string, snapshots: Snapshot[], bookmarks: Bookmark[] = []): Dataset =>
  dataset(name, snapshots, { guid: name, bookmarks });

/** Records the calls in order; holds() answers from what moveHold did. */
function fakeZfs(held: Map<string, string>, calls: string[], failBookmark = (_: string) => false): Zfs {
  return {
    holds: async (snaps: readonly string[]): Promise<Hold[]> => {
      calls.push('holds');
      return snaps.flatMap((s) =>
        held.has(s) ? [{ snapshot: s, tag: held.get(s) ?? '', timestamp: 0 }] : [],
      );
    },
    // Zfs.moveHold: the hold, then the release, as one command.
    moveHold: async (tag: string, hold: readonly string[], release: readonly string[]) => {
      if (hold.length + release.length === 0) return;
      calls.push(`move ${hold.join(' ')} | ${release.join(' ')}`);
      for (const s of hold) held.set(s, tag);
      for (const s of release) held.delete(s);
    },
    batch: async (ops: readonly BatchOp[]): Promise<BatchOutcome[]> => {
      calls.push('program');
      return ops.map((op) => {
        calls.push(`bookmark ${op.snapshot}`);
        return failBookmark(op.snapshot) ? { ok: false, busy: false, error: 'injected' } : { ok: true };
      });
    },
    bookmark: async (s: string) => {
      calls.push(`bookmark ${s}`);
      if (failBookmark(s)) throw new Error('injected');
    },
    destroyBookmark: async (b: string) => {
      calls.push(`destroy ${b}`);
    },
  } as unknown as Zfs;
}

const ours = (s: string) => s.startsWith('z-');

function pairs(n: number): BasePair[] {
  return Array.from({ length: n }, (_, i) => ({
    source: ds(
      `rpool/d${i}`,
      [snap(`rpool/d${i}`, 'z-1', 1), snap(`rpool/d${i}`, 'z-2')],
      [mark(`rpool/d${i}`, 'z-1')],
    ),
    target: `main/d${i}`,
    targetBefore: ds(`main/d${i}`, [snap(`main/d${i}`, 'z-1', 1)]),
    common: 'z-2',
  }));
}

describe('protecting the new bases', () => {
  it('moves the holds of any number of pairs with one holds and one hold-then-release command per side', async () => {
    for (const n of [1, 5]) {
      const p = pairs(n);
      const src = new Map(p.map((x) => [`${x.source.name}@z-1`, 'T']));
      const dst = new Map(p.map((x) => [`${x.target}@z-1`, 'T']));
      const sc: string[] = [];
      const dc: string[] = [];
      await moveHolds(fakeZfs(src, sc), fakeZfs(dst, dc), 'T', p);
      for (const calls of [sc, dc]) {
        assert.deepEqual(
          calls.map((c) => c.split(' ')[0]),
          ['holds', 'move'],
        );
      }
      assert.deepEqual([...src.keys()].sort(), p.map((x) => `${x.source.name}@z-2`).sort());
      assert.deepEqual([...dst.keys()].sort(), p.map((x) => `${x.target}@z-2`).sort());
      // A second call (a retry after a partial failure) has nothing left to do.
      const again: string[] = [];
      await moveHolds(fakeZfs(src, again), fakeZfs(dst, again), 'T', p);
      assert.deepEqual(again, ['holds', 'holds']);
    }
  });

  it('with the holds looked up earlier, no zfs holds: our tag moves, another tag and other snapshots are left alone', async () => {
    const held = new Map([
      ['main/d@z-1', 'T'],
      ['main/d@z-0', 'T'],
    ]);
    const calls: string[] = [];
    const known = [
      { snapshot: 'main/d@z-1', tag: 'T', timestamp: 0 },
      { snapshot: 'main/d@z-1', tag: 'other', timestamp: 0 },
      // Not among the snapshots that may carry the tag here: never released by this call.
      { snapshot: 'main/d@z-0', tag: 'T', timestamp: 0 },
    ];
    await moveHold(fakeZfs(held, calls), 'T', ['main/d@z-2'], ['main/d@z-1'], known);
    assert.deepEqual(calls, ['move main/d@z-2 | main/d@z-1']);
    assert.deepEqual([...held.keys()].sort(), ['main/d@z-0', 'main/d@z-2']);
  });

  it('bookmarks the new base before destroying the old bookmark, and keeps a present one', () => {
    const [p] = pairs(1);
    assert.ok(p);
    assert.deepEqual(bookmarkPlan(p, ours), {
      create: { snapshot: 'rpool/d0@z-2', bookmark: 'rpool/d0#z-2' },
      destroy: ['rpool/d0#z-1'],
    });
    const present = {
      ...p,
      source: { ...p.source, bookmarks: [...p.source.bookmarks, mark('rpool/d0', 'z-2')] },
    };
    assert.equal(bookmarkPlan(present, ours).create, null);
  });

  it("reports a failed bookmark as its pair's own, and then keeps that pair's old bookmark", async () => {
    const p = pairs(3);
    const calls: string[] = [];
    const errors = await bookmarkBases(
      fakeZfs(new Map(), calls, (s) => s === 'rpool/d1@z-2'),
      p,
      ours,
    );
    assert.deepEqual([...errors.keys()], [1]);
    assert.equal(calls.filter((c) => c === 'program').length, 1, 'all new bookmarks in one channel program');
    assert.ok(!calls.includes('destroy rpool/d1#z-1'));
    assert.ok(calls.includes('destroy rpool/d0#z-1') && calls.includes('destroy rpool/d2#z-1'));
    for (const i of [0, 2]) {
      assert.ok(calls.indexOf(`bookmark rpool/d${i}@z-2`) < calls.indexOf(`destroy rpool/d${i}#z-1`));
    }
  });

  it('bookmarks beside the holds, and still reports a failed hold once both are done', {
    timeout: 5000,
  }, async () => {
    const p = pairs(2);
    const calls: string[] = [];
    const src = fakeZfs(new Map(p.map((x) => [`${x.source.name}@z-1`, 'T'])), calls);
    // The target's holds lookup answers only once the source's new bookmarks are made: run one
    // after the other, protectBases would wait forever.
    let bookmarked = (): void => {};
    const made = new Promise<void>((resolve) => {
      bookmarked = resolve;
    });
    const batch = src.batch.bind(src);
    src.batch = (async (ops: readonly BatchOp[]) => {
      const out = await batch(ops);
      bookmarked();
      return out;
    }) as Zfs['batch'];
    const dst = fakeZfs(new Map(), calls);
    dst.holds = (async () => {
      await made;
      throw new Error('zfs holds: injected failure');
    }) as Zfs['holds'];
    await assert.rejects(protectBases(src, dst, 'T', p, ours), /injected failure/);
    for (let i = 0; i < 2; i++) {
      assert.ok(calls.includes(`bookmark rpool/d${i}@z-2`));
      assert.ok(calls.includes(`destroy rpool/d${i}#z-1`), 'the old bookmark goes once the new one is made');
    }
  });
});
