import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chainDataset,
  families,
  familyOf,
  formatStamp,
  HOLD_TAG_SYNTAX,
  holdTag,
  isBaseTagFor,
  isHoldTag,
  isHoldTagFrom,
  snapshotName,
  snapshotTime,
  stampAsIso,
  targetDataset,
  trailingStampTime,
} from '../../../src/conventions/names.ts';
import { parseVolname } from '../../../src/pve/volumes.ts';
import { poolOf } from '../../../src/zfs/names.ts';

const AT = new Date('2026-11-26T11:05:03.789Z');

describe('snapshot names and their time', () => {
  it('writes the UTC time to the second, without separators', () => {
    assert.equal(formatStamp(AT), '20261126T110503Z');
    assert.equal(snapshotName('bak-zbm-', AT), 'bak-zbm-20261126T110503Z');
  });

  it('reads back the second it wrote, whatever the prefix', () => {
    for (const prefix of ['bak-zbm-', '', 'x:y.z_']) {
      assert.equal(snapshotTime(snapshotName(prefix, AT), prefix, -1), Math.floor(AT.getTime() / 1000));
    }
  });

  it('reads the stamp at the end of any name, in ms, and nothing from a name without one', () => {
    assert.equal(trailingStampTime('whatever-20261126T110503Z'), Date.parse('2026-11-26T11:05:03Z'));
    assert.equal(trailingStampTime('20261126T110503Z'), Date.parse('2026-11-26T11:05:03Z'));
    assert.equal(trailingStampTime('bak-zbm-manual'), null);
    assert.equal(trailingStampTime('bak-zbm-20261126T110503Z.1'), null);
    assert.equal(trailingStampTime('0261126T110503Z'), null);
  });

  it('turns a whole stamp into ISO 8601 and refuses anything more or less', () => {
    assert.equal(stampAsIso('20261126T110503Z'), '2026-11-26T11:05:03Z');
    assert.equal(stampAsIso('x20261126T110503Z'), null);
    assert.equal(stampAsIso('20261126T110503'), null);
    assert.equal(stampAsIso('2026-11-26T11:05'), null);
    assert.equal(stampAsIso('2026112aT110503Z'), null);
  });
});

describe('hold tags', () => {
  it('names the pair, and is recognised by source, by target and as zbm at all', () => {
    const tag = holdTag('pve', 'zbm-dest');
    assert.equal(tag, 'zbm-base:pve:zbm-dest');
    assert.equal(isHoldTag(tag), true);
    assert.equal(isHoldTagFrom(tag, 'pve'), true);
    assert.equal(isHoldTagFrom(tag, 'pv'), false);
    assert.equal(isBaseTagFor(tag, 'zbm-dest'), true);
    assert.equal(isBaseTagFor(tag, 'dest'), false);
    assert.equal(isHoldTag('keep'), false);
  });

  it('accepts as a flag value every tag zbm writes, and nothing else', () => {
    assert.equal(HOLD_TAG_SYNTAX.test(holdTag('pve', 'root@zbm-dest')), true);
    assert.equal(HOLD_TAG_SYNTAX.test(holdTag('zbm-dest', 'zbm-replica:2222')), true);
    assert.equal(HOLD_TAG_SYNTAX.test('zbm-base:pve'), false);
    assert.equal(HOLD_TAG_SYNTAX.test('zbm-base:pve:x y'), false);
  });
});

describe('where things are', () => {
  it('puts a disk below a target root by the last component of its dataset', () => {
    assert.equal(targetDataset('main/bak', 'rpool/data/vm-100-disk-0'), 'main/bak/vm-100-disk-0');
    assert.equal(targetDataset('main/bak', 'vm-100-disk-0'), 'main/bak/vm-100-disk-0');
    assert.equal(targetDataset('main', 'rpool/data/base-9000-disk-0/vm-101-disk-0'), 'main/vm-101-disk-0');
  });

  it('finds the pool of datasets, snapshots and bookmarks', () => {
    assert.equal(poolOf('rpool/data/vm-100-disk-0'), 'rpool');
    assert.equal(poolOf('rpool@snap'), 'rpool');
    assert.equal(poolOf('tank#mark'), 'tank');
    assert.equal(poolOf('tank'), 'tank');
  });

  it("reads Proxmox's volume names, and says whether the VMID is written as Proxmox writes it", () => {
    assert.deepEqual(parseVolname('vm-100-disk-0'), {
      kind: 'vm',
      vmid: 100,
      plainVmid: true,
      rest: 'disk-0',
    });
    assert.deepEqual(parseVolname('basevol-9001-disk-1'), {
      kind: 'basevol',
      vmid: 9001,
      plainVmid: true,
      rest: 'disk-1',
    });
    assert.equal(parseVolname('vm-0100-disk-0')?.plainVmid, false);
    assert.equal(parseVolname('vm-100-')?.rest, '');
    assert.equal(parseVolname('data-100-disk-0'), null);
    assert.equal(parseVolname('vm-100'), null);
  });
});

describe("a disk's chains", () => {
  const P = 'bak-zbm-';
  it('names a later chain after its first snapshot, and finds its primary again', () => {
    const later = chainDataset('main/bak/vm-100-disk-0', `${P}20261130T100000Z`);
    assert.equal(later, 'main/bak/vm-100-disk-0.bak-zbm-20261130T100000Z');
    assert.equal(familyOf(later, P), 'main/bak/vm-100-disk-0');
    assert.equal(familyOf('main/bak/vm-100-disk-0', P), 'main/bak/vm-100-disk-0');
  });

  it('takes nothing else for a later chain: another prefix, a bad stamp, a bare suffix, a chain of a chain', () => {
    assert.equal(
      familyOf('main/bak/vm-100-disk-0.other-20261130T100000Z', P),
      'main/bak/vm-100-disk-0.other-20261130T100000Z',
    );
    assert.equal(
      familyOf('main/bak/vm-100-disk-0.bak-zbm-20261130X100000Z', P),
      'main/bak/vm-100-disk-0.bak-zbm-20261130X100000Z',
    );
    assert.equal(familyOf('main/bak/.bak-zbm-20261130T100000Z', P), 'main/bak/.bak-zbm-20261130T100000Z');
    assert.equal(familyOf('vm-1-disk-0-bak-zbm-20261130T100000Z', P), 'vm-1-disk-0-bak-zbm-20261130T100000Z');
    // A later chain's own later chain is named after its primary, never nested: one level only.
    assert.equal(
      familyOf('main/bak/vm-100-disk-0.bak-zbm-20261130T100000Z.bak-zbm-20261201T100000Z', P),
      'main/bak/vm-100-disk-0.bak-zbm-20261130T100000Z',
    );
  });

  it('groups datasets by family, the primary first, then its later chains by time', () => {
    const names = [
      'main/bak/vm-100-disk-0.bak-zbm-20261201T100000Z',
      'main/bak/vm-101-disk-0',
      'main/bak/vm-100-disk-0.bak-zbm-20261130T100000Z',
      'main/bak/vm-100-disk-0',
    ];
    const got = families(
      names.map((name) => ({ name })),
      P,
    );
    assert.deepEqual(
      [...got].map(([k, v]) => [k, v.map((d) => d.name)]),
      [
        [
          'main/bak/vm-100-disk-0',
          [
            'main/bak/vm-100-disk-0',
            'main/bak/vm-100-disk-0.bak-zbm-20261130T100000Z',
            'main/bak/vm-100-disk-0.bak-zbm-20261201T100000Z',
          ],
        ],
        ['main/bak/vm-101-disk-0', ['main/bak/vm-101-disk-0']],
      ],
    );
  });
});
