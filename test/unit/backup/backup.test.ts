import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backupGuests } from '../../../src/backup/backup.ts';
import type { BackupContext } from '../../../src/backup/context.ts';
import { type PreparedGuest, prepareGuest } from '../../../src/backup/guest.ts';
import { obsoleteSnapshots, protection } from '../../../src/backup/protect-bases.ts';
import { snapshotBatches } from '../../../src/backup/snapshots.ts';
import { lockFileName } from '../../../src/lock/lock.ts';
import { WRITE_FILE_ARGV, WRITE_FILES_ARGV } from '../../../src/metadata/write.ts';
import type { Guest } from '../../../src/pve/index.ts';
import type { Bookmark, Dataset, Snapshot } from '../../../src/zfs/types.ts';
import type { Zfs } from '../../../src/zfs/zfs.ts';
import { FakeHost, FakeZfs } from '../../support/fake-zfs.ts';
import { bookmark, snapshot, dataset as zfsDataset } from '../../support/zfs.ts';

const snap = (ds: string, short: string, txg: number, userrefs = 0): Snapshot =>
  snapshot(ds, short, { guid: `${txg}`, createtxg: txg, creation: txg, userrefs });
const mark = (ds: string, short: string, txg: number): Bookmark =>
  bookmark(ds, short, { guid: `${txg}`, createtxg: txg, creation: txg });
const dataset = (name: string, snapshots: Snapshot[], bookmarks: Bookmark[] = []): Dataset =>
  zfsDataset(name, snapshots, { guid: name, bookmarks });

const PREFIX = 'bak-zbm-';
const OLD = `${PREFIX}20261125T000000Z`;

function guest(vmid: number, disks: number, freeze = false): Guest {
  return {
    vmid,
    type: 'qemu',
    name: `g${vmid}`,
    node: 'pve1',
    configText: `name: g${vmid}\n`,
    config: {} as Guest['config'],
    disks: Array.from({ length: disks }, (_, i) => ({
      key: `scsi${i}`,
      storage: 'local-zfs',
      volname: `vm-${vmid}-disk-${i}`,
      dataset: `rpool/data/vm-${vmid}-disk-${i}`,
      value: `local-zfs:vm-${vmid}-disk-${i}`,
    })),
    skipped: [],
    freeze,
    lock: null,
    template: false,
  };
}

interface World {
  ctx: BackupContext;
  local: FakeZfs;
  remote: FakeZfs;
  remoteHost: FakeHost;
  localHost: FakeHost;
  logs: string[];
  source: Map<string, Dataset>;
  target: Map<string, Dataset>;
}

/**
 * Guests backed up once before: OLD on both sides, held on the backup server. `legacy`: as an
 * earlier zbm left it, also held and bookmarked on the node.
 */
function world(guests: readonly Guest[], opts: { serve?: boolean; legacy?: boolean } = {}): World {
  const localHost = new FakeHost('pve1');
  const remoteHost = new FakeHost(
    'zbm-dest',
    (argv) => opts.serve === true && argv[2] === WRITE_FILES_ARGV[2],
  );
  const local = new FakeZfs(localHost);
  const remote = new FakeZfs(remoteHost);
  const tag = 'zbm-base:pve:zbm-dest';
  const target = new Map<string, Dataset>();
  for (const g of guests) {
    for (const d of g.disks) {
      if (opts.legacy) {
        local.data.set(
          d.dataset,
          dataset(d.dataset, [snap(d.dataset, OLD, 1, 1)], [mark(d.dataset, OLD, 1)]),
        );
        local.holdsOf.set(`${d.dataset}@${OLD}`, new Set([tag, 'someone-else']));
      } else {
        local.data.set(d.dataset, dataset(d.dataset, [snap(d.dataset, OLD, 1)]));
      }
      const t = `main/bak-zbm/${d.volname}`;
      target.set(t, dataset(t, [snap(t, OLD, 1, 1)]));
      remote.holdsOf.set(`${t}@${OLD}`, new Set([tag]));
    }
  }
  const source = new Map(local.data);
  const logs: string[] = [];
  const log = (level: string) => (m: string) => logs.push(`${level}: ${m}`);
  let second = 0;
  const ctx: BackupContext = {
    node: 'pve1',
    local: localHost,
    remote: remoteHost,
    localZfs: local as unknown as Zfs,
    remoteZfs: remote as unknown as Zfs,
    prefix: PREFIX,
    remoteZfsRoot: 'main/bak-zbm',
    metadataDir: '/root/backups_metadata',
    keepSource: 1,
    lockWaitMs: 0,
    log: { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') },
    now: () => new Date(Date.UTC(2026, 10, 26, 12, 0, second++)),
  };
  return { ctx, local, remote, remoteHost, localHost, logs, source, target };
}

describe('backup-pve: one run over several guests', () => {
  let lockDir = '';
  before(() => {
    lockDir = mkdtempSync(join(tmpdir(), 'zbm-locks-'));
    process.env.ZBM_LOCK_DIR = lockDir;
  });
  after(() => {
    delete process.env.ZBM_LOCK_DIR;
    rmSync(lockDir, { recursive: true, force: true });
  });

  it("takes the snapshots while the server's listing is on its way; if the server cannot be used, destroys them and fails the run", async () => {
    const gs = [guest(200, 2), guest(201, 1)];
    const ok = world(gs);
    let arrive: (t: Map<string, Dataset>) => void = () => {};
    const late = new Promise<Map<string, Dataset>>((resolve) => {
      arrive = resolve;
    });
    const running = backupGuests(ok.ctx, gs, ok.source, late);
    for (let i = 0; i < 50 && ok.local.count('list') === 0; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      ok.local.calls.map((c) => c.split(' ')[0]),
      ['snapshot', 'list'],
      'the snapshot and its listing before the server answered',
    );
    assert.deepEqual(ok.remoteHost.calls, []);
    arrive(ok.target);
    assert.deepEqual(
      (await running).map((r) => r.result),
      ['ok', 'ok'],
      ok.logs.join('\n'),
    );

    // The server fails while the snapshots are taken: they are destroyed, the run's error is its.
    const down = world(gs);
    const before = [...down.local.data.values()].map((d) => d.snapshots.map((s) => s.name));
    let fail: (e: Error) => void = () => {};
    const failing = new Promise<Map<string, Dataset>>((_, reject) => {
      fail = reject;
    });
    const snapshot = down.local.snapshot.bind(down.local);
    down.local.snapshot = async (names) => {
      await snapshot(names);
      fail(new Error('on zbm-dest: cannot create main/bak-zbm: no such pool'));
    };
    await assert.rejects(backupGuests(down.ctx, gs, down.source, failing), /no such pool/);
    assert.equal(down.local.count('snapshot'), 1);
    assert.deepEqual(
      [...down.local.data.values()].map((d) => d.snapshots.map((s) => s.name)),
      before,
      'the node as the run found it',
    );
    assert.ok(
      down.logs.includes('info: destroyed the 3 snapshot(s) this run took: nothing could be sent'),
      down.logs.join('\n'),
    );

    // Failed before the snapshots: none is taken.
    const refused = world(gs);
    await assert.rejects(
      backupGuests(
        refused.ctx,
        gs,
        refused.source,
        Promise.reject(new Error('cannot reach zbm-dest over ssh')),
      ),
      /cannot reach zbm-dest/,
    );
    assert.deepEqual(refused.local.calls, []);
  });

  it('makes the same zfs calls for 1 and for 3 guests, apart from the per-disk ones; nothing but snapshots on the node', async () => {
    const counts = async (n: number) => {
      const gs = Array.from({ length: n }, (_, i) => guest(200 + i, 2));
      const w = world(gs);
      const results = await backupGuests(w.ctx, gs, w.source, w.target);
      assert.deepEqual(
        results.map((r) => r.result),
        gs.map(() => 'ok'),
        w.logs.join('\n'),
      );
      const remoteCommands = w.remoteHost.calls.filter((c) => c[0] !== 'zfs' || c[1] !== 'receive').length;
      // The node keeps no hold: no hold, holds or release there at all.
      assert.deepEqual(
        w.local.calls.filter((c) => /^(hold|holds|release|bookmark|program|destroy) /.test(c)),
        [],
      );
      return {
        snapshot: w.local.count('snapshot'),
        list: w.local.count('list'),
        holds: w.remote.count('holds'),
        hold: w.remote.count('hold'),
        release: w.remote.count('release'),
        remoteCommands,
        obsolete: results.flatMap((r) => r.obsolete).length,
        held: [...w.remote.holdsOf].filter(([, tags]) => tags.size > 0).map(([s]) => s.split('@')[1]),
      };
    };
    const one = await counts(1);
    const three = await counts(3);
    const perRun = { snapshot: 1, list: 1, holds: 1, hold: 1, release: 1, remoteCommands: 1 };
    for (const c of [one, three])
      assert.deepEqual({ ...c, obsolete: 0, held: [] }, { ...perRun, obsolete: 0, held: [] });
    // OLD is obsolete on every disk, and the backup server holds the new base of every disk only.
    assert.equal(one.obsolete, 2);
    assert.equal(three.obsolete, 6);
    assert.equal(three.held.length, 6);
    assert.ok(three.held.every((s) => s !== OLD));
  });

  it('--jobs sends that many disks at a time, and each guest keeps its disks in order', async () => {
    const gs = [guest(900, 2), guest(901, 2), guest(902, 2)];
    const maxInFlight = async (jobs: number) => {
      const log = join(lockDir, `sends-${jobs}`);
      writeFileSync(log, '');
      process.env.ZBM_TEST_SEND_LOG = log;
      try {
        const w = world(gs);
        const results = await backupGuests({ ...w.ctx, jobs }, gs, w.source, w.target);
        assert.deepEqual(
          results.map((r) => r.disks.map((d) => d.key)),
          gs.map(() => ['scsi0', 'scsi1']),
        );
        assert.ok(results.every((r) => r.result === 'ok'));
      } finally {
        delete process.env.ZBM_TEST_SEND_LOG;
      }
      let now = 0;
      let max = 0;
      for (const line of readFileSync(log, 'utf8').split('\n')) {
        if (line === 'start') max = Math.max(max, ++now);
        if (line === 'end') now--;
      }
      return max;
    };
    assert.equal(await maxInFlight(1), 1);
    assert.equal(await maxInFlight(3), 3);
  });

  it("a receive's commit does not hold its stream's place: the next stream starts, one stream at a time all the same", async () => {
    const gs = [guest(910, 3), guest(911, 3)];
    const log = join(lockDir, 'commits');
    writeFileSync(log, '');
    process.env.ZBM_TEST_SEND_LOG = log;
    process.env.ZBM_TEST_RECEIVE_LOG = log;
    try {
      const w = world(gs);
      const results = await backupGuests({ ...w.ctx, jobs: 1 }, gs, w.source, w.target);
      assert.ok(results.every((r) => r.result === 'ok'));
    } finally {
      delete process.env.ZBM_TEST_SEND_LOG;
      delete process.env.ZBM_TEST_RECEIVE_LOG;
    }
    let streams = 0;
    let maxStreams = 0;
    let committing = 0;
    let maxCommitting = 0;
    let startedDuringCommit = 0;
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      if (line === 'start') {
        maxStreams = Math.max(maxStreams, ++streams);
        if (committing > 0) startedDuringCommit++;
      }
      if (line === 'end') streams--;
      if (line === 'commit') maxCommitting = Math.max(maxCommitting, ++committing);
      if (line === 'committed') committing--;
    }
    assert.equal(maxStreams, 1, '--jobs 1: one stream at a time');
    assert.ok(startedDuringCommit >= 3, `streams started during a commit: ${startedDuringCommit}`);
    // Bounded all the same: one ssh connection carries them all.
    assert.ok(maxCommitting <= 4, `receives committing at once: ${maxCommitting}`);
  });

  it('a frozen guest gets its own snapshot call, the others share one', async () => {
    const gs = [guest(300, 2, true), guest(301, 1), guest(302, 1)];
    const w = world(gs);
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['ok', 'ok', 'ok'],
    );
    const snaps = w.local.calls.filter((c) => c.startsWith('snapshot '));
    assert.equal(snaps.length, 2);
    assert.ok(
      snaps.some(
        (c) => c.includes('vm-301-disk-0@') && c.includes('vm-302-disk-0@') && !c.includes('vm-300'),
      ),
    );
    assert.ok(
      snaps.some(
        (c) => c.includes('vm-300-disk-0@') && c.includes('vm-300-disk-1@') && !c.includes('vm-301'),
      ),
    );
    const qm = w.localHost.calls.filter((c) => c[0] === 'qm').map((c) => `${c[3]} ${c[4]}`);
    assert.deepEqual(
      qm.filter((c) => /ping|fsfreeze/.test(c)),
      ['300 ping', '300 fsfreeze-freeze', '300 fsfreeze-thaw'],
    );
    assert.equal(results[0]?.frozen, true);
  });

  it('a failed shared snapshot is retried guest by guest: only the faulty guest fails', async () => {
    const gs = [guest(400, 1), guest(401, 1), guest(402, 1)];
    const w = world(gs);
    w.local.failSnapshot = (names) => names.some((n) => n.includes('vm-401-'));
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['ok', 'failed', 'ok'],
    );
    assert.match(results[1]?.error ?? '', /injected/);
    assert.ok(w.logs.some((l) => /^error: guest 401 \(g401\): .*injected/.test(l)));
    assert.deepEqual(results[1]?.obsolete, []);
    assert.equal(results[0]?.obsolete.length, 1);
  });

  it('a guest held by another run is skipped with the holder named; the others go on', async () => {
    const gs = [guest(500, 1), guest(501, 1)];
    const w = world(gs);
    // Another zbm: a live process with zbm in its command line.
    const other = spawn('sh', ['-c', 'sleep 60', 'zbm-other-run'], { stdio: 'ignore' });
    writeFileSync(
      join(lockDir, lockFileName('guest-501')),
      JSON.stringify({ pid: other.pid, command: 'backup-pve of guest 501', since: 'earlier' }),
    );
    try {
      const results = await backupGuests(w.ctx, gs, w.source, w.target);
      assert.equal(results[0]?.result, 'ok');
      assert.equal(results[1]?.result, 'skipped');
      assert.match(results[1]?.error ?? '', /skipped: zbm pid \d+ \(backup-pve of guest 501/);
      assert.ok(!w.local.calls.some((c) => c.includes('vm-501-')), 'a held guest is never snapshotted');
    } finally {
      rmSync(join(lockDir, lockFileName('guest-501')), { force: true });
      other.kill();
    }
  });

  it('a guest Proxmox has locked (vzdump running) is skipped, never frozen nor snapshotted, and not locked by zbm; the others go on', async () => {
    const gs = [
      { ...guest(520, 2, true), lock: 'backup' },
      guest(521, 1),
      { ...guest(522, 1), lock: 'fstrim' },
    ];
    const w = world(gs);
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['skipped', 'ok', 'ok'],
    );
    assert.match(results[0]?.error ?? '', /locked by Proxmox \(lock: backup\).*retried on the next run/);
    assert.ok(!w.local.calls.some((c) => c.includes('vm-520-')), 'a locked guest is never snapshotted');
    assert.deepEqual(
      w.localHost.calls.filter((c) => c[0] === 'qm'),
      [],
      'a locked guest is never pinged nor frozen',
    );
    assert.deepEqual(results[0]?.obsolete, []);
    assert.ok(w.logs.some((l) => /^info: guest 522 .*lock: fstrim.*backed up all the same/.test(l)));
  });

  it('a lock that appears during the run is seen right before the snapshot and the freeze', async () => {
    const gs = [guest(530, 1), guest(531, 1, true), guest(532, 1)];
    const w = world(gs);
    const read: number[] = [];
    const locks = new Map([
      [530, 'snapshot'],
      [531, 'migrate'],
    ]);
    const results = await backupGuests(
      {
        ...w.ctx,
        currentLock: async (g) => {
          read.push(g.vmid);
          return locks.get(g.vmid) ?? null;
        },
      },
      gs,
      w.source,
      w.target,
    );
    assert.deepEqual(
      results.map((r) => r.result),
      ['skipped', 'skipped', 'ok'],
    );
    assert.match(results[0]?.error ?? '', /lock: snapshot/);
    assert.match(results[1]?.error ?? '', /lock: migrate/);
    assert.deepEqual(
      w.local.calls.filter((c) => c.startsWith('snapshot ')).map((c) => c.includes('vm-532-disk-0@')),
      [true],
    );
    assert.deepEqual(
      w.localHost.calls.filter((c) => c[0] === 'qm'),
      [],
    );
    // A config that cannot be read at that moment keeps the decision of the run's start.
    const w2 = world([guest(540, 1)]);
    const r2 = await backupGuests(
      {
        ...w2.ctx,
        currentLock: async () => {
          throw new Error('ENOENT');
        },
      },
      [guest(540, 1)],
      w2.source,
      w2.target,
    );
    assert.equal(r2[0]?.result, 'ok');
    assert.ok(read.includes(530) && read.includes(531) && read.includes(532));
  });

  it('holds that fail for the run are moved guest by guest: the faulty guest keeps its snapshots, the others are cleaned up', async () => {
    const gs = [guest(600, 1), guest(601, 1)];
    const w = world(gs);
    w.remote.failHold = (snaps) => snaps.some((s) => s.includes('vm-601-'));
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.equal(results[0]?.obsolete.length, 1);
    assert.deepEqual(results[1]?.obsolete, [], 'nothing destroyed without a protected base');
    assert.ok(
      w.logs.some((l) => /^error: guest 601 \(g601\): holding the new base snapshots on zbm-dest/.test(l)),
    );
    // The old base of 601 is still held on the backup server: never a moment without one.
    assert.ok(w.remote.holdsOf.get(`main/bak-zbm/vm-601-disk-0@${OLD}`)?.size);
  });

  it("the old bases' holds are looked up while the disks are sent; when that lookup went stale, each guest is looked up again", async () => {
    const gs = [guest(610, 1), guest(611, 1)];
    const w = world(gs);
    const old610 = `main/bak-zbm/vm-610-disk-0@${OLD}`;
    // Between the lookup and the move, something else releases the run's tag on 610's old base.
    let receivedBefore = -1;
    const lookup = w.remote.holds.bind(w.remote);
    w.remote.holds = async (snapshots) => {
      if (receivedBefore === -1) receivedBefore = w.remoteHost.calls.filter((c) => c[1] === 'receive').length;
      const found = await lookup(snapshots);
      w.remote.holdsOf.get(old610)?.clear();
      return found;
    };
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['ok', 'ok'],
    );
    assert.equal(receivedBefore, 0, 'the lookup is under way before the disks are sent');
    // The batch's release failed on the stale lookup; each guest was then looked up and moved alone.
    assert.equal(w.remote.count('holds'), 3);
    const held = (vmid: number) =>
      [...w.remote.holdsOf]
        .filter(([s, tags]) => s.includes(`vm-${vmid}-`) && tags.size > 0)
        .map(([s]) => s.split('@')[1]);
    assert.deepEqual(held(610), [results[0]?.snapshot]);
    assert.deepEqual(held(611), [results[1]?.snapshot]);
  });

  it("what an earlier zbm left on the node (its hold, its bookmark) goes; another tool's hold stays", async () => {
    const gs = [guest(700, 1), guest(701, 1)];
    const w = world(gs, { legacy: true });
    const results = await backupGuests(w.ctx, gs, w.source, w.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['ok', 'ok'],
      w.logs.join('\n'),
    );
    for (const g of gs) {
      const ds = g.disks[0]?.dataset ?? '';
      assert.deepEqual([...(w.local.holdsOf.get(`${ds}@${OLD}`) ?? [])], ['someone-else']);
      assert.ok(w.local.calls.includes(`destroy ${ds}#${OLD}`));
    }
    // One holds and one release for both guests on the node, whatever their number.
    assert.equal(w.local.count('holds'), 1);
    assert.equal(w.local.count('release'), 1);
    assert.equal(results[0]?.obsolete.length, 1);
  });

  it('writes all configs and manifests with one command; behind zbm serve, one file per command', async () => {
    const gs = [guest(800, 1), guest(801, 1)];
    const direct = world(gs);
    await backupGuests(direct.ctx, gs, direct.source, direct.target);
    const writes = (h: FakeHost) => h.calls.filter((c) => c[0] === 'sh');
    assert.equal(writes(direct.remoteHost).length, 1);
    const paths = writes(direct.remoteHost)[0]
      ?.slice(WRITE_FILES_ARGV.length + 1)
      .map((a) => a.replace(/^\d+:/, ''));
    assert.equal(paths?.length, 4);
    assert.ok(
      paths?.every((p) => /^\/root\/backups_metadata\/80[01]\/bak-zbm-\d{8}T\d{6}Z\.(conf|json)$/.test(p)),
    );

    const served = world(gs, { serve: true });
    const results = await backupGuests(served.ctx, gs, served.source, served.target);
    assert.deepEqual(
      results.map((r) => r.result),
      ['ok', 'ok'],
    );
    const w = writes(served.remoteHost);
    assert.equal(w.length, 1 + 4);
    assert.ok(
      w.slice(1).every((c) => c.length === WRITE_FILE_ARGV.length + 1 && c[2] === WRITE_FILE_ARGV[2]),
    );
  });
});

describe('backup-pve planning', () => {
  it('prepareGuest leaves out a missing disk with a warning, and skips a guest with none', () => {
    const g = guest(100, 2);
    const only0 = new Map([['rpool/data/vm-100-disk-0', dataset('rpool/data/vm-100-disk-0', [])]]);
    const p = prepareGuest(g, only0, 'main/bak', 'pve1');
    assert.ok('prepared' in p);
    assert.deepEqual(
      p.prepared.disks.map((d) => d.key),
      ['scsi0'],
    );
    assert.match(p.warnings[0] ?? '', /disk scsi1 .* does not exist on pve1/);
    const none = prepareGuest(g, new Map(), 'main/bak', 'pve1');
    assert.ok('result' in none && none.result === 'skipped');
  });

  it('snapshotBatches: one call per pool, a guest spanning pools on its own', () => {
    const p = (vmid: number, ...datasets: string[]): PreparedGuest => ({
      guest: guest(vmid, 0),
      disks: datasets.map((dataset, i) => ({
        key: `d${i}`,
        storage: 's',
        volname: dataset,
        dataset,
        value: '',
      })),
      targets: new Map(),
      template: null,
    });
    const batches = snapshotBatches([
      p(1, 'rpool/a'),
      p(2, 'tank/b'),
      p(3, 'rpool/c', 'rpool/d'),
      p(4, 'rpool/e', 'tank/f'),
    ]);
    assert.deepEqual(
      batches.map((b) => b.map((g) => g.guest.vmid)),
      [[1, 3], [2], [4]],
    );
  });
});

describe('what a backup leaves on the node and holds on the backup server', () => {
  const D = 'rpool/data/vm-100-disk-0';
  const T = 'main/bak-zbm/vm-100-disk-0';
  const z = (short: string, txg: number) => snap(D, `${PREFIX}${short}`, txg);
  const admin = (short: string, txg: number) => snap(D, short, txg);

  it('keeps the newest zbm snapshots and, before each admin snapshot, the newest zbm snapshot the server has', () => {
    const source = dataset(D, [
      z('20261101T000000Z', 1),
      z('20261102T000000Z', 2),
      admin('before-upgrade', 3),
      z('20261103T000000Z', 4),
      admin('__replicate_100-0_1700000000__', 5),
      admin('vzdump', 6),
      admin('__migration__', 7),
      z('20261104T000000Z', 8),
      admin('second-admin', 9),
      z('20261105T000000Z', 10),
    ]);
    const all = (...txgs: number[]) => new Set(txgs.map(String));
    const obsolete = (onServer: Set<string>, keep = 1) =>
      obsoleteSnapshots(source, `${PREFIX}20261105T000000Z`, PREFIX, keep, onServer).map(
        (n) => n.split('@')[1],
      );
    // Anchors: 20261102 (before before-upgrade) and 20261104 (before second-admin). Proxmox's own
    // snapshots anchor nothing: 20261103 goes.
    assert.deepEqual(obsolete(all(1, 2, 4, 8, 10)), [
      `${PREFIX}20261101T000000Z`,
      `${PREFIX}20261103T000000Z`,
    ]);
    // An anchor the backup server does not have is of no use: it goes too.
    assert.deepEqual(obsolete(all(1, 4, 8, 10)), [
      `${PREFIX}20261101T000000Z`,
      `${PREFIX}20261102T000000Z`,
      `${PREFIX}20261103T000000Z`,
    ]);
    // --keep-source 3 keeps the three newest besides.
    assert.deepEqual(obsolete(all(1, 2, 4, 8, 10), 3), [`${PREFIX}20261101T000000Z`]);
  });

  it('the server holds every snapshot the node keeps; the node keeps no hold and no bookmark', () => {
    const base = `${PREFIX}20261102T000000Z`;
    const fresh = `${PREFIX}20261103T000000Z`;
    const source = {
      ...dataset(D, [
        z('20261101T000000Z', 1),
        admin('before-upgrade', 2),
        z('20261102T000000Z', 3),
        z('20261103T000000Z', 4),
      ]),
      bookmarks: [mark(D, base, 3), mark(D, 'not-ours', 1)],
    };
    const before = dataset(T, [snap(T, `${PREFIX}20261101T000000Z`, 1), snap(T, base, 3, 1)]);
    const p = protection(
      source,
      T,
      before.snapshots,
      { common: { short: fresh, guid: '4', createtxg: 4, creation: 4 }, sent: [fresh] },
      PREFIX,
      1,
    );
    assert.deepEqual(p.obsolete, [`${D}@${base}`]);
    // The anchor (20261101, before before-upgrade) and the new base: held on the server.
    assert.deepEqual([...p.hold].sort(), [`${T}@${PREFIX}20261101T000000Z`, `${T}@${fresh}`]);
    assert.deepEqual(p.nodeBookmarks, [`${D}#${base}`]);
  });
});
