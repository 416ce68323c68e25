import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZbmError } from '../../../src/errors.ts';
import { parseStorageCfg, zfsPools } from '../../../src/pve/index.ts';
import { pveFixture as fixture } from '../../support/fixtures.ts';

describe('storage.cfg', () => {
  const entries = parseStorageCfg(fixture('storage.cfg'));

  it('reads every storage with its type and properties', () => {
    assert.deepEqual(
      entries.map((e) => `${e.type}:${e.id}`),
      [
        'dir:local',
        'zfspool:local-zfs',
        'zfspool:tank.fast_2-x',
        'nfs:nfs-store',
        'zfspool:old-zfs',
        'zfspool:pve2-only',
        'zfspool:bad-pool',
      ],
    );
    assert.deepEqual(entries[1]?.props, { pool: 'rpool/data', sparse: '1', content: 'images,rootdir' });
    // Indented with spaces instead of tabs.
    assert.deepEqual(entries[2]?.props, { pool: 'tank/vm', blocksize: '16k', content: 'images,rootdir' });
  });

  it('maps zfspool storages to pools, with disable and nodes', () => {
    const pools = zfsPools(entries);
    assert.deepEqual([...pools.keys()], ['local-zfs', 'tank.fast_2-x', 'old-zfs', 'pve2-only', 'bad-pool']);
    assert.deepEqual(pools.get('local-zfs'), { pool: 'rpool/data', disabled: false, nodes: null });
    assert.deepEqual(pools.get('old-zfs'), { pool: 'rpool/old', disabled: true, nodes: null });
    assert.deepEqual(pools.get('pve2-only'), { pool: 'fast/data', disabled: false, nodes: ['pve2'] });
    // Kept verbatim: the disk layer refuses the dataset name, so the admin hears about it.
    assert.equal(pools.get('bad-pool')?.pool, 'rpool/a;b');
    assert.equal(pools.has('nfs-store'), false);
  });

  it('accepts CRLF, several nodes, disable 0 and entries not separated by blank lines', () => {
    const text =
      'zfspool: a\r\n\tpool p/a\r\n\tnodes pve1,pve2\r\n\tdisable 0\r\nzfspool: b\r\n\tpool p/b\r\n';
    const pools = zfsPools(parseStorageCfg(text));
    assert.deepEqual(pools.get('a'), { pool: 'p/a', disabled: false, nodes: ['pve1', 'pve2'] });
    assert.deepEqual(pools.get('b'), { pool: 'p/b', disabled: false, nodes: null });
  });

  it('keeps a zfspool without pool, with an empty pool name', () => {
    assert.equal(zfsPools(parseStorageCfg('zfspool: nopool\n\tcontent images\n')).get('nopool')?.pool, '');
  });

  it('keeps property names like __proto__ or constructor as plain data', () => {
    const [e] = parseStorageCfg('dir: x\n\tconstructor evil\n');
    assert.equal(e?.props.constructor, 'evil');
    assert.equal(Object.keys(e?.props ?? {}).length, 1);
  });

  it('rejects malformed files, naming the line', () => {
    const bad: [string, RegExp][] = [
      ['\tpool rpool\n', /line 1: property outside of a storage entry/],
      ['zfspool: a\n\tpool p\n\nzfspool a\n', /line 4: expected "<type>: <storage id>"/],
      ['zfspool: a\n\tPool p\n', /line 2: malformed property/],
      ['zfspool: a\n\tpool p\n\tpool q\n', /line 3: duplicate property "pool"/],
      ['zfspool: a\n\nzfspool: a\n', /line 3: storage id "a" is defined twice/],
      ['zfspool: a b\n', /line 1/],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parseStorageCfg(text),
        (err: unknown) => err instanceof ZbmError && re.test(err.message) && /storage\.cfg/.test(err.message),
        JSON.stringify(text),
      );
    }
  });
});
