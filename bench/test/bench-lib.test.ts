// Unit tests of the benchmark suite's pure parts (counting, ratios); not part of npm test.
//   node --import tsx --test bench/test/*.test.ts
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countInvocations, parseLog, sideOf, transferLines } from '../lib/logs.ts';
import {
  type CyclesRaw,
  cycleRows,
  type DatapathRaw,
  datapathRows,
  fixedRows,
  lanRows,
  median,
  memoryRows,
  wanRows,
} from '../lib/report.ts';

const ZFS_LOG = [
  '1795704880.100 647 list -H -p -r -t filesystem,volume rpool/data',
  '1795704880.200 648 list -H -p -r main/bak-zbm',
  '1795704881.000 650 send -L -e -c -i rpool/data/vm-1-disk-0@a rpool/data/vm-1-disk-0@b',
  '1795704881.300 655 receive -s -u main/bak-zbm/vm-1-disk-0',
  '1795704885.000 660 hold zbm-base:pve:zbm-dest rpool/data/vm-1-disk-0@b',
  '1795704885.500 661 version',
  '',
].join('\n');

describe('invocation logs', () => {
  it('parses lines and skips garbage', () => {
    const lines = parseLog(`${ZFS_LOG}not a line\n`);
    assert.equal(lines.length, 6);
    assert.deepEqual(lines[2]?.argv.slice(0, 2), ['send', '-L']);
    assert.equal(lines[3]?.pid, 655);
  });

  it('tells the node from the backup server by pool', () => {
    assert.equal(sideOf(['receive', '-F', "'main/bak-syncoid/vm-1-disk-0'"]), 'target');
    assert.equal(sideOf(['snapshot', 'rpool/data/x@s']), 'source');
    assert.equal(sideOf(['list', 'mainly']), 'other');
    assert.equal(sideOf(['version']), 'other');
  });

  it('counts zfs per side and ssh processes', () => {
    const c = countInvocations(parseLog(ZFS_LOG), parseLog('1.0 1 -O exit zbm-dest\n2.0 2 zbm-dest true\n'));
    assert.equal(c.zfs, 6);
    assert.equal(c.zfsSource, 3);
    assert.equal(c.zfsTarget, 2);
    assert.equal(c.zfsOther, 1);
    assert.equal(c.ssh, 2);
    assert.equal(c.zfsBySubcommand.list, 2);
  });

  it('finds the send and the receive of one transfer', () => {
    const t = transferLines(parseLog(ZFS_LOG), 'rpool/data/vm-1-disk-0', 'main/bak-zbm/vm-1-disk-0');
    assert.equal(t?.send.pid, 650);
    assert.equal(t?.receive.pid, 655);
    assert.equal(transferLines(parseLog(ZFS_LOG), 'rpool/data/vm-1-disk-0', 'main/other'), null);
  });
});

const counts = (zfs: number, ssh: number) => ({
  zfs,
  zfsSource: zfs,
  zfsTarget: 0,
  zfsOther: 0,
  ssh,
  zfsBySubcommand: {},
});

describe('report rows', () => {
  const cycles: CyclesRaw = {
    guests: 10,
    datasets: 20,
    initial: { zbm: { ms: 1, counts: counts(1, 1) }, syncoidRecursive: { ms: 1, counts: counts(1, 1) } },
    idle: {
      zbm: { ms: 10_000, counts: counts(100, 50) },
      syncoidLoop: { ms: 60_000, counts: counts(200, 200) },
      syncoidRecursive: { ms: 40_000, counts: counts(150, 100) },
      zbmFewGuests: { guests: 2, datasets: 4, ms: 3000, counts: counts(20, 10) },
    },
    small: {
      writtenPerDataset: 1024 * 1024,
      zbm: { ms: 12_000, counts: counts(100, 50), targetWritten: 20 * 1024 * 1024 },
      syncoidLoop: { ms: 70_000, counts: counts(200, 200), targetWritten: 20 * 1024 * 1024 },
      syncoidRecursive: { ms: 50_000, counts: counts(150, 100), targetWritten: 40 * 1024 * 1024 },
    },
  };

  it('speed-ups are baseline over zbm, and the wrapper correction can only make a target harder', () => {
    const rows = cycleRows(cycles, 10);
    const loop = rows.find((r) => r.what === 'zbm speed-up over syncoid per-dataset loop');
    assert.match(loop?.value ?? '', /^6\.00×/);
    // Corrected: (60000 - 400*10) / (10000 - 150*10) = 56000 / 8500 = 6.59.
    assert.match(loop?.value ?? '', /6\.59×/);
    assert.equal(loop?.met, true);
    const rec = rows.find((r) => r.what === 'zbm speed-up over syncoid -r' && r.section === 'idle cycle');
    assert.equal(rec?.met, false, '4× is below the 5× target');
    // Results from before --jobs existed have no such rows; with it, they are named by their option.
    assert.ok(!rows.some((r) => r.what.includes('--jobs')));
    const withJobs: CyclesRaw = {
      ...cycles,
      idle: { ...cycles.idle, zbmJobs: { jobs: 4, ms: 5000, counts: counts(100, 50) } },
    };
    const jobs = cycleRows(withJobs, 0).find(
      (r) => r.what === 'zbm --jobs 4 speed-up over syncoid per-dataset loop',
    );
    assert.match(jobs?.value ?? '', /^12\.00×/);
    assert.equal(jobs?.met, true);
  });

  it('a sampled run is compared by its median, and its samples are shown', () => {
    const sampled: CyclesRaw = {
      ...cycles,
      idle: {
        ...cycles.idle,
        zbm: { ms: 8_000, counts: counts(100, 50), samplesMs: [9_000, 8_000, 7_500] },
        syncoidRecursive: { ms: 42_000, counts: counts(150, 100), samplesMs: [40_000, 42_000, 45_000] },
      },
    };
    const rec = cycleRows(sampled, 0).find((r) => r.what === 'zbm speed-up over syncoid -r');
    assert.match(rec?.value ?? '', /^5\.25×/);
    assert.equal(rec?.met, true);
    assert.equal(
      rec?.context,
      'zbm 8.0 s (median of 9.0 s, 8.0 s, 7.5 s), syncoid -r 42.0 s (median of 40.0 s, 42.0 s, 45.0 s)',
    );
  });

  it('process growth is judged against the datasets ratio', () => {
    const growth = cycleRows(cycles, 0).find((r) => r.what.startsWith('zbm zfs+ssh processes'));
    assert.match(growth?.value ?? '', /30 → 150 \(5\.00× for 5\.00× datasets\)/);
    assert.equal(growth?.met, false);
  });

  it('bytes moved are compared with the bytes written', () => {
    const rows = cycleRows(cycles, 0).filter((r) => r.what.includes('bytes moved'));
    assert.deepEqual(
      rows.map((r) => r.value),
      ['1.00×', '1.00×', '2.00×'],
    );
  });

  it('throughput and --bwlimit ratios', () => {
    const d: DatapathRaw = {
      streamMiB: 256,
      streamBytes: 256 * 1024 * 1024,
      bareMs: [9000, 11_000],
      sshMs: [20_000, 20_000],
      zbm: { wallMs: 30_000, transferMs: 21_000, bytes: 256 * 1024 * 1024, peakRssKiB: 60_000 },
      zbmProgress: { wallMs: 30_000, transferMs: null },
      bwlimit: {
        limitBytesPerSecond: 8 * 1024 * 1024,
        streamMiB: 64,
        bytes: 64 * 1024 * 1024,
        wallMs: 12_000,
        transferMs: 8000,
        steadyBytesPerSecond: 8.2 * 1024 * 1024,
        peakRssKiB: 60_000,
      },
    };
    const rows = datapathRows(d);
    assert.equal(rows[0]?.value, '0.95×');
    assert.equal(rows[0]?.met, false, 'without progress the stream must reach 0.97× of the pipeline');
    assert.equal(rows[1]?.value, '0.48×');
    assert.equal(rows[2]?.met, false, 'a transfer not found is a miss, never a pass');
    const [held, whole] = rows.filter((r) => r.what.startsWith('--bwlimit 8192K'));
    assert.equal(held?.value, '1.02×');
    assert.equal(held?.met, true);
    assert.equal(whole?.value, '1.00×');
    assert.equal(whole?.met, null, 'the whole transfer is context: it includes process start-up');
  });

  it('the data path compares medians, the sample in the middle and not the mean', () => {
    assert.equal(median([30_000, 10_000, 11_000]), 11_000);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });

  it('memory: a large stream against the regular one, flat within 5 % and under 100 MB', () => {
    const d = (bigKiB: number): DatapathRaw => ({
      streamMiB: 64,
      streamBytes: 64 * 1024 * 1024,
      bareMs: [1],
      sshMs: [1],
      zbm: { wallMs: 1, transferMs: 1, peakRssKiB: 60_000 },
      zbmProgress: { wallMs: 1, transferMs: 1 },
      big: { streamMiB: 1024, wallMs: 1, transferMs: null, peakRssKiB: bigKiB },
      bwlimit: {
        limitBytesPerSecond: 1,
        streamMiB: 16,
        bytes: 1,
        wallMs: 1,
        transferMs: null,
        peakRssKiB: 70_000,
      },
    });
    const flat = memoryRows(undefined, d(61_000)).find((r) => r.what.startsWith('peak RSS 1024 MiB'));
    assert.equal(flat?.value, '1.02×');
    assert.equal(flat?.met, true);
    const grows = memoryRows(undefined, d(66_000)).find((r) => r.what.startsWith('peak RSS 1024 MiB'));
    assert.equal(grows?.met, false, '1.10× is not flat');
  });
});

describe('fixed cost', () => {
  it('an idle run against its unavoidable part, by medians, then the traced breakdown', () => {
    const rows = fixedRows({
      samples: 3,
      zbmMs: [9000, 8000, 30_000],
      unavoidableMs: [3000, 4000, 4000],
      trace: [
        { at: 1.5, s: 2.0, host: 'zbm-dest', command: 'zfs list -H -p main/bak-zbm' },
        { at: 2.1, s: 0.4, host: 'pve1', command: 'zfs list -H -p rpool/data' },
      ],
      traceTotalS: 8.2,
    });
    assert.equal(rows[0]?.value, '2.25×');
    assert.equal(rows[0]?.met, false);
    assert.equal(rows[1]?.value, '1.50 s', "zbm's start until its first command");
    assert.deepEqual(
      rows.slice(2).map((r) => [r.what, r.value, r.context]),
      [
        ['traced: zbm-dest: zfs list -H -p main/bak-zbm', '2.00 s', 'from +1.50 s'],
        ['traced: pve1: zfs list -H -p rpool/data', '0.40 s', 'from +2.10 s'],
      ],
    );
  });

  it('with the shell script: its floor against the listings, and zbm against it', () => {
    const rows = fixedRows({
      samples: 3,
      zbmMs: [9000, 8000, 30_000],
      unavoidableMs: [3000, 4000, 4000],
      scriptMs: [6000, 7000, 6500],
      trace: [],
      traceTotalS: 8.2,
    });
    assert.deepEqual(
      rows.map((r) => r.value),
      ['2.25×', '1.63×', '1.38×'],
      'zbm 9 s / listings 4 s; script 6.5 s / 4 s; zbm 9 s / script 6.5 s',
    );
    assert.equal(rows[1]?.met, null, 'the script has no target of its own');
  });
});

describe('WAN', () => {
  it('zbm against syncoid and the bare pipe, by medians of whole commands', () => {
    const rows = wanRows({
      streamMiB: 128,
      streamBytes: 134_300_000,
      zbmBytes: 134_300_000,
      rateMbit: 24,
      zbmMs: [60_000, 62_000, 90_000],
      syncoidMs: [70_000, 68_000, 69_000],
      bareMs: [59_000, 58_000, 61_000],
    });
    assert.equal(rows[0]?.value, '1.11×');
    assert.equal(rows[0]?.met, true);
    assert.equal(rows[1]?.value, '0.95×');
    assert.equal(rows[1]?.met, true);
  });
});

describe('LAN', () => {
  it("replicate push against the bare pipe, by the data path's target, syncoid for context", () => {
    const raw = {
      streamMiB: 64,
      streamBytes: 67_200_000,
      zbmBytes: 67_200_000,
      rateMbit: null,
      zbmMs: [7_000, 6_900, 9_500],
      syncoidMs: [30_000, 31_000, 29_000],
      bareMs: [6_900, 7_100, 6_950],
    };
    const rows = lanRows(raw);
    assert.deepEqual(
      rows.map((r) => [r.value, r.met]),
      [
        ['0.99×', true],
        ['4.29×', null],
      ],
    );
    assert.equal(lanRows({ ...raw, zbmMs: [7_400, 7_400, 7_400] })[0]?.met, false, '0.94× misses 0.97');
  });

  it('pull, when measured, by the same target against ssh zfs send | zfs receive', () => {
    const rows = lanRows({
      streamMiB: 64,
      streamBytes: 67_200_000,
      zbmBytes: 67_200_000,
      rateMbit: null,
      zbmMs: [7_000],
      syncoidMs: [30_000],
      bareMs: [6_900],
      pull: {
        streamBytes: 67_300_000,
        zbmBytes: 67_300_000,
        zbmMs: [8_000, 7_600, 7_500],
        bareMs: [7_200, 7_300, 7_100],
      },
    });
    assert.equal(rows.length, 3);
    assert.equal(rows[2]?.value, '0.95×', 'bare 7.2 s / zbm 7.6 s');
    assert.equal(rows[2]?.met, false);
    assert.match(rows[2]?.context ?? '', /zbm reported 67300000 bytes, the stream has 67300000/);
  });
});
