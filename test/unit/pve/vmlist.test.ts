import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZbmError } from '../../../src/errors.ts';
import { parseVmlist } from '../../../src/pve/index.ts';
import { pveFixture as fixture } from '../../support/fixtures.ts';

describe('.vmlist', () => {
  it('lists every guest of the cluster with its node and type, sorted by vmid', () => {
    const { entries, warnings } = parseVmlist(fixture('vmlist.json'));
    assert.deepEqual(warnings, []);
    assert.deepEqual(entries.slice(0, 2), [
      { vmid: 100, node: 'pve1', type: 'qemu' },
      { vmid: 101, node: 'pve1', type: 'lxc' },
    ]);
    assert.deepEqual(
      entries.map((e) => e.vmid),
      [100, 101, 102, 103, 104, 105, 106, 200, 217],
    );
    assert.equal(entries.find((e) => e.vmid === 200)?.node, 'pve2');
  });

  it('skips guest types it does not know, with a warning', () => {
    const { entries, warnings } = parseVmlist(
      '{"version":1,"ids":{"300":{"node":"pve1","type":"openvz","version":1},"301":{"node":"pve1","type":"lxc"}}}',
    );
    assert.deepEqual(entries, [{ vmid: 301, node: 'pve1', type: 'lxc' }]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /300.*pve1.*openvz/);
  });

  it('accepts an empty cluster', () => {
    assert.deepEqual(parseVmlist('{"version":1,"ids":{}}'), { entries: [], warnings: [] });
  });

  it('refuses what it does not understand', () => {
    const bad = [
      '',
      'not json',
      '[]',
      '{"version":1}',
      '{"ids":[]}',
      '{"ids":{"abc":{"node":"pve1","type":"qemu"}}}',
      '{"ids":{"5":{"node":"pve1","type":"qemu"}}}',
      '{"ids":{"100":"pve1"}}',
      '{"ids":{"100":{"type":"qemu"}}}',
      '{"ids":{"100":{"node":"../../tmp","type":"qemu"}}}',
      '{"ids":{"100":{"node":"pve1","type":7}}}',
    ];
    for (const text of bad) {
      assert.throws(
        () => parseVmlist(text),
        (err: unknown) => err instanceof ZbmError && /\.vmlist/.test(err.message),
        text,
      );
    }
  });
});
