import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseCreation,
  parseGet,
  parseHolds,
  parseList,
  parseSendEstimate,
  ZfsOutputError,
} from '../../../src/zfs/parse.ts';
import { zfsFixture as fixture } from '../../support/fixtures.ts';

describe('parseList', () => {
  it('reads a real recursive listing with zvols, file systems, snapshots, bookmarks and a resume token', () => {
    const ds = parseList(fixture('list-all.txt'), ['zbm:test']);
    const byName = new Map(ds.map((d) => [d.name, d]));
    const vol = byName.get('rpool/data/vm-100-disk-0');
    assert.ok(vol);
    assert.equal(vol.type, 'volume');
    assert.deepEqual(
      vol.snapshots.map((s) => s.short),
      ['before-upgrade', 'bak-zbm-1', 'bak-zbm-2'],
    );
    assert.ok(vol.snapshots.every((s, i, a) => i === 0 || (a[i - 1]?.createtxg ?? 0) < s.createtxg));
    assert.match(vol.snapshots[1]?.guid ?? '', /^\d{10,20}$/);
    assert.deepEqual(
      vol.bookmarks.map((b) => b.short),
      ['bak-zbm-1'],
    );
    assert.equal(vol.bookmarks[0]?.guid, vol.snapshots[1]?.guid, 'a bookmark keeps its snapshot guid');
    assert.equal(byName.get('rpool/data/subvol-103-disk-0')?.type, 'filesystem');
    assert.equal(byName.get('rpool/data')?.resumeToken, null);
    assert.match(byName.get('main/partial')?.resumeToken ?? '', /^1-[0-9a-f]+-[0-9a-f]+-/);
    assert.equal(vol.props['zbm:test'], 'hello');
  });

  it('treats `-` as absent and keeps 64-bit guids exact', () => {
    const line = [
      'p/ds',
      'filesystem',
      '18446744073709551615',
      '5',
      '1700000000',
      '100',
      '100',
      '0',
      'off',
      '-',
      '-',
      '-',
    ].join('\t');
    const [d] = parseList(`${line}\n`, ['zbm:x']);
    assert.equal(d?.guid, '18446744073709551615');
    assert.deepEqual(d?.props, {});
  });

  it('refuses garbage rather than guessing', () => {
    const cases = [
      'rpool\tfilesystem\t123\n',
      'rpool/$(id)\tfilesystem\t1\t1\t1\t1\t1\t0\toff\t-\t-\n',
      'rpool\tfilesystem\tabc\t1\t1\t1\t1\t0\toff\t-\t-\n',
      'rpool\tfrobnicator\t1\t1\t1\t1\t1\t0\toff\t-\t-\n',
      'rpool@s\tsnapshot\t1\tsoon\t1\t1\t1\t0\toff\t-\t-\n',
    ];
    for (const c of cases) assert.throws(() => parseList(c), ZfsOutputError, JSON.stringify(c));
  });
});

describe('parseGet', () => {
  it('reads values, sources and `-`', () => {
    const rows = parseGet(fixture('get.txt'));
    const token = rows.find((r) => r.property === 'receive_resume_token' && r.name === 'rpool/data');
    assert.equal(token?.value, null);
    const user = rows.find((r) => r.property === 'zbm:test' && r.name === 'rpool/data/vm-100-disk-0');
    assert.equal(rows.find((r) => r.property === 'zbm:test' && r.name === 'rpool/data')?.value, null);
    assert.equal(user?.value, 'hello');
    assert.equal(user?.source, 'local');
  });
});

describe('parseCreation', () => {
  it("reads one dataset's creation in seconds, and nothing else", () => {
    assert.equal(parseCreation('main\tcreation\t1795000000\t-\n', 'main'), 1_795_000_000);
    for (const [text, why] of [
      ['main\tcreation\tThu Nov 26 11:05 2026\t-\n', /creation is "Thu Nov 26 11:05 2026", not a number/],
      ['main\tcreation\t-\t-\n', /creation is "-", not a number/],
      ['main/x\tcreation\t1795000000\t-\n', /not the creation of main alone/],
      ['main\tused\t1795000000\t-\n', /not the creation of main alone/],
      ['main\tcreation\t1\t-\nmain\tcreation\t2\t-\n', /not the creation of main alone/],
      ['', /not the creation of main alone/],
    ] as const) {
      assert.throws(
        () => parseCreation(text, 'main'),
        (err: unknown) => err instanceof ZfsOutputError && why.test(err.message),
        text,
      );
    }
  });
});

describe('parseHolds', () => {
  it('reads tags and timestamps', () => {
    const holds = parseHolds(fixture('holds.txt'));
    assert.ok(holds.length >= 2);
    assert.ok(holds.every((h) => h.snapshot.includes('@') && h.timestamp > 1_600_000_000));
    assert.ok(holds.some((h) => h.tag === 'zbm with spaces'));
  });
});

describe('parseSendEstimate', () => {
  it('reads full, incremental (-I) and resume estimates', () => {
    assert.ok(parseSendEstimate(fixture('send-full.txt')).bytes > 0);
    assert.ok(parseSendEstimate(fixture('send-incremental.txt')).bytes > 0);
    assert.ok(parseSendEstimate(fixture('send-resume.txt')).bytes > 0);
  });

  it('refuses output without a size', () => {
    assert.throws(() => parseSendEstimate('full\tp/a@b\t12\n'), ZfsOutputError);
  });
});
