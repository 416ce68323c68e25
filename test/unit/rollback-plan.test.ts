import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRollbackPreparation } from '../../src/rollback/plan.ts';
import { bookmark, dataset, snapshot } from '../support/zfs.ts';

const P = 'bak-zbm-';
const D0 = 'rpool/data/vm-100-disk-0';
const D1 = 'rpool/data/vm-100-disk-1';
const s = (ds: string, short: string, txg: number, userrefs = 0) =>
  snapshot(ds, short, { createtxg: txg, guid: `${ds}@${short}`, userrefs });

describe('prepare-rollback plan', () => {
  // disk-0: zbm 1, admin @before, zbm 2 (held by an earlier zbm), pvesr's snapshot, zbm 3, an
  // earlier zbm's bookmark of 3 and another tool's bookmark; disk-1 has no @before.
  const d0 = {
    ...dataset(D0, [
      s(D0, `${P}1`, 1),
      s(D0, 'before', 2),
      s(D0, `${P}2`, 3, 1),
      s(D0, '__replicate_100-0_1700000000__', 4),
      s(D0, `${P}3`, 5),
    ]),
    bookmarks: [bookmark(D0, `${P}3`, { createtxg: 5 }), bookmark(D0, 'other-tool', { createtxg: 4 })],
  };
  const d1 = dataset(D1, [s(D1, `${P}3`, 5)]);

  it('takes off zbm snapshots and bookmarks newer than the target, keeps the newest older one', () => {
    const plan = planRollbackPreparation([d0, d1], P, 'before');
    assert.ok('datasets' in plan);
    assert.deepEqual(plan.untouched, [D1]);
    assert.deepEqual(plan.datasets, [
      {
        dataset: D0,
        destroy: [`${P}2`, `${P}3`],
        held: [`${D0}@${P}2`],
        bookmarks: [`${D0}#${P}3`],
        anchor: `${P}1`,
        // pvesr's own snapshot is not in the way: Proxmox destroys it itself.
        blockers: [],
        foreignBookmarks: [`${D0}#other-tool`],
      },
    ]);
  });

  it('names the other snapshots Proxmox would still refuse for; never destroys them', () => {
    const later = dataset(D0, [s(D0, 'before', 1), s(D0, 'later', 2), s(D0, `${P}1`, 3)]);
    const plan = planRollbackPreparation([later], P, 'before');
    assert.ok('datasets' in plan);
    assert.deepEqual(plan.datasets[0]?.destroy, [`${P}1`]);
    assert.deepEqual(plan.datasets[0]?.blockers, ['later']);
    assert.equal(plan.datasets[0]?.anchor, null);
  });

  it('without a target: everything of zbm, on every dataset of the guest', () => {
    const plan = planRollbackPreparation([d0, d1], P, undefined);
    assert.ok('datasets' in plan);
    assert.deepEqual(
      plan.datasets.map((p) => [p.dataset, p.destroy, p.bookmarks]),
      [
        [D0, [`${P}1`, `${P}2`, `${P}3`], [`${D0}#${P}3`]],
        [D1, [`${P}3`], []],
      ],
    );
  });

  it('refuses a target no disk has, and a zbm snapshot as the target', () => {
    assert.match(
      (planRollbackPreparation([d0], P, 'nosuch') as { error: string }).error,
      /no dataset of the guest has a snapshot nosuch/,
    );
    assert.match((planRollbackPreparation([d0], P, `${P}1`) as { error: string }).error, /is a zbm snapshot/);
  });
});
