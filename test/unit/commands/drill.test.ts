/**
 * `zbm drill` and `zbm verify --max-drill-age-days` end to end against a fake `zfs` on PATH and
 * metadata files in a temporary directory: the executor reads each saved config through the
 * tier's reader, reads each disk back through `zfs send` whose stream goes nowhere, records the
 * results on this host, and verify reads that record. The real-ZFS version is in
 * test/integration/verify.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname as hostName, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { type DrillOptions, drill } from '../../../src/commands/drill.ts';
import { type VerifyOptions, verify } from '../../../src/commands/verify.ts';
import { drillStatePath } from '../../../src/drill/state.ts';
import { LocalHost } from '../../../src/host/local.ts';
import { run } from '../../../src/host/process.ts';
import { lockFileName } from '../../../src/lock/lock.ts';
import { Metrics } from '../../../src/metrics/prometheus.ts';
import { readBackArgv } from '../../../src/zfs/argv.ts';
import { captureStdout, manifestDisk } from '../../support/drill.ts';
import { hostileStrings } from '../../support/hostile.ts';

/** Lists the state's datasets and snapshots; `send` writes a stream, or fails for a bad snapshot. */
const FAKE_ZFS = String.raw`#!/usr/bin/env node
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
const state = JSON.parse(readFileSync(process.env.FAKE_ZFS_STATE, 'utf8'));
const args = process.argv.slice(2);
appendFileSync(process.env.FAKE_ZFS_LOG, JSON.stringify(args) + '\n');
const ds = state.datasets;
const holds = state.holds ?? [];
const saveHolds = () => writeFileSync(process.env.FAKE_ZFS_STATE, JSON.stringify({ ...state, holds }));
const exists = (snap) => (ds[snap.split('@')[0]] ?? []).some((s) => s.short === snap.split('@')[1]);
const die = (msg) => { process.stderr.write(msg + '\n'); process.exit(1); };
if (args[0] === 'list') {
  const o = args[args.indexOf('-o') + 1].split(',');
  const root = args.at(-1);
  if (!ds[root]) { process.stderr.write("cannot open '" + root + "': dataset does not exist\n"); process.exit(1); }
  const rows = [];
  for (const name of Object.keys(ds).sort()) {
    if (name !== root && !name.startsWith(root + '/')) continue;
    const base = { name, type: 'volume', guid: '1', createtxg: '1', creation: '1', used: '0', referenced: '0', written: '0', encryption: 'off', userrefs: '-', receive_resume_token: '-' };
    rows.push(o.map((c) => base[c] ?? '-').join('\t'));
    for (const s of ds[name]) {
      const refs = holds.filter((h) => h.snapshot === name + '@' + s.short).length;
      const row = { name: name + '@' + s.short, type: 'snapshot', guid: s.guid, createtxg: String(s.txg), creation: String(s.txg), used: '0', referenced: '1048576', written: '-', encryption: '-', userrefs: String(refs), receive_resume_token: '-' };
      rows.push(o.map((c) => row[c] ?? '-').join('\t'));
    }
  }
  process.stdout.write(rows.map((r) => r + '\n').join(''));
} else if (args[0] === 'send') {
  const snap = args.at(-1);
  if ((state.unreadable ?? []).includes(snap)) { process.stderr.write('warning: cannot send ' + snap + ': I/O error\n'); process.exit(1); }
  process.stdout.write(Buffer.alloc(256 * 1024, 7));
} else if (args[0] === 'hold') {
  const [tag, ...snaps] = args.slice(1);
  for (const snap of snaps) {
    if (!exists(snap)) die("cannot hold snapshot '" + snap + "': dataset does not exist");
    if (holds.some((h) => h.snapshot === snap && h.tag === tag)) die("cannot hold snapshot '" + snap + "': tag already exists on this dataset");
  }
  for (const snapshot of snaps) holds.push({ snapshot, tag });
  saveHolds();
} else if (args[0] === 'release') {
  const [tag, ...snaps] = args.slice(1);
  for (const snap of snaps) {
    const i = holds.findIndex((h) => h.snapshot === snap && h.tag === tag);
    if (i < 0) die("cannot release hold from snapshot '" + snap + "': no such tag on this dataset");
    holds.splice(i, 1);
  }
  saveHolds();
} else if (args[0] === 'holds') {
  const snaps = args.filter((a) => a.includes('@'));
  process.stdout.write(holds.filter((h) => snaps.includes(h.snapshot)).map((h) => h.snapshot + '\t' + h.tag + '\t1764500000\n').join(''));
} else {
  process.stderr.write('fake zfs: unsupported ' + args.join(' ') + '\n');
  process.exit(2);
}
`;

const work = mkdtempSync(join(tmpdir(), 'zbm-drill-cmd-'));
after(() => rmSync(work, { recursive: true, force: true }));
const bin = join(work, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'zfs'), FAKE_ZFS);
chmodSync(join(bin, 'zfs'), 0o755);
process.env.PATH = `${bin}:${process.env.PATH ?? ''}`;
process.env.FAKE_ZFS_STATE = join(work, 'zfs.json');
process.env.FAKE_ZFS_LOG = join(work, 'calls.log');
const lockDir = join(work, 'locks');
process.env.ZBM_LOCK_DIR = lockDir;
const meta = join(work, 'meta');
const stateDir = join(work, 'state');

const ROOT = 'main/bak-zbm';
const S = 'bak-zbm-20261126T110000Z';

const disk = (key: string, volname: string, guid: string) => manifestDisk(ROOT, key, volname, guid, 1048576);

function writeBackup(vmid: number, name: string, disks: ReturnType<typeof disk>[], config: string): void {
  mkdirSync(join(meta, String(vmid)), { recursive: true });
  const manifest = {
    format: 1,
    zbm: '0.1.0',
    vmid,
    type: 'qemu',
    name,
    node: 'pve1',
    snapshot: S,
    time: '2026-11-26T11:00:00.000Z',
    frozen: false,
    disks,
    missing: [],
  };
  writeFileSync(join(meta, String(vmid), `${S}.json`), JSON.stringify(manifest));
  writeFileSync(join(meta, String(vmid), `${S}.conf`), config);
}

function setup(unreadable: string[] = [], holds: { snapshot: string; tag: string }[] = []): void {
  rmSync(meta, { recursive: true, force: true });
  writeBackup(
    100,
    'web',
    [disk('scsi0', 'vm-100-disk-0', '11'), disk('efidisk0', 'vm-100-disk-1', '12')],
    'name: web\nscsi0: local-zfs:vm-100-disk-0,size=8G\nefidisk0: local-zfs:vm-100-disk-1,size=1M\n',
  );
  writeBackup(101, 'db', [disk('scsi0', 'vm-101-disk-0', '21')], 'name: db\nscsi0 local-zfs:vm-101-disk-0\n');
  writeBackup(102, 'mail', [disk('virtio0', 'vm-102-disk-0', '31')], 'virtio0: local-zfs:vm-102-disk-0\n');
  const zfs = {
    datasets: {
      [ROOT]: [],
      [`${ROOT}/vm-100-disk-0`]: [{ short: S, guid: '11', txg: 10 }],
      [`${ROOT}/vm-100-disk-1`]: [{ short: S, guid: '12', txg: 11 }],
      [`${ROOT}/vm-101-disk-0`]: [{ short: S, guid: '21', txg: 12 }],
      // Guest 102's disk lost the snapshot its backup names.
      [`${ROOT}/vm-102-disk-0`]: [],
    },
    unreadable,
    holds,
  };
  writeFileSync(process.env.FAKE_ZFS_STATE ?? '', JSON.stringify(zfs));
  writeFileSync(process.env.FAKE_ZFS_LOG ?? '', '');
}

function fakeHolds(): { snapshot: string; tag: string }[] {
  return (JSON.parse(readFileSync(process.env.FAKE_ZFS_STATE ?? '', 'utf8')) as { holds?: [] }).holds ?? [];
}

function drillOptions(over: Partial<DrillOptions> = {}): DrillOptions {
  return { localZfsRoot: ROOT, prefix: 'bak-zbm-', localMetadataDir: meta, stateDir, json: true, ...over };
}

interface Report {
  state: string;
  checks: { state: string; subject: string; message: string }[];
}

describe('zbm drill against a fake zfs', () => {
  it('drills every guest: a good one passes with --full-read, the others fail naming guest and cause; exit 2; records and metrics', async () => {
    setup();
    const metrics = new Metrics();
    const { result, stdout } = await captureStdout(() =>
      drill(drillOptions({ fullRead: true }), createLogger({ write: () => {} }), metrics),
    );
    assert.equal(result, 2, stdout);
    const report = JSON.parse(stdout) as Report;
    assert.equal(report.state, 'CRITICAL');
    assert.deepEqual(
      report.checks.map((c) => [c.state, c.subject]),
      [
        ['OK', 'guest 100 (web)'],
        ['CRITICAL', 'guest 101 (db)'],
        ['CRITICAL', 'guest 102 (mail)'],
      ],
    );
    assert.match(
      report.checks[0]?.message ?? '',
      /every block read back without a checksum error \(2\.0 MiB\)$/,
    );
    assert.match(report.checks[1]?.message ?? '', /the saved config does not parse: config line 2/);
    assert.match(
      report.checks[2]?.message ?? '',
      new RegExp(`virtio0: ${ROOT}/vm-102-disk-0@${S} does not exist on`),
    );
    // Every present disk was sent, the whole snapshot, held meanwhile; the missing one was not.
    const calls = readFileSync(process.env.FAKE_ZFS_LOG ?? '', 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[])
      .filter((a) => a[0] !== 'list');
    const snap = (v: string) => `${ROOT}/${v}@${S}`;
    assert.deepEqual(calls, [
      ['hold', 'zbm-drill', snap('vm-100-disk-0'), snap('vm-100-disk-1')],
      ['send', '-L', '-e', '-c', snap('vm-100-disk-0')],
      ['send', '-L', '-e', '-c', snap('vm-100-disk-1')],
      ['release', 'zbm-drill', snap('vm-100-disk-0'), snap('vm-100-disk-1')],
      ['hold', 'zbm-drill', snap('vm-101-disk-0')],
      ['send', '-L', '-e', '-c', snap('vm-101-disk-0')],
      ['release', 'zbm-drill', snap('vm-101-disk-0')],
    ]);
    assert.deepEqual(fakeHolds(), [], 'no hold left');
    const records = JSON.parse(readFileSync(drillStatePath(stateDir, ROOT), 'utf8')) as {
      guests: Record<string, { lastSuccess: number | null; state: string }>;
    };
    assert.equal(records.guests['100']?.state, 'OK');
    assert.ok(Math.abs((records.guests['100']?.lastSuccess ?? 0) - Date.now() / 1000) < 60);
    assert.deepEqual([records.guests['101']?.lastSuccess, records.guests['102']?.state], [null, 'CRITICAL']);
    assert.deepEqual(
      metrics.samples
        .filter((s) => s.name === 'zbm_drill_last_success_timestamp_seconds')
        .map((s) => [s.labels.vmid, s.value]),
      [['100', records.guests['100']?.lastSuccess]],
    );
  });

  it('a block that does not read back fails the guest; verify --max-drill-age-days warns about the guests never drilled', async () => {
    setup([`${ROOT}/vm-100-disk-1@${S}`]);
    const { result, stdout } = await captureStdout(() =>
      drill(drillOptions({ fullRead: true, vmid: [100] }), createLogger({ write: () => {} })),
    );
    assert.equal(result, 2, stdout);
    const c = (JSON.parse(stdout) as Report).checks[0];
    assert.equal(c?.subject, 'guest 100 (web)');
    assert.match(
      c?.message ?? '',
      new RegExp(`efidisk0: ${ROOT}/vm-100-disk-1@${S} does not read back: .*I/O error`),
    );

    const opts: VerifyOptions = {
      localZfsRoot: ROOT,
      prefix: 'bak-zbm-',
      maxAgeDays: 36500,
      minSnapshots: 0,
      maxScrubAgeDays: 35,
      poolChecks: false,
      localMetadataDir: meta,
      maxDrillAgeDays: 7,
      stateDir,
      json: true,
    };
    const v = await captureStdout(() => verify(opts, createLogger({ write: () => {} })));
    const drills = (JSON.parse(v.stdout) as Report).checks.filter((x) => x.subject.startsWith('drill of'));
    assert.deepEqual(
      drills.map((x) => [x.state, x.subject]),
      [
        // Passed in the test above: its failure now keeps that success.
        ['OK', 'drill of guest 100 (web)'],
        ['WARNING', 'drill of guest 101 (db)'],
        ['WARNING', 'drill of guest 102 (mail)'],
      ],
    );
    assert.match(
      drills[1]?.message ?? '',
      /^never passed a restore drill on this host \(last drill CRITICAL/,
    );
  });

  it('releases the drill hold a killed drill left, and no other hold; a second drill meanwhile does nothing (UNKNOWN, exit 3)', async () => {
    const other = { snapshot: `${ROOT}/vm-100-disk-0@${S}`, tag: 'zbm-base:pve1:zbm-dest' };
    setup([], [other, { snapshot: `${ROOT}/vm-101-disk-0@${S}`, tag: 'zbm-drill' }]);
    const lines: string[] = [];
    const { result } = await captureStdout(() =>
      drill(drillOptions({ vmid: [100] }), createLogger({ write: (l) => lines.push(l) })),
    );
    assert.equal(result, 0);
    assert.deepEqual(fakeHolds(), [other]);
    assert.ok(
      lines.some((l) =>
        l.includes(`released the hold (zbm-drill) an interrupted drill left on ${ROOT}/vm-101-disk-0@${S}`),
      ),
      lines.join(''),
    );

    // Another drill of the tier, alive: this one must not take its holds for leftovers.
    const holder = spawn('bash', ['-c', 'exec -a zbm sleep 30'], { stdio: 'ignore' });
    try {
      mkdirSync(lockDir, { recursive: true });
      writeFileSync(
        join(lockDir, lockFileName(`drill-${ROOT}`)),
        JSON.stringify({ pid: holder.pid, command: `drill of ${ROOT}`, since: '2026-11-30T07:00:00Z' }),
      );
      await new Promise((r) => setTimeout(r, 100));
      setup([], [{ snapshot: `${ROOT}/vm-101-disk-0@${S}`, tag: 'zbm-drill' }]);
      const second = await captureStdout(() =>
        drill(drillOptions({ json: false, fullRead: true }), createLogger({ write: () => {} })),
      );
      assert.equal(second.result, 3);
      assert.equal(
        second.stdout,
        `ZBM UNKNOWN - another restore drill of ${hostName()}:${ROOT} is running: zbm pid ${holder.pid} (drill of ${ROOT}, since 2026-11-30T07:00:00Z); this one did nothing\n`,
      );
      assert.equal(fakeHolds().length, 1, 'the running drill keeps its hold');
      assert.ok(!readFileSync(process.env.FAKE_ZFS_LOG ?? '', 'utf8').includes('"send"'));
    } finally {
      holder.kill();
    }
  });

  it('--dry-run plans without reading a config or a block, and records nothing', async () => {
    setup();
    rmSync(stateDir, { recursive: true, force: true });
    const { result, stdout } = await captureStdout(() =>
      drill(
        drillOptions({ dryRun: true, json: false, fullRead: true, sample: 1 }),
        createLogger({ write: () => {} }),
      ),
    );
    assert.equal(result, 0);
    assert.equal(
      stdout,
      [
        'plan (dry run, nothing is read):',
        `  guest 100 (web): ${S}`,
        `    scsi0 ${ROOT}/vm-100-disk-0@${S}`,
        `    efidisk0 ${ROOT}/vm-100-disk-1@${S}`,
        '    read back: 2 disk(s)',
        '',
      ].join('\n'),
    );
    assert.ok(!readFileSync(process.env.FAKE_ZFS_LOG ?? '', 'utf8').includes('"send"'));
    assert.throws(() => readFileSync(drillStatePath(stateDir, ROOT)), /ENOENT/);
  });

  it('reads a disk back with its name as one argument, whatever it holds, and keeps none of the stream', async () => {
    setup();
    const marker = join(work, 'pwned');
    for (const h of hostileStrings(marker)) {
      const name = `${ROOT}/vm-100-disk-0@${h}`;
      writeFileSync(process.env.FAKE_ZFS_LOG ?? '', '');
      const r = await run(new LocalHost(), readBackArgv(name, true));
      assert.equal(r.stdout, '', 'the stream goes to /dev/null');
      const calls = readFileSync(process.env.FAKE_ZFS_LOG ?? '', 'utf8')
        .trim()
        .split('\n');
      assert.deepEqual(
        calls.map((l) => JSON.parse(l) as string[]),
        [['send', '-L', '-e', '-c', '-w', name]],
      );
    }
    assert.throws(() => readFileSync(marker), /ENOENT/);
  });
});
