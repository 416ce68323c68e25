import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BEGIN_RECORD_BYTES,
  type BeginRecord,
  excludedProperties,
  FEATURE_RESUMING,
  parseBeginRecord,
  receiveCommand,
  refuseIncoming,
  refuseNewChain,
  type TargetState,
} from '../../../src/serve/stream.ts';
import { parseTokenContents, refuseToken } from '../../../src/serve/token.ts';

interface Fields {
  hdrtype?: bigint;
  features?: bigint;
  creation?: bigint;
  objset?: number;
  flags?: number;
  toguid?: bigint;
  fromguid?: bigint;
  toname?: string;
  payload?: number;
  little?: boolean;
}

/** A DRR_BEGIN record laid out as include/sys/zfs_ioctl.h says, in either byte order. */
function record(f: Fields = {}): Buffer {
  const b = Buffer.alloc(BEGIN_RECORD_BYTES);
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const le = f.little ?? true;
  v.setUint32(0, 0, le);
  v.setUint32(4, f.payload ?? 0, le);
  v.setBigUint64(8, 0x2f5bacbacn, le);
  v.setBigUint64(16, ((f.features ?? 0x80004n) << 2n) | (f.hdrtype ?? 1n), le);
  v.setBigUint64(24, f.creation ?? 1_795_000_000n, le);
  v.setUint32(32, f.objset ?? 3, le);
  v.setUint32(36, f.flags ?? 0xc, le);
  v.setBigUint64(40, f.toguid ?? 0xbdfedf3ca640f2bdn, le);
  v.setBigUint64(48, f.fromguid ?? 0n, le);
  b.write(f.toname ?? 'rpool/data/vm-100-disk-0@bak-zbm-20261126T110503Z', 56, 'latin1');
  return b;
}

function parsed(f: Fields = {}): BeginRecord {
  const r = parseBeginRecord(record(f));
  if ('error' in r) throw new Error(r.error);
  return r;
}

describe('parseBeginRecord: the first record of a send stream', () => {
  it('reads every field, in the little- and the big-endian byte order', () => {
    for (const little of [true, false]) {
      assert.deepEqual(
        parsed({
          little,
          features: 0x1420004n,
          flags: 0xd,
          objset: 2,
          toguid: 0x964950de82b7d299n,
          fromguid: 0x421d0579cc63e574n,
          toname: 'test/redacted@clean',
          payload: 1028,
        }),
        {
          compound: false,
          features: 0x1420004n,
          flags: 0xd,
          type: 'filesystem',
          creation: 1_795_000_000,
          toguid: 0x964950de82b7d299n.toString(),
          fromguid: 0x421d0579cc63e574n.toString(),
          toname: 'test/redacted@clean',
          payloadBytes: 1028,
        },
      );
    }
  });

  it('tells a package stream, and a volume from a file system', () => {
    assert.equal(parsed({ hdrtype: 2n }).compound, true);
    assert.equal(parsed({ objset: 3 }).type, 'volume');
    assert.equal(parsed({ objset: 1 }).type, null);
  });

  it('refuses what is not the start of a send stream', () => {
    assert.match(JSON.stringify(parseBeginRecord(record().subarray(0, 100))), /ended after 100 bytes/);
    const garbage = record();
    garbage.writeUInt32LE(0, 8);
    assert.match(JSON.stringify(parseBeginRecord(garbage)), /not a zfs send stream/);
    const other = record();
    other.writeUInt32LE(3, 0);
    assert.match(JSON.stringify(parseBeginRecord(other)), /does not start with a BEGIN record/);
    assert.match(JSON.stringify(parseBeginRecord(record({ hdrtype: 3n }))), /unknown stream header type/);
  });
});

describe('refuseIncoming: one new zbm snapshot that continues the target, nothing else', () => {
  const prefix = 'bak-zbm-';
  const now = Date.parse('2026-11-26T12:00:00Z') / 1000;
  const rules = { prefix, now, skew: 300 };
  const target = 'main/bak-zbm/vm-100-disk-0';
  const t = (iso: string) => Date.parse(iso) / 1000;
  const state: TargetState = {
    snapshots: [
      { short: 'bak-zbm-20261125T110503Z', guid: '111', creation: t('2026-11-25T11:05:03Z') },
      { short: 'bak-zbm-20261126T110503Z', guid: '222', creation: t('2026-11-26T11:05:03Z') },
    ],
  };
  const incremental = (f: Fields = {}) =>
    parsed({
      fromguid: 222n,
      toname: 'rpool/data/vm-100-disk-0@bak-zbm-20261126T115900Z',
      creation: BigInt(t('2026-11-26T11:59:00Z')),
      ...f,
    });

  it("lets backup-pve's streams through: full into a new dataset, incremental from the newest, resumed", () => {
    assert.equal(refuseIncoming(incremental(), target, state, rules), null);
    assert.equal(refuseIncoming(incremental({ little: false }), target, state, rules), null);
    const full = parsed({ toname: 'rpool/data/vm-100-disk-0@bak-zbm-20261126T115900Z' });
    assert.equal(refuseIncoming(full, target, null, rules), null);
    // An interrupted full receive leaves the dataset without snapshots.
    assert.equal(refuseIncoming(full, target, { snapshots: [] }, rules), null);
    // zfs send -t: the same record, with the RESUMING feature and the position in its payload.
    const resumed = incremental({ features: 0x80004n | FEATURE_RESUMING, payload: 120 });
    assert.equal(refuseIncoming(resumed, target, state, rules), null);
    // Raw (encrypted) streams carry their key parameters in the payload: still one snapshot.
    assert.equal(
      refuseIncoming(incremental({ features: 0x1000004n, payload: 1028 }), target, state, rules),
      null,
    );
    // A node whose clock runs a little ahead.
    const ahead = incremental({
      toname: 'x@bak-zbm-20261126T120400Z',
      creation: BigInt(t('2026-11-26T12:04:00Z')),
    });
    assert.equal(refuseIncoming(ahead, target, state, rules), null);
  });

  it('refuses replication, package and clone streams, and features zbm never sends', () => {
    assert.match(
      refuseIncoming(incremental({ hdrtype: 2n }), target, state, rules) ?? '',
      /zfs send -R, -I, -p/,
    );
    assert.match(refuseIncoming(incremental({ flags: 0xd }), target, state, rules) ?? '', /a clone stream/);
    assert.match(
      refuseIncoming(incremental({ objset: 4 }), target, state, rules) ?? '',
      /neither a file system/,
    );
    assert.match(
      refuseIncoming(incremental({ features: 1n << 21n }), target, state, rules) ?? '',
      /redacted/,
    );
    assert.match(refuseIncoming(incremental({ features: 1n << 26n }), target, state, rules) ?? '', /holds/);
    assert.match(refuseIncoming(incremental({ features: 1n }), target, state, rules) ?? '', /deduplicated/);
  });

  it("refuses a name that is not zbm's, lies in the future, or is not newer than the target's newest", () => {
    const named = (toname: string) => refuseIncoming(incremental({ toname }), target, state, rules) ?? '';
    assert.match(named('x@manual'), /not a zbm snapshot name/);
    assert.match(named('x@bak-zbm-20261126T1159Z'), /not a zbm snapshot name/);
    assert.match(named('x@bak-zbm-20260230T000000Z'), /not a zbm snapshot name/);
    assert.match(named('x'), /not one snapshot/);
    assert.match(
      named('x@bak-zbm-20991225T000000Z'),
      /lies in the future: this server's clock says 2026-11-26T12:00:00Z \(300 s/,
    );
    assert.match(named('x@bak-zbm-20261126T120501Z'), /lies in the future/);
    assert.match(named('x@bak-zbm-20261126T110503Z'), /not newer than bak-zbm-20261126T110503Z/);
    assert.match(named('x@bak-zbm-20261101T000000Z'), /not newer than bak-zbm-20261126T110503Z/);
    const futureCreation = incremental({ creation: BigInt(t('2099-01-01T00:00:00Z')) });
    assert.match(
      refuseIncoming(futureCreation, target, state, rules) ?? '',
      /created at 2099-01-01T00:00:00Z, in the future/,
    );
  });

  it('says a future snapshot already there is no real backup, to be destroyed', () => {
    const planted: TargetState = {
      snapshots: [...state.snapshots, { short: 'bak-zbm-20991225T000000Z', guid: '999', creation: now }],
    };
    assert.match(
      refuseIncoming(incremental({ fromguid: 999n }), target, planted, rules) ?? '',
      /not newer than bak-zbm-20991225T000000Z.*lies in the future, so it is not a real backup: destroy it/,
    );
  });

  it('refuses a full stream over snapshots, and an incremental that does not start at the newest snapshot', () => {
    assert.match(
      refuseIncoming(incremental({ fromguid: 0n }), target, state, rules) ?? '',
      /a full stream into .* has snapshots/,
    );
    assert.match(
      refuseIncoming(incremental({ fromguid: 111n }), target, state, rules) ?? '',
      /newest snapshot of .* is bak-zbm-20261126T110503Z \(guid 222\)/,
    );
    assert.match(refuseIncoming(incremental(), target, null, rules) ?? '', /no snapshot to continue from/);
  });
});

describe('receiveCommand: the receive serve runs', () => {
  it('excludes every property that could execute, mount, expose or reserve, per type', () => {
    const fs = receiveCommand('main/bak-zbm/subvol-101-disk-0', ['-s', '-u'], 'filesystem');
    for (const p of [
      'mountpoint',
      'canmount',
      'exec',
      'setuid',
      'devices',
      'sharenfs',
      'sharesmb',
      'volmode',
      'refreservation',
      'org.openzfs.systemd:requires',
    ]) {
      assert.equal(fs[fs.indexOf(p) - 1], '-x', p);
    }
    assert.deepEqual(fs.slice(0, 4), ['zfs', 'receive', '-s', '-u']);
    assert.equal(fs.at(-1), 'main/bak-zbm/subvol-101-disk-0');
    // zfs warns about a property that does not apply to the type: volumes get their own list.
    const vol = receiveCommand('main/bak-zbm/vm-100-disk-0', ['-s', '-u'], 'volume');
    assert.ok(!vol.includes('mountpoint') && !vol.includes('exec'));
    assert.ok(vol.includes('volmode') && vol.includes('refreservation'));
    assert.deepEqual(
      excludedProperties('volume').every((p) => excludedProperties('filesystem').includes(p)),
      true,
    );
  });

  it("keeps the client's flags and names each property once", () => {
    const argv = receiveCommand('t/x', ['-s', '-u', '-x', 'volmode', '-x', 'compression'], 'volume');
    assert.equal(argv.filter((w) => w === 'volmode').length, 1);
    assert.ok(argv.includes('compression'));
  });
});

describe('resume tokens: the snapshot zfs would send must be under the root', () => {
  const contents = (extra = '') =>
    `resume token contents:\nnvlist version: 0\n\tobject = 0x1\n\toffset = 0x10000\n\tbytes = 0x14888\n\ttoguid = 0xbdfedf3ca640f2bd\n\ttoname = main/bak-zbm/vm-100-disk-0@bak-zbm-2\n${extra}full\tmain/bak-zbm/vm-100-disk-0@bak-zbm-2\t214744\n`;

  it('reads the name and guid as zfs prints them', () => {
    assert.deepEqual(parseTokenContents(contents()), {
      toname: 'main/bak-zbm/vm-100-disk-0@bak-zbm-2',
      toguid: 0xbdfedf3ca640f2bdn.toString(),
    });
  });

  it('refuses a field given twice (a name carrying a line of its own) or a name that is no snapshot', () => {
    assert.match(JSON.stringify(parseTokenContents(contents('\ttoname = rpool/x@y\n'))), /exactly one/);
    assert.match(JSON.stringify(parseTokenContents(contents('\ttoguid = 0x1\n'))), /exactly one/);
    assert.match(
      JSON.stringify(parseTokenContents(contents().replace('vm-100-disk-0@', 'vm-100-disk-0'))),
      /not a snapshot/,
    );
    assert.match(
      JSON.stringify(parseTokenContents('cannot resume send: bad token')),
      /no resume token contents/,
    );
  });

  it("sends only the snapshot the token names, inside the root, with the token's own guid", () => {
    const token = { toname: 'main/bak-zbm/vm-100-disk-0@bak-zbm-2', toguid: '42' };
    assert.equal(refuseToken(token, 'main/bak-zbm', '42'), null);
    assert.match(
      refuseToken(token, 'main/bak-zbm/pve2', '42') ?? '',
      /not a snapshot under main\/bak-zbm\/pve2/,
    );
    assert.match(refuseToken(token, 'main/bak-zbm', null) ?? '', /does not exist/);
    // The name is inside, the guid belongs to a snapshot elsewhere in the pool: zfs would send that one.
    assert.match(refuseToken(token, 'main/bak-zbm', '43') ?? '', /found by that guid elsewhere/);
  });
});

describe("refuseNewChain: a disk's later chain, as a clone of a snapshot of its family", () => {
  const rules = { prefix: 'bak-zbm-', now: Date.parse('2026-11-26T12:00:00Z') / 1000, skew: 300 };
  const primary = 'main/bak-zbm/vm-100-disk-0';
  const anchor = `${primary}@bak-zbm-20261125T110503Z`;
  const chain = `${primary}.bak-zbm-20261126T115900Z`;
  const origin = {
    name: primary,
    snapshots: [
      { short: 'bak-zbm-20261125T110503Z', guid: '111', creation: 0 },
      { short: 'bak-zbm-20261126T110503Z', guid: '222', creation: 0 },
    ],
  };
  const stream = (f: Fields = {}) =>
    parsed({ fromguid: 111n, toname: 'rpool/data/vm-100-disk-0@bak-zbm-20261126T115900Z', ...f });

  it("lets backup-pve's new chain through: from an older snapshot of the chain, named for the new one", () => {
    assert.equal(refuseNewChain(stream(), chain, false, anchor, origin, rules), null);
    // replicate sends a later chain from its origin: a clone stream, its origin named by -o origin.
    assert.equal(refuseNewChain(stream({ flags: 0xd }), chain, false, anchor, origin, rules), null);
    assert.match(refuseIncoming(stream({ flags: 0xd }), chain, null, rules) ?? '', /a clone stream/);
  });

  it('refuses another name, an existing dataset, another start, an origin that is not there, or an old snapshot', () => {
    const why = (f: Partial<{ target: string; exists: boolean; from: bigint; at: string; to: string }>) =>
      refuseNewChain(
        stream({ fromguid: f.from ?? 111n, toname: f.to ?? 'x@bak-zbm-20261126T115900Z' }),
        f.target ?? chain,
        f.exists ?? false,
        f.at ?? anchor,
        origin,
        rules,
      ) ?? '';
    // A later chain of another disk, cloned from this one's snapshot: it would join that family.
    assert.match(
      why({ target: 'main/bak-zbm/vm-200-disk-0.bak-zbm-20261126T115900Z' }),
      /may only start a disk's first chain or the chain main\/bak-zbm\/vm-100-disk-0\.bak-zbm-20261126T115900Z/,
    );
    assert.match(why({ exists: true }), /exists already/);
    assert.match(why({ from: 222n }), /not from .*guid 111/);
    assert.match(why({ at: `${primary}@bak-zbm-20261101T000000Z` }), /does not exist/);
    // A disk's first chain (a linked clone, a template made of this disk) passes the same stream rules.
    assert.equal(why({ target: 'main/bak-zbm/vm-101-disk-0' }), '');
    assert.match(why({ target: 'main/bak-zbm/vm-101-disk-0', from: 222n }), /not from .*guid 111/);
    assert.match(
      why({ target: 'main/bak-zbm/base-100-disk-0', to: 'x@bak-zbm-20261126T100000Z' }),
      /not newer than bak-zbm-20261126T110503Z/,
    );
    // Not newer than the chain's newest backup: a name from the past, whatever it is cloned from.
    assert.match(
      why({ to: 'x@bak-zbm-20261126T100000Z', target: `${primary}.bak-zbm-20261126T100000Z` }),
      /not newer than bak-zbm-20261126T110503Z/,
    );
  });
});
