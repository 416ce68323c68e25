import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Invocation, parseCommandLine } from '../../../src/cli/program.ts';
import { metadataDirOption } from '../../../src/metadata/store.ts';

function parse(line: string): { result: Invocation | number; err: string } {
  let err = '';
  const result = parseCommandLine(line.split(' '), { writeOut: () => {}, writeErr: (s) => (err += s) });
  return { result, err };
}

const RESTORE = 'restore --remote zbm-dest --remote-zfs-root main/bak-zbm --vmid 100';

describe('restore and list-backups command lines', () => {
  it('parses a restore with every option into typed values', () => {
    const { result, err } = parse(
      `${RESTORE} --time 20261126T110503Z --as-vmid 200 --target-storage local-zfs --disk scsi1 --new-macs --force -y --bwlimit 10M --dry-run --json`,
    );
    assert.equal(typeof result, 'object', err);
    const o = (result as Invocation).options;
    assert.equal(o.vmid, 100);
    assert.equal(o.asVmid, 200);
    assert.equal((o.time as Date).toISOString(), '2026-11-26T11:05:03.000Z');
    assert.equal(o.targetStorage, 'local-zfs');
    assert.equal(o.disk, 'scsi1');
    assert.equal(o.bwlimit, 10 * 1024 * 1024);
    assert.equal(o.newMacs, true);
    assert.equal(o.lockWait, 30);
    const iso = parse(`${RESTORE} --time 2026-11-26T11:05:03Z`).result as Invocation;
    assert.equal((iso.options.time as Date).toISOString(), '2026-11-26T11:05:03.000Z');
  });

  it('refuses bad values with a usage error naming the flag', () => {
    for (const bad of [
      `${RESTORE} --time yesterday`,
      `${RESTORE} --as-vmid 99`,
      `${RESTORE} --snapshot a/b`,
      `${RESTORE} --target-storage 'x;y'`,
      `${RESTORE} --disk scsi0;rm`,
      'restore --remote zbm-dest --vmid 100',
    ]) {
      const { result, err } = parse(bad);
      assert.equal(result, 2, bad);
      assert.match(err, /--time|--as-vmid|--snapshot|--target-storage|--disk|--remote-zfs-root/, bad);
    }
  });

  it('parses list-backups on a tier and from a node', () => {
    const here = parse('list-backups --local-zfs-root main/bak-zbm').result as Invocation;
    assert.equal(here.options.prefix, 'bak-zbm-');
    const far = parse('list-backups --remote zbm-dest --remote-zfs-root main/bak-zbm --vmid 100,103 --json')
      .result as Invocation;
    assert.deepEqual(far.options.vmid, [100, 103]);
  });
});

describe('the metadata directory of a tier, by its host', () => {
  it('takes --remote-metadata-dir with --remote, --local-metadata-dir with --local-zfs-root, --metadata-dir with either', () => {
    assert.equal(metadataDirOption({ remote: 'd', remoteMetadataDir: '/m' }), '/m');
    assert.equal(metadataDirOption({ localMetadataDir: '/m' }), '/m');
    assert.equal(metadataDirOption({ remote: 'd', metadataDir: '/m' }), '/m');
    assert.equal(metadataDirOption({ metadataDir: '/m' }), '/m');
    assert.equal(metadataDirOption({ remote: 'd' }), undefined);
    assert.throws(
      () => metadataDirOption({ remote: 'd', localMetadataDir: '/m' }),
      /with --remote the directory is --remote-metadata-dir/,
    );
    assert.throws(
      () => metadataDirOption({ remoteMetadataDir: '/m' }),
      /with --local-zfs-root the directory is --local-metadata-dir/,
    );
    assert.throws(
      () => metadataDirOption({ remote: 'd', remoteMetadataDir: '/a', metadataDir: '/b' }),
      /earlier spelling of the same option: give one of them/,
    );
  });
});
