/**
 * `zbm prune` end to end against a fake `zfs` and a fake `ssh` on PATH: the command issues the
 * calls a real run would (one listing per host, one `zfs holds`, one destroy per dataset) and the
 * fakes answer from JSON state files. The real-ZFS version is test/integration/prune.test.ts.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { type PruneOptions, prune } from '../../../src/commands/prune.ts';
import { LocalHost } from '../../../src/host/local.ts';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../../../src/lock/lock.ts';

const FAKE_ZFS = String.raw`#!/usr/bin/env node
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
const file = process.env.FAKE_ZFS_STATE;
const state = JSON.parse(readFileSync(file, 'utf8'));
const args = process.argv.slice(2);
appendFileSync(process.env.FAKE_ZFS_LOG, JSON.stringify({ host: process.env.FAKE_HOST ?? 'local', args }) + '\n');
const fail = (msg, code = 1) => { process.stderr.write(msg + '\n'); process.exit(code); };
const save = () => writeFileSync(file, JSON.stringify(state));
const ds = state.datasets;
const snapOf = (full) => {
  const [d, s] = full.split('@');
  return ds[d]?.snapshots.find((x) => x.short === s) ? { d, s } : null;
};
const inherited = (name, prop) => {
  for (let n = name; n; n = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '') {
    const v = ds[n]?.props?.[prop];
    if (v !== undefined) return v;
  }
  return '-';
};
if (args[0] === 'list') {
  const o = args[args.indexOf('-o') + 1].split(',');
  const root = args.at(-1);
  if (!ds[root]) fail("cannot open '" + root + "': dataset does not exist");
  const rows = [];
  for (const name of Object.keys(ds).sort()) {
    if (name !== root && !name.startsWith(root + '/')) continue;
    const d = ds[name];
    const base = { name, type: d.type, guid: d.guid ?? '1', createtxg: '1', creation: '1', used: '0', referenced: '0', written: '0', encryption: 'off', userrefs: '-', receive_resume_token: '-' };
    rows.push(o.map((c) => base[c] ?? inherited(name, c)).join('\t'));
    for (const s of d.snapshots ?? []) {
      const userrefs = String((d.holds?.[s.short] ?? []).length);
      const row = { name: name + '@' + s.short, type: 'snapshot', guid: s.guid, createtxg: String(s.createtxg), creation: String(s.creation), used: '0', referenced: '0', written: '-', encryption: '-', userrefs, receive_resume_token: '-' };
      rows.push(o.map((c) => row[c] ?? '-').join('\t'));
    }
  }
  process.stdout.write(rows.map((r) => r + '\n').join(''));
} else if (args[0] === 'holds') {
  const names = args.filter((a) => a.includes('@'));
  for (const n of names) if (!snapOf(n)) fail("cannot open '" + n + "': dataset does not exist");
  for (const n of names) {
    const { d, s } = snapOf(n);
    for (const tag of ds[d].holds?.[s] ?? []) process.stdout.write(n + '\t' + tag + '\t1767225600\n');
  }
} else if (args[0] === 'destroy') {
  const [d, list] = args[1].split('@');
  if ((state.failDestroy ?? []).includes(d)) fail("cannot destroy snapshots in " + d + ": I/O error");
  // A hold taken by someone else between prune's listing and its destroy.
  for (const [full, tag] of Object.entries(state.holdBeforeDestroy ?? {})) {
    const { d: hd, s: hs } = snapOf(full);
    ds[hd].holds = { ...ds[hd].holds, [hs]: [...(ds[hd].holds?.[hs] ?? []), tag] };
  }
  state.holdBeforeDestroy = {};
  save();
  const shorts = list.split(',');
  for (const s of shorts) {
    if (!snapOf(d + '@' + s)) fail("could not find any snapshots to destroy; check snapshot names.");
    if ((ds[d].holds?.[s] ?? []).length > 0) fail("cannot destroy snapshot " + d + '@' + s + ": dataset is busy");
    if ((ds[d].clones?.[s] ?? []).length > 0) fail("cannot destroy '" + d + '@' + s + "': snapshot has dependent clones");
  }
  ds[d].snapshots = ds[d].snapshots.filter((x) => !shorts.includes(x.short));
  save();
} else if (args[0] === 'get' && args.includes('clones') && args.includes('-r')) {
  const root = args.at(-1);
  for (const name of Object.keys(ds).sort()) {
    if (name !== root && !name.startsWith(root + '/')) continue;
    process.stdout.write(name + '\tclones\t-\t-\n');
    for (const s of ds[name].snapshots ?? [])
      process.stdout.write(name + '@' + s.short + '\tclones\t' + (ds[name].clones?.[s.short] ?? []).join(',') + '\t-\n');
  }
} else {
  fail('fake zfs: unsupported ' + args.join(' '), 2);
}
`;

const FAKE_SSH = `#!/bin/sh
# fake ssh: [options] -- host command | -O exit
for a in "$@"; do [ "$a" = "-O" ] && exit 0; done
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
shift
host=$1
cmd=$2
case $host in
*.invalid) echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255 ;;
esac
FAKE_HOST=$host FAKE_ZFS_STATE=$FAKE_ZFS_REMOTE_STATE exec sh -c "$cmd"
`;

const work = mkdtempSync(join(tmpdir(), 'zbm-prune-cmd-'));
after(() => rmSync(work, { recursive: true, force: true }));
const bin = join(work, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'zfs'), FAKE_ZFS);
writeFileSync(join(bin, 'ssh'), FAKE_SSH);
chmodSync(join(bin, 'zfs'), 0o755);
chmodSync(join(bin, 'ssh'), 0o755);
process.env.PATH = `${bin}:${process.env.PATH ?? ''}`;
const localState = join(work, 'local.json');
const remoteState = join(work, 'remote.json');
const callLog = join(work, 'calls.log');
const meta = join(work, 'meta');
process.env.FAKE_ZFS_STATE = localState;
process.env.FAKE_ZFS_REMOTE_STATE = remoteState;
process.env.FAKE_ZFS_LOG = callLog;

const P = 'bak-zbm-';
const hour = (h: number) => `${P}20260101T${String(h).padStart(2, '0')}0000Z`;
const snap = (h: number, disk = 0) => ({
  short: hour(h),
  guid: `${disk}${100 + h}`,
  createtxg: 10 + h,
  creation: 1_767_225_600 + h * 3600,
});
const D0 = 'main/bak-zbm/vm-100-disk-0';
const D1 = 'main/bak-zbm/vm-100-disk-1';
const R0 = 'replica/bak-zbm/vm-100-disk-0';
const R1 = 'replica/bak-zbm/vm-100-disk-1';
const hours = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

interface FakeSnap {
  short: string;
  guid: string;
  createtxg: number;
  creation: number;
}
interface FakeDataset {
  type: string;
  props?: Record<string, string>;
  snapshots?: FakeSnap[];
  holds?: Record<string, string[]>;
  clones?: Record<string, string[]>;
}
interface FakeState {
  datasets: Record<string, FakeDataset>;
  failDestroy?: string[];
  holdBeforeDestroy?: Record<string, string>;
}

/**
 * Two disks of VM 100 with hourly snapshots 0..9 and a foreign one; the replica has 0..3 of
 * both; disk-0's hour 3 is held as the base with the replica, hour 1 is held by an admin.
 */
function setup(mutate: (local: FakeState, remote: FakeState) => void = () => {}): void {
  const disk0 = [
    ...hours(0, 5).map((h) => snap(h)),
    { ...snap(0), short: 'manual-1', guid: '999', createtxg: 16 },
  ];
  disk0.push(...hours(6, 9).map((h) => snap(h)));
  const local: FakeState = {
    datasets: {
      'main/bak-zbm': { type: 'filesystem', props: { 'zbm:metadata-dir': meta } },
      [D0]: {
        type: 'volume',
        snapshots: disk0,
        holds: { [hour(3)]: ['zbm-base:zbm-dest:zbm-replica'], [hour(1)]: ['admin'] },
      },
      [D1]: { type: 'volume', snapshots: hours(0, 9).map((h) => snap(h, 1)) },
    },
  };
  const remote: FakeState = {
    datasets: {
      replica: { type: 'filesystem' },
      'replica/bak-zbm': { type: 'filesystem' },
      [R0]: { type: 'volume', snapshots: hours(0, 3).map((h) => snap(h)) },
      [R1]: { type: 'volume', snapshots: hours(0, 3).map((h) => snap(h, 1)) },
    },
  };
  mutate(local, remote);
  writeFileSync(localState, JSON.stringify(local));
  writeFileSync(remoteState, JSON.stringify(remote));
  writeFileSync(callLog, '');
  rmSync(meta, { recursive: true, force: true });
  mkdirSync(join(meta, '100'), { recursive: true });
  for (const h of hours(0, 9)) {
    writeFileSync(join(meta, '100', `${hour(h)}.conf`), 'cores: 1\n');
    writeFileSync(join(meta, '100', `${hour(h)}.json`), '{}\n');
  }
}

const snapsOf = (state: string, ds: string): string[] =>
  ((JSON.parse(readFileSync(state, 'utf8')) as FakeState).datasets[ds]?.snapshots ?? []).map((s) => s.short);

const calls = (): { host: string; args: string[] }[] =>
  readFileSync(callLog, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { host: string; args: string[] });

async function runPrune(extra: Partial<PruneOptions> = {}, timeZone = 'UTC') {
  const out: string[] = [];
  const err: string[] = [];
  const log = createLogger({ write: (l) => err.push(l), journal: false });
  const code = await prune(
    {
      localZfsRoot: 'main/bak-zbm',
      prefix: P,
      keepLast: 2,
      keepHourly: 2,
      remote: 'zbm-replica',
      remoteZfsRoot: 'replica/bak-zbm',
      yes: true,
      lockWait: DEFAULT_LOCK_WAIT_SECONDS,
      ...extra,
    },
    log,
    { out: (s) => out.push(s), local: new LocalHost('zbm-dest'), timeZone, confirm: undefined },
  );
  return { code, out: out.join(''), err: err.join('') };
}

const names = (...hs: (number | string)[]) => hs.map((h) => (typeof h === 'number' ? hour(h) : h));

describe('zbm prune (fake zfs and ssh)', () => {
  beforeEach(() => setup());

  it('the original command: rules, then never the common base, the unreplicated or the held', async () => {
    const r = await runPrune();
    assert.equal(r.code, 0, r.err);
    // Rules keep 9, 8 (last) and 7, 6 (hourly). disk-0: 3 is the newest common (and held), 4 and
    // 5 are not on the replica yet, 1 is held: only 0 and 2 go. disk-1: 0, 1, 2 go.
    assert.deepEqual(snapsOf(localState, D0), names(1, 3, 4, 5, 'manual-1', 6, 7, 8, 9));
    assert.deepEqual(snapsOf(localState, D1), names(3, 4, 5, 6, 7, 8, 9));
    // The replica is only read.
    assert.deepEqual(snapsOf(remoteState, R0), names(0, 1, 2, 3));

    const c = calls();
    const verbs = c.map((x) => `${x.host} ${x.args[0]}`);
    assert.deepEqual(verbs.filter((v) => v.endsWith('list')).sort(), ['local list', 'zbm-replica list']);
    // Only the snapshots whose userrefs say they are held are asked for their tags.
    assert.deepEqual(
      c.filter((x) => x.args[0] === 'holds').map((x) => [x.host, ...x.args.slice(3)]),
      [['local', `${D0}@${hour(1)}`, `${D0}@${hour(3)}`]],
    );
    assert.deepEqual(
      c.filter((x) => x.args[0] === 'destroy').map((x) => x.args.slice(1)),
      [[`${D0}@${hour(0)},${hour(2)}`], [`${D1}@${hour(0)},${hour(1)},${hour(2)}`]],
    );

    assert.match(r.out, new RegExp(`${D0}: destroyed 2: ${hour(0)}, ${hour(2)}; kept 8`));
    assert.match(r.out, new RegExp(`kept ${hour(1)}: held by admin`));
    assert.match(
      r.out,
      new RegExp(`kept ${hour(3)}: newest common with zbm-replica; held by zbm-base:zbm-dest:zbm-replica`),
    );
    assert.match(r.out, new RegExp(`kept ${hour(4)}, ${hour(5)}: not yet on zbm-replica`));

    // Hour 1 still exists on disk-0: its config stays; 0 and 2 are gone from every disk of VM 100.
    const left = readdirSync(join(meta, '100'));
    assert.equal(left.length, 16);
    for (const h of [0, 2]) assert.equal(left.includes(`${hour(h)}.conf`), false);
    assert.equal(left.includes(`${hour(1)}.json`), true);
  });

  it('is idempotent: the second run destroys nothing', async () => {
    assert.equal((await runPrune()).code, 0);
    writeFileSync(callLog, '');
    const again = await runPrune();
    assert.equal(again.code, 0, again.err);
    assert.deepEqual(
      calls().filter((x) => x.args[0] === 'destroy'),
      [],
    );
    assert.match(again.out, /destroyed nothing/);
  });

  it('without -y: prints every snapshot with its verdict and destroys nothing', async () => {
    const r = await runPrune({ yes: false });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      calls().filter((x) => x.args[0] === 'destroy'),
      [],
    );
    assert.deepEqual(snapsOf(localState, D0).length, 11);
    assert.match(
      r.out,
      /prune plan for zbm-dest:main\/bak-zbm \(keep-last 2, keep-hourly 2; periods in UTC; next tier zbm-replica:replica\/bak-zbm\)/,
    );
    assert.match(r.out, new RegExp(`${D0}: keep 8, destroy 2, 1 foreign untouched`));
    // Each snapshot with the local time its periods are counted in, and the period that kept it.
    assert.match(r.out, new RegExp(`  ${hour(0)}  2026-01-01 00:00:00 UTC  destroy  no rule keeps it`));
    assert.match(
      r.out,
      new RegExp(`  ${hour(9)}  2026-01-01 09:00:00 UTC  keep     keep-last; not yet on zbm-replica`),
    );
    assert.match(
      r.out,
      new RegExp(`  ${hour(7)}  2026-01-01 07:00:00 UTC  keep     keep-hourly 2026-01-01 07h`),
    );
    assert.match(r.out, /manual-1 +2026-01-01 00:00:00 UTC {2}foreign {2}not a zbm snapshot/);
    assert.match(r.err, /run with -y to destroy the 5 snapshot\(s\)/);
    assert.equal(readdirSync(join(meta, '100')).length, 20);
  });

  it('names the zone as TZ gives it, and shows each snapshot in its local time, in the plan and the JSON', async () => {
    const tz = ':/usr/share/zoneinfo/Asia/Kolkata';
    const r = await runPrune({ yes: false }, tz);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /periods in :\/usr\/share\/zoneinfo\/Asia\/Kolkata \(Asia\/Kolkata\);/);
    assert.match(
      r.out,
      new RegExp(`  ${hour(7)}  2026-01-01 12:30:00 IST  keep     keep-hourly 2026-01-01 12h`),
    );
    const j = await runPrune({ json: true }, tz);
    const report = JSON.parse(j.out) as {
      timeZone: string;
      datasets: { snapshots: { snapshot: string; localTime: string }[] }[];
    };
    assert.equal(report.timeZone, ':/usr/share/zoneinfo/Asia/Kolkata (Asia/Kolkata)');
    assert.deepEqual(
      report.datasets[0]?.snapshots.find((x) => x.snapshot === hour(9)),
      {
        snapshot: hour(9),
        localTime: '2026-01-01 14:30:00 IST',
        action: 'keep',
        why: 'keep-last; not yet on zbm-replica',
      },
    );
  });

  it('asks on a terminal, and destroys only after a yes', async () => {
    const out: string[] = [];
    const questions: string[] = [];
    const log = createLogger({ write: () => {}, journal: false });
    const opts: PruneOptions = {
      localZfsRoot: 'main/bak-zbm',
      prefix: P,
      keepLast: 2,
      lockWait: DEFAULT_LOCK_WAIT_SECONDS,
    };
    const io = { out: (s: string) => out.push(s), timeZone: 'UTC' };
    const no = async (q: string) => {
      questions.push(q);
      return false;
    };
    assert.equal(await prune(opts, log, { ...io, confirm: no }), 0);
    assert.equal(snapsOf(localState, D1).length, 10);
    assert.equal(await prune(opts, log, { ...io, confirm: async () => true }), 0);
    assert.deepEqual(snapsOf(localState, D1), names(8, 9));
    assert.match(questions[0] ?? '', /Destroy the 14 snapshot\(s\)/);
  });

  it('--dry-run with -y destroys nothing', async () => {
    const r = await runPrune({ dryRun: true });
    assert.equal(r.code, 0);
    assert.equal(snapsOf(localState, D1).length, 10);
  });

  it('--json: the plan and the result as data on stdout', async () => {
    const r = await runPrune({ json: true });
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out) as {
      mode: string;
      remote: { reachable: boolean };
      datasets: {
        dataset: string;
        destroyed: string[];
        kept: { snapshot: string; why: string }[];
        foreign: string[];
      }[];
      metadata: { removed: string[] };
    };
    assert.equal(report.mode, 'destroy');
    assert.equal(report.remote.reachable, true);
    const d0 = report.datasets.find((d) => d.dataset === D0);
    assert.deepEqual(d0?.destroyed, names(0, 2));
    assert.deepEqual(d0?.foreign, ['manual-1']);
    assert.equal(d0?.kept.find((k) => k.snapshot === hour(1))?.why, 'held by admin');
    assert.equal(report.metadata.removed.length, 4);

    setup();
    const plan = JSON.parse((await runPrune({ json: true, yes: false })).out) as typeof report;
    assert.equal(plan.mode, 'dry-run');
    assert.deepEqual(plan.datasets.find((d) => d.dataset === D0)?.destroyed, []);
  });

  it('remote unreachable: protects from the last base held for it, prunes the rest, exits 1', async () => {
    setup((local) => {
      const d0 = local.datasets[D0] as FakeDataset;
      d0.holds = { [hour(3)]: ['zbm-base:zbm-dest:backup2.invalid'], [hour(1)]: ['admin'] };
    });
    const r = await runPrune({ remote: 'backup2.invalid' });
    assert.equal(r.code, 1);
    assert.match(r.err, /backup2\.invalid is unreachable/);
    assert.match(r.err, /Could not resolve hostname/);
    // disk-0: 3 (the held base) and newer stay, 1 is held. disk-1 has no base: everything stays.
    assert.deepEqual(snapsOf(localState, D0), names(1, 3, 4, 5, 'manual-1', 6, 7, 8, 9));
    assert.equal(snapsOf(localState, D1).length, 10);
  });

  it('the remote has no copy of a dataset: all of it is kept, and said so', async () => {
    setup((_, remote) => {
      remote.datasets = Object.fromEntries(Object.entries(remote.datasets).filter(([k]) => k !== R1));
    });
    const r = await runPrune({ yes: false });
    assert.match(r.out, /zbm-replica:replica\/bak-zbm\/vm-100-disk-1 does not exist/);
    assert.match(r.out, new RegExp(`${D1}: keep 10, destroy 0`));
  });

  it('a hold taken after the listing: kept and reported, never a "dataset is busy" failure', async () => {
    setup((local) => {
      local.holdBeforeDestroy = { [`${D1}@${hour(1)}`]: 'zbm-base:pve1:zbm-dest' };
    });
    const r = await runPrune();
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(snapsOf(localState, D1), names(1, 3, 4, 5, 6, 7, 8, 9));
    assert.match(r.out, new RegExp(`kept ${hour(1)}: held by zbm-base:pve1:zbm-dest`));
  });

  it('a snapshot with a clone is kept and said why; the rest of the dataset is still pruned', async () => {
    setup((local) => {
      const d1 = local.datasets[D1];
      if (d1) d1.clones = { [hour(1)]: ['main/restore-test'] };
    });
    const r = await runPrune();
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(snapsOf(localState, D1), names(1, 3, 4, 5, 6, 7, 8, 9));
    assert.match(r.out, new RegExp(`kept ${hour(1)}: has clones \\(main/restore-test\\)`));
  });

  it('a disk with a later chain: the rules count over both chains, each chain keeps its own safety', async () => {
    // disk-1 went on in a later chain from hour 6 on, cloned from its hour 5; the replica has
    // hours 0..3 of the first chain and 6, 7 of the later one.
    const L1 = `${D1}.${hour(6)}`;
    const RL1 = `${R1}.${hour(6)}`;
    setup((local, remote) => {
      local.datasets[D1] = {
        type: 'volume',
        snapshots: hours(0, 5).map((h) => snap(h, 1)),
        clones: { [hour(5)]: [L1] },
      };
      // Received before the first chain's snapshots (lower createtxg): the names order them.
      local.datasets[L1] = {
        type: 'volume',
        snapshots: hours(6, 9).map((h) => ({ ...snap(h, 2), createtxg: h })),
      };
      remote.datasets[RL1] = { type: 'volume', snapshots: hours(6, 7).map((h) => snap(h, 2)) };
    });
    const plan = await runPrune({ yes: false });
    assert.equal(plan.code, 0, plan.err);
    assert.match(
      plan.out,
      new RegExp(`${D1}: keep 3, destroy 3\n  \\(chain 1 of 2 of ${D1}: the keep rules count`),
    );
    assert.match(plan.out, new RegExp(`${L1}: keep 4, destroy 0\n  \\(chain 2 of 2 of ${D1}: `));

    const r = await runPrune({ json: true });
    assert.equal(r.code, 0, r.err);
    // The rules keep 9, 8 (last) and 7, 6 (hourly), all in the later chain; per dataset they
    // would have kept 2 as well. 3 is the newest common with the replica, 4 and 5 are not on it
    // yet, and 5 is the later chain's origin.
    assert.deepEqual(snapsOf(localState, D1), names(3, 4, 5));
    assert.deepEqual(snapsOf(localState, L1), names(6, 7, 8, 9));
    assert.deepEqual(snapsOf(localState, D0), names(1, 3, 4, 5, 'manual-1', 6, 7, 8, 9));
    const report = JSON.parse(r.out) as {
      datasets: {
        dataset: string;
        destroyed: string[];
        kept: { snapshot: string; why: string; reasons: { kind: string; laterChain?: boolean }[] }[];
        family: { primary: string; chain: number; chains: number; datasets: string[] } | null;
      }[];
    };
    const d1 = report.datasets.find((d) => d.dataset === D1);
    assert.deepEqual(d1?.destroyed, names(0, 1, 2));
    assert.deepEqual(d1?.family, { primary: D1, chain: 1, chains: 2, datasets: [D1, L1] });
    assert.deepEqual(
      d1?.kept.find((k) => k.snapshot === hour(5))?.reasons.map((x) => [x.kind, x.laterChain]),
      [
        ['not-replicated', undefined],
        ['clones', true],
      ],
    );
    assert.deepEqual(report.datasets.find((d) => d.dataset === L1)?.family?.chain, 2);
    assert.equal(report.datasets.find((d) => d.dataset === D0)?.family, null);
  });

  it('a chain all of whose snapshots go stays as a dataset, and the result says so', async () => {
    const L1 = `${D1}.${hour(6)}`;
    setup((local) => {
      local.datasets[D1] = { type: 'volume', snapshots: hours(0, 5).map((h) => snap(h, 1)) };
      local.datasets[L1] = { type: 'volume', snapshots: hours(6, 9).map((h) => snap(h, 2)) };
    });
    // The replica: no next tier, so only the rules decide.
    const r = await runPrune({ remote: undefined, remoteZfsRoot: undefined });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(snapsOf(localState, D1), []);
    assert.ok((JSON.parse(readFileSync(localState, 'utf8')) as FakeState).datasets[D1], 'the dataset stays');
    assert.match(
      r.out,
      new RegExp(
        `${D1}: destroyed 6: .*; kept 0\n  \\(chain 1 of 2 of ${D1}: .*\\)\n  \\(no zbm snapshot of ${D1} is left: .*the dataset itself stays`,
      ),
    );
    assert.deepEqual(
      calls().filter((x) => x.args[0] === 'destroy' && x.args[1]?.startsWith(`${L1}@`)),
      [],
    );
  });

  it('snapshots received with names out of order or for the future take no slot and destroy nothing more', async () => {
    const future = `${P}20991225T000000Z`;
    const older = `${P}20251231T000000Z`;
    setup((local) => {
      const d1 = local.datasets[D1];
      d1?.snapshots?.push(
        { short: future, guid: '7771', createtxg: 100, creation: 1_767_225_600 },
        { short: older, guid: '7772', createtxg: 101, creation: 1_767_225_600 },
      );
    });
    const r = await runPrune({ json: true });
    assert.equal(r.code, 0, r.err);
    // As without them: hours 0, 1 and 2 of disk-1 go, the rules keep 9, 8, 7, 6.
    assert.deepEqual(snapsOf(localState, D1), [...names(3, 4, 5, 6, 7, 8, 9), future, older]);
    assert.match(
      r.err,
      new RegExp(
        `warning: zbm-dest:${D1}@${future} is an anomaly: named for 2099-12-25T00:00:00Z, in the future`,
      ),
    );
    assert.match(
      r.err,
      new RegExp(`${D1}@${older} is an anomaly: named for 2025-12-31T00:00:00Z, earlier than ${hour(9)}`),
    );
    const report = JSON.parse(r.out) as {
      datasets: {
        dataset: string;
        anomalies: { snapshot: string }[];
        kept: { snapshot: string; why: string }[];
      }[];
    };
    const d1 = report.datasets.find((d) => d.dataset === D1);
    assert.deepEqual(
      d1?.anomalies.map((a) => a.snapshot),
      [future, older],
    );
    assert.match(d1?.kept.find((k) => k.snapshot === future)?.why ?? '', /^ANOMALY: /);
    // The configs go as they would have: 0 and 2 are gone from every disk of VM 100.
    assert.equal(readdirSync(join(meta, '100')).length, 16);
  });

  it('a dataset that fails does not stop the others; the run exits 1', async () => {
    setup((local) => {
      local.failDestroy = [D0];
    });
    const r = await runPrune();
    assert.equal(r.code, 1);
    assert.match(r.err, /destroying old snapshots of main\/bak-zbm\/vm-100-disk-0: .*I\/O error/);
    assert.deepEqual(snapsOf(localState, D1), names(3, 4, 5, 6, 7, 8, 9));
    // Hour 0 and 2 remain on disk-0: their configs stay.
    assert.equal(readdirSync(join(meta, '100')).length, 20);
  });

  it('--local-metadata-dir (or its earlier spelling --metadata-dir) wins over the root property, and says so', async () => {
    const other = join(work, 'other-meta');
    const fill = () => {
      rmSync(other, { recursive: true, force: true });
      mkdirSync(join(other, '100'), { recursive: true });
      for (const h of hours(0, 9)) {
        writeFileSync(join(other, '100', `${hour(h)}.conf`), 'cores: 1\n');
        writeFileSync(join(other, '100', `${hour(h)}.json`), '{}\n');
      }
    };
    for (const given of [{ localMetadataDir: other }, { metadataDir: other }]) {
      setup();
      fill();
      const r = await runPrune(given);
      assert.equal(r.code, 0, r.err);
      assert.match(
        r.err,
        new RegExp(`warning: main/bak-zbm has zbm:metadata-dir=${meta}; using --local-metadata-dir ${other}`),
      );
      // Hours 0 and 2 are gone from every disk: their files go from the given directory only.
      assert.deepEqual(
        readdirSync(join(other, '100')).sort(),
        hours(3, 9)
          .concat([1])
          .sort((a, b) => a - b)
          .flatMap((h) => [`${hour(h)}.conf`, `${hour(h)}.json`]),
      );
      assert.equal(readdirSync(join(meta, '100')).length, 20);
    }
    await assert.rejects(
      runPrune({ localMetadataDir: other, metadataDir: meta }),
      /--metadata-dir is the earlier spelling of the same option: give one of them/,
    );
  });

  it('a missing --local-zfs-root is an error; --remote needs --remote-zfs-root', async () => {
    assert.equal((await runPrune({ localZfsRoot: 'main/nothing' })).code, 1);
    await assert.rejects(runPrune({ remoteZfsRoot: undefined }), /--remote needs --remote-zfs-root/);
  });
});
