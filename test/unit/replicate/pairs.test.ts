import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mirrorPairs } from '../../../src/replicate/pairs.ts';
import type { Dataset } from '../../../src/zfs/types.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

function ds(name: string, snaps: string[] = []): Dataset {
  return dataset(
    name,
    snaps.map((short, i) => snapshot(name, short, { createtxg: i, creation: i })),
    { guid: `g-${name}` },
  );
}

const all = () => true;

describe('mirrorPairs', () => {
  it('maps every source dataset to the same relative path, sorted, and the root only with snapshots', () => {
    const { pairs, orphans } = mirrorPairs(
      'main/bak-zbm',
      [ds('main/bak-zbm'), ds('main/bak-zbm/vm-101-disk-0', ['a']), ds('main/bak-zbm/vm-100-disk-0', ['a'])],
      'tank/offsite',
      [],
      all,
    );
    assert.deepEqual(
      pairs.map((p) => [p.source.name, p.target]),
      [
        ['main/bak-zbm/vm-100-disk-0', 'tank/offsite/vm-100-disk-0'],
        ['main/bak-zbm/vm-101-disk-0', 'tank/offsite/vm-101-disk-0'],
      ],
    );
    assert.deepEqual(orphans, []);
    const withRoot = mirrorPairs(
      'main/bak-zbm',
      [ds('main/bak-zbm', ['bak-zbm-1'])],
      'tank/offsite',
      [],
      all,
    );
    assert.deepEqual(
      withRoot.pairs.map((p) => p.target),
      ['tank/offsite'],
    );
    const notOurs = mirrorPairs('main/bak-zbm', [ds('main/bak-zbm', ['manual'])], 'tank/offsite', [], (s) =>
      s.startsWith('bak-zbm-'),
    );
    assert.deepEqual(notOurs.pairs, []);
  });

  it('reports target datasets whose source is gone, the topmost only, and never the target root', () => {
    const { orphans } = mirrorPairs(
      'main/bak-zbm',
      [ds('main/bak-zbm'), ds('main/bak-zbm/vm-100-disk-0', ['a'])],
      'tank/offsite',
      [
        ds('tank/offsite'),
        ds('tank/offsite/vm-100-disk-0', ['a']),
        ds('tank/offsite/vm-105-disk-0', ['a']),
        ds('tank/offsite/old'),
        ds('tank/offsite/old/subvol-9-disk-0', ['a']),
      ],
      all,
    );
    assert.deepEqual(orphans, ['tank/offsite/old', 'tank/offsite/vm-105-disk-0']);
  });
});
