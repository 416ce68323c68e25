import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeConflict, diff, type SnapRef } from '../../../src/plan/diff.ts';

let txg = 100;
const snap = (short: string, guid = `g-${short}`): SnapRef => ({
  short,
  guid,
  createtxg: txg++,
  creation: txg,
});
const a = snap('a');
const b = snap('b');
const c = snap('c');
const d = snap('d');

describe('diff', () => {
  it('sends the whole history to a target that does not exist: oldest full, the rest incremental', () => {
    const r = diff({ snapshots: [a, b], bookmarks: [] }, { snapshots: null, written: 0 });
    assert.equal(r.kind, 'full');
    assert.deepEqual(r.kind === 'full' && r.steps.map((s) => [s.from?.short ?? null, s.to.short]), [
      [null, 'a'],
      ['a', 'b'],
    ]);
  });

  it('continues from the newest common snapshot by guid, one step per snapshot', () => {
    const r = diff({ snapshots: [a, b, c, d], bookmarks: [] }, { snapshots: [a, b], written: 0 });
    assert.equal(r.kind, 'incremental');
    if (r.kind !== 'incremental') return;
    assert.equal(r.common.short, 'b');
    assert.deepEqual(
      r.steps.map((s) => [s.from?.short, s.to.short]),
      [
        ['b', 'c'],
        ['c', 'd'],
      ],
    );
  });

  it('never treats a reused name with another guid as common', () => {
    const fakeB = { ...b, guid: 'other' };
    const r = diff({ snapshots: [a, b, c], bookmarks: [] }, { snapshots: [a, fakeB], written: 0 });
    assert.equal(r.kind, 'diverged');
    if (r.kind === 'diverged') {
      assert.equal(r.common.short, 'a');
      assert.deepEqual(
        r.extra.map((s) => s.guid),
        ['other'],
      );
    }
  });

  it('uses a bookmark as the base when the source snapshot is gone', () => {
    const r = diff({ snapshots: [c], bookmarks: [b] }, { snapshots: [a, b], written: 0 });
    assert.equal(r.kind, 'incremental');
    if (r.kind === 'incremental') assert.deepEqual(r.steps[0]?.from, { short: 'b', bookmark: true });
  });

  it('reports up to date, no common snapshot, diverged, and written targets', () => {
    assert.equal(
      diff({ snapshots: [a, b], bookmarks: [] }, { snapshots: [a, b], written: 0 }).kind,
      'up-to-date',
    );
    assert.equal(
      diff({ snapshots: [c], bookmarks: [] }, { snapshots: [a], written: 0 }).kind,
      'no-common-snapshot',
    );
    assert.equal(
      diff({ snapshots: [a, b], bookmarks: [] }, { snapshots: [a, b, d], written: 0 }).kind,
      'diverged',
    );
    assert.equal(
      diff({ snapshots: [a, b], bookmarks: [] }, { snapshots: [a], written: 4096 }).kind,
      'diverged',
    );
    assert.equal(
      diff({ snapshots: [], bookmarks: [] }, { snapshots: null, written: 0 }).kind,
      'nothing-to-send',
    );
  });

  it('explains a conflict with both sides and the way out', () => {
    const r = diff({ snapshots: [a, b], bookmarks: [] }, { snapshots: [a, d], written: 0 });
    assert.equal(r.kind, 'diverged');
    if (r.kind !== 'diverged') return;
    const msg = describeConflict(
      r,
      { host: 'pve1', dataset: 'rpool/data/vm-1' },
      { host: 'dest', dataset: 'main/b:k/vm-1' },
    );
    assert.match(msg, /source snapshots: a \(guid g-a\), b \(guid g-b\)/);
    assert.match(msg, /target snapshots: a \(guid g-a\), d \(guid g-d\)/);
    assert.match(msg, /zfs rollback -r main\/b:k\/vm-1@a on dest/);
    assert.match(msg, /^dest:main\/b:k\/vm-1 has diverged from pve1:rpool\/data\/vm-1/);
  });
});
