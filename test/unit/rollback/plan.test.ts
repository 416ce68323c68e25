import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SnapRef } from '../../../src/plan/diff.ts';
import {
  describeRefusal,
  planRollbackPreparation,
  type RollbackPlan,
  type ServerView,
} from '../../../src/rollback/plan.ts';
import type { Dataset, Snapshot } from '../../../src/zfs/types.ts';
import { bookmark, dataset, snapshot } from '../../support/zfs.ts';

const P = 'bak-zbm-';
const D0 = 'rpool/data/vm-100-disk-0';
const D1 = 'rpool/data/vm-100-disk-1';
const HOST = 'zbm-dest';
const copyOf = (ds: string) => `main/bak-zbm/${ds.slice(ds.lastIndexOf('/') + 1)}`;
const s = (ds: string, short: string, txg: number, userrefs = 0) =>
  snapshot(ds, short, { createtxg: txg, guid: `${ds}@${short}`, userrefs });
const ref = (x: Snapshot): SnapRef => ({
  short: x.short,
  guid: x.guid,
  createtxg: x.createtxg,
  creation: x.creation,
});

/** The backup server as listed: per node dataset, its copy's snapshots (null: no copy). */
function server(copies: Record<string, readonly SnapRef[] | null>): ServerView {
  return {
    host: HOST,
    copies: new Map(
      Object.entries(copies).map(([d, snaps]) => [d, { dataset: copyOf(d), snapshots: snaps }]),
    ),
  };
}

/** A server that received every zbm snapshot of these datasets. */
const replicated = (...ds: Dataset[]) =>
  server(
    Object.fromEntries(ds.map((d) => [d.name, d.snapshots.filter((x) => x.short.startsWith(P)).map(ref)])),
  );

function plan(
  datasets: readonly Dataset[],
  snap: string | undefined,
  view: ServerView | null = replicated(...datasets),
  force = false,
): RollbackPlan {
  return planRollbackPreparation(datasets, { prefix: P, snapshot: snap, server: view, force });
}

function planned(p: RollbackPlan) {
  assert.equal(p.kind, 'plan', JSON.stringify(p));
  if (p.kind !== 'plan') throw new Error('unreachable');
  return p;
}

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
  const [z1, , z2, , z3] = d0.snapshots.map(ref);

  it('takes off zbm snapshots and bookmarks newer than the target, keeps the newest older one', () => {
    const p = planned(plan([d0, d1], 'before'));
    assert.deepEqual(p.untouched, [D1]);
    assert.deepEqual(p.datasets, [
      {
        dataset: D0,
        destroy: [`${P}2`, `${P}3`],
        held: [`${D0}@${P}2`],
        bookmarks: [`${D0}#${P}3`],
        anchor: `${P}1`,
        // pvesr's own snapshot is not in the way: Proxmox destroys it itself.
        blockers: [],
        foreignBookmarks: [`${D0}#other-tool`],
        // The server has both: nothing of them is lost.
        unreplicated: [],
      },
    ]);
  });

  it('names the other snapshots Proxmox would still refuse for; never destroys them', () => {
    const later = dataset(D0, [s(D0, 'before', 1), s(D0, 'later', 2), s(D0, `${P}1`, 3)]);
    const p = planned(plan([later], 'before'));
    assert.deepEqual(p.datasets[0]?.destroy, [`${P}1`]);
    assert.deepEqual(p.datasets[0]?.blockers, ['later']);
    assert.equal(p.datasets[0]?.anchor, null);
  });

  it('without a target: everything of zbm, on every dataset of the guest', () => {
    const p = planned(plan([d0, d1], undefined));
    assert.deepEqual(
      p.datasets.map((x) => [x.dataset, x.destroy, x.bookmarks]),
      [
        [D0, [`${P}1`, `${P}2`, `${P}3`], [`${D0}#${P}3`]],
        [D1, [`${P}3`], []],
      ],
    );
  });

  it('refuses a target no disk has, and a zbm snapshot as the target', () => {
    const err = (p: RollbackPlan) => (p.kind === 'error' ? p.error : `not an error: ${p.kind}`);
    assert.match(err(plan([d0], 'nosuch')), /no dataset of the guest has a snapshot nosuch/);
    // Before any look at the server: the request itself is wrong.
    assert.match(err(plan([d0], `${P}1`, null)), /is a zbm snapshot/);
  });

  describe('what the backup server holds', () => {
    it('refuses, destroying nothing, when a zbm snapshot that would go never reached the server; lists both sides', () => {
      // backup-pve took zbm 3 and failed before sending it.
      const p = plan([d0, d1], 'before', server({ [D0]: [z1 as SnapRef, z2 as SnapRef], [D1]: [] }));
      assert.deepEqual(p, {
        kind: 'unreplicated',
        host: HOST,
        datasets: [
          {
            dataset: D0,
            copy: 'main/bak-zbm/vm-100-disk-0',
            missing: [z3],
            node: [z1, z2, z3],
            server: [z1, z2],
          },
        ],
      });
      if (p.kind !== 'unreplicated') return;
      const m = describeRefusal(p, 'pve1', 100);
      assert.match(m, /^nothing destroyed: .*backup server zbm-dest does not have \(compared by guid\)/);
      assert.match(
        m,
        new RegExp(
          `pve1:${D0}: ${P}3 \\(guid ${D0}@${P}3\\) not on zbm-dest:main/bak-zbm/vm-100-disk-0\\n` +
            `    node's zbm snapshots: ${P}1 \\(guid [^)]+\\), ${P}2 \\(guid [^)]+\\), ${P}3 \\(guid [^)]+\\)\\n` +
            `    server's snapshots: ${P}1 \\(guid [^)]+\\), ${P}2 \\(guid [^)]+\\)\\n`,
        ),
      );
      assert.match(
        m,
        /backup-pve \.\.\. --vmid 100\), then run this again; or add --force to destroy them anyway, losing those restore points/,
      );
      // disk-1 has no @before: nothing of it goes, so nothing of it is checked.
      assert.doesNotMatch(m, /disk-1/);
    });

    it('a snapshot of the same name with another guid on the server is not the same one', () => {
      const impostor: SnapRef = { ...(z3 as SnapRef), guid: '999' };
      const p = plan([d0], 'before', server({ [D0]: [z1 as SnapRef, z2 as SnapRef, impostor] }));
      assert.equal(p.kind, 'unreplicated');
      if (p.kind !== 'unreplicated') return;
      assert.deepEqual(p.datasets[0]?.missing, [z3]);
      assert.match(describeRefusal(p, 'pve1', 100), new RegExp(`server's snapshots: .*${P}3 \\(guid 999\\)`));
    });

    it('a dataset the server has no copy of: every zbm snapshot that would go is missing, and the message says the copy does not exist', () => {
      const p = plan([d0, d1], undefined, server({ [D0]: [z1, z2, z3] as SnapRef[], [D1]: null }));
      assert.equal(p.kind, 'unreplicated');
      if (p.kind !== 'unreplicated') return;
      assert.deepEqual(
        p.datasets.map((d) => [d.dataset, d.missing.map((x) => x.short), d.server]),
        [[D1, [`${P}3`], null]],
      );
      assert.match(
        describeRefusal(p, 'pve1', 100),
        /server's snapshots: \(main\/bak-zbm\/vm-100-disk-1 does not exist on zbm-dest\)/,
      );
    });

    it('only the snapshots that would go must be on the server: an unsent one older than the target stays and blocks nothing', () => {
      const p = planned(plan([d0], 'before', server({ [D0]: [z2, z3] as SnapRef[] })));
      assert.equal(p.datasets[0]?.anchor, `${P}1`);
      assert.deepEqual(p.datasets[0]?.unreplicated, []);
    });

    it('--force goes on and names the restore points that are lost', () => {
      const p = planned(plan([d0], 'before', server({ [D0]: [z1 as SnapRef] }), true));
      assert.deepEqual(p.datasets[0]?.destroy, [`${P}2`, `${P}3`]);
      assert.deepEqual(p.datasets[0]?.unreplicated, [`${P}2`, `${P}3`]);
    });

    it('without a server to look at: refuses when a zbm snapshot would go, naming the node, the dataset and the snapshots', () => {
      const p = plan([d0, d1], 'before', null);
      assert.deepEqual(p, { kind: 'unchecked', datasets: [{ dataset: D0, destroy: [`${P}2`, `${P}3`] }] });
      if (p.kind !== 'unchecked') return;
      const m = describeRefusal(p, 'pve1', 100);
      assert.match(m, new RegExp(`pve1:${D0}: ${P}2, ${P}3`));
      assert.match(m, /--remote <host> --remote-zfs-root <dataset>/);
      assert.match(m, /--force to destroy them unchecked, losing any restore point/);
    });

    it('without a server, only bookmarks to take off: no restore point is at stake, the plan goes on', () => {
      const marked = {
        ...dataset(D0, [s(D0, `${P}1`, 1), s(D0, 'before', 2)]),
        bookmarks: [bookmark(D0, `${P}2`, { createtxg: 3 })],
      };
      const p = planned(plan([marked], 'before', null));
      assert.deepEqual(p.datasets[0]?.bookmarks, [`${D0}#${P}2`]);
      assert.deepEqual(p.datasets[0]?.destroy, []);
    });

    it('--force without a server: the plan goes on, marked as not checked', () => {
      const p = planned(plan([d0], 'before', null, true));
      assert.deepEqual(p.datasets[0]?.destroy, [`${P}2`, `${P}3`]);
      assert.equal(p.datasets[0]?.unreplicated, null);
    });
  });
});
