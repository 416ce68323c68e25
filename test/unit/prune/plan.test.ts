import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chainDataset, isBaseTagFor, snapshotTime } from '../../../src/conventions/names.ts';
import {
  type Anomaly,
  chainPlaces,
  type DatasetInfo,
  type DatasetPlan,
  familyRetention,
  orderAnomalies,
  type PlanInput,
  planDataset,
  type RemoteFacts,
  retentionByDataset,
  retentionFor,
  type SnapInfo,
} from '../../../src/prune/plan.ts';
import { type KeepRules, RULE_ORDER } from '../../../src/prune/retention.ts';

const PREFIX = 'bak-zbm-';
const DS = 'main/bak-zbm/vm-100-disk-0';

/** zbm's snapshot name for an hour of 2026-01-01 (UTC). */
const zbmName = (hour: number) => `${PREFIX}20260101T${String(hour).padStart(2, '0')}0000Z`;

/** Snapshots oldest first; a number is zbm's snapshot of that hour, a string a foreign one. */
function dataset(...items: (number | string)[]): DatasetInfo {
  const snapshots: SnapInfo[] = items.map((it, i) => {
    const short = typeof it === 'number' ? zbmName(it) : it;
    return { short, guid: `guid-${short}`, createtxg: 100 + i, creation: 1_767_225_600 + i * 3600 };
  });
  return { name: DS, snapshots };
}

function plan(
  ds: DatasetInfo,
  rules: KeepRules,
  opts: { holds?: Record<string, string[]>; remote?: RemoteFacts } = {},
): DatasetPlan {
  const input: PlanInput = {
    dataset: ds,
    prefix: PREFIX,
    retention: retentionFor(ds, PREFIX, rules, 'UTC'),
    holds: new Map(Object.entries(opts.holds ?? {})),
    remote: opts.remote,
  };
  return planDataset(input);
}

const listed = (snaps: readonly SnapInfo[] | null): RemoteFacts => ({
  kind: 'listed',
  remote: 'zbm-replica',
  dataset: `replica/bak-zbm/vm-100-disk-0`,
  snapshots: snaps,
});

const why = (p: DatasetPlan) => Object.fromEntries(p.keep.map((k) => [k.short, k.why]));

describe('planDataset', () => {
  it('without safety facts, destroys exactly what the rules remove and never a foreign snapshot', () => {
    const ds = dataset(0, 'manual-1', 1, 2, 3);
    const p = plan(ds, { last: 2 });
    assert.deepEqual(p.destroy, [zbmName(0), zbmName(1)]);
    assert.deepEqual(why(p), { [zbmName(2)]: 'keep-last', [zbmName(3)]: 'keep-last' });
    assert.deepEqual(p.foreign, ['manual-1']);
    assert.deepEqual(
      p.verdicts.map((v) => [v.short, v.action]),
      [
        [zbmName(0), 'destroy'],
        ['manual-1', 'foreign'],
        [zbmName(1), 'destroy'],
        [zbmName(2), 'keep'],
        [zbmName(3), 'keep'],
      ],
    );
  });

  it('never destroys the newest common snapshot with the remote, nor anything newer (not yet replicated)', () => {
    const ds = dataset(0, 1, 2, 3, 4, 5);
    const remote = listed((ds.snapshots as SnapInfo[]).slice(0, 3)); // 0, 1, 2 are there
    const p = plan(ds, { last: 1 }, { remote });
    assert.deepEqual(p.destroy, [zbmName(0), zbmName(1)]);
    assert.deepEqual(why(p), {
      [zbmName(2)]: 'newest common with zbm-replica',
      [zbmName(3)]: 'not yet on zbm-replica',
      [zbmName(4)]: 'not yet on zbm-replica',
      [zbmName(5)]: 'keep-last; not yet on zbm-replica',
    });
    assert.match(p.notes.join('\n'), /newest common with zbm-replica:replica\/bak-zbm\/vm-100-disk-0 is /);
    assert.match(p.notes.join('\n'), /3 newer snapshot\(s\) not yet on zbm-replica/);
  });

  it('matches by guid: a reused name with another guid on the remote is not common', () => {
    const ds = dataset(0, 1, 2, 3);
    const [s0, s1, s2] = ds.snapshots as SnapInfo[];
    assert.ok(s0 && s1 && s2);
    const remote = listed([s0, s1, { ...s2, guid: 'rebuilt-target' }]);
    const p = plan(ds, { last: 1 }, { remote });
    assert.deepEqual(p.destroy, [zbmName(0)]);
    assert.equal(why(p)[zbmName(1)], 'newest common with zbm-replica');
    assert.equal(why(p)[zbmName(2)], 'not yet on zbm-replica');
  });

  it('keeps everything, and says so, when the remote has no copy of the dataset', () => {
    const p = plan(dataset(0, 1, 2), { last: 1 }, { remote: listed(null) });
    assert.deepEqual(p.destroy, []);
    assert.equal(p.keep.length, 3);
    assert.equal(why(p)[zbmName(0)], 'zbm-replica has no copy of this dataset');
    assert.match(p.notes[0] ?? '', /replica\/bak-zbm\/vm-100-disk-0 does not exist/);
  });

  it('keeps everything when the remote copy shares no snapshot (nothing of it is replicated)', () => {
    const p = plan(
      dataset(0, 1, 2),
      { last: 1 },
      { remote: listed([{ ...(dataset(0).snapshots[0] as SnapInfo), guid: 'x' }]) },
    );
    assert.deepEqual(p.destroy, []);
    assert.equal(why(p)[zbmName(0)], 'no snapshot in common with zbm-replica');
    assert.match(p.notes[0] ?? '', /no snapshot in common/);
  });

  it('leaves held snapshots out of the destroy list and reports their tags', () => {
    const ds = dataset(0, 1, 2, 3);
    const p = plan(
      ds,
      { last: 1 },
      { holds: { [zbmName(1)]: ['zbm-base:pve1:zbm-dest', 'keep'], [zbmName(3)]: ['x'] } },
    );
    assert.deepEqual(p.destroy, [zbmName(0), zbmName(2)]);
    assert.deepEqual(why(p), {
      [zbmName(1)]: 'held by zbm-base:pve1:zbm-dest, keep',
      [zbmName(3)]: 'keep-last; held by x',
    });
    const held = p.keep.find((k) => k.short === zbmName(1));
    assert.deepEqual(held?.reasons, [{ kind: 'held', tags: ['zbm-base:pve1:zbm-dest', 'keep'] }]);
  });

  it('remote unreachable: protects from the newest snapshot held as base for that remote on', () => {
    const ds = dataset(0, 1, 2, 3, 4, 5);
    const holds = {
      [zbmName(1)]: ['zbm-base:zbm-dest:zbm-replica'],
      // The base with the PVE node is newer but names another target: it does not count here.
      [zbmName(4)]: ['zbm-base:pve1:zbm-dest'],
    };
    const remote: RemoteFacts = { kind: 'unreachable', remote: 'zbm-replica', error: 'ssh: timeout' };
    const p = plan(ds, { last: 1 }, { holds, remote });
    assert.deepEqual(p.destroy, [zbmName(0)]);
    assert.deepEqual(why(p), {
      [zbmName(1)]: 'last base held for zbm-replica (unreachable); held by zbm-base:zbm-dest:zbm-replica',
      [zbmName(2)]: `newer than ${zbmName(1)}, the last base held for zbm-replica (unreachable)`,
      [zbmName(3)]: `newer than ${zbmName(1)}, the last base held for zbm-replica (unreachable)`,
      [zbmName(4)]:
        `newer than ${zbmName(1)}, the last base held for zbm-replica (unreachable); held by zbm-base:pve1:zbm-dest`,
      [zbmName(5)]: `keep-last; newer than ${zbmName(1)}, the last base held for zbm-replica (unreachable)`,
    });
    assert.match(p.notes[0] ?? '', /zbm-replica is unreachable/);
  });

  it('remote unreachable and no base held for it: keeps every zbm snapshot', () => {
    const remote: RemoteFacts = { kind: 'unreachable', remote: 'zbm-replica', error: 'x' };
    const p = plan(
      dataset(0, 1, 'manual', 2),
      { last: 1 },
      { holds: { [zbmName(0)]: ['zbm-base:pve1:zbm-dest'] }, remote },
    );
    assert.deepEqual(p.destroy, []);
    assert.equal(why(p)[zbmName(1)], 'zbm-replica unreachable and no base held for it');
    assert.deepEqual(p.foreign, ['manual']);
  });

  it('no rules: keeps everything', () => {
    const p = plan(dataset(0, 1, 2), {});
    assert.deepEqual(p.destroy, []);
    assert.equal(why(p)[zbmName(0)], 'no keep rule given');
  });

  it('recognises base hold tags by their target only', () => {
    assert.equal(isBaseTagFor('zbm-base:zbm-dest:zbm-replica', 'zbm-replica'), true);
    assert.equal(isBaseTagFor('zbm-base:pve1:zbm-dest', 'zbm-replica'), false);
    assert.equal(isBaseTagFor('zbm-base:zbm-replica', 'zbm-replica'), false);
    assert.equal(isBaseTagFor('other:zbm-dest:zbm-replica', 'zbm-replica'), false);
    assert.equal(isBaseTagFor('zbm-base:a:root@zbm-replica', 'zbm-replica'), false);
  });
});

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Scenario {
  ds: DatasetInfo;
  rules: KeepRules;
  holds: Record<string, string[]>;
  remote: RemoteFacts | undefined;
}

const fmt = (t: number) =>
  new Date(t * 1000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

function scenario(rand: () => number): Scenario {
  const n = Math.floor(rand() * 60);
  let t = 1_700_000_000;
  const snapshots: SnapInfo[] = [];
  for (let i = 0; i < n; i++) {
    t += [600, 3600, 86_400, 7 * 86_400][Math.floor(rand() * 4)] ?? 3600;
    const foreign = rand() < 0.1;
    const short = foreign ? `manual-${i}` : `${PREFIX}${fmt(t)}`;
    snapshots.push({ short, guid: `g${i}`, createtxg: 10 + i, creation: t });
  }
  const ds = { name: DS, snapshots };
  const rules: Record<string, number> = {};
  for (const r of RULE_ORDER) if (rand() < 0.4) rules[r] = Math.floor(rand() * 5);
  const holds: Record<string, string[]> = {};
  const tags = ['zbm-base:pve1:zbm-dest', 'zbm-base:zbm-dest:zbm-replica', 'admin'];
  for (const s of snapshots) {
    if (rand() < 0.1) holds[s.short] = [tags[Math.floor(rand() * tags.length)] ?? 'admin'];
  }
  let remote: RemoteFacts | undefined;
  const kind = rand();
  if (kind < 0.2) remote = undefined;
  else if (kind < 0.3) remote = listed(null);
  else if (kind < 0.45) remote = { kind: 'unreachable', remote: 'zbm-replica', error: 'down' };
  else {
    // The replica has a prefix of the history (it lags), pruned by its own rules, and maybe a
    // rebuilt snapshot with a reused name.
    const upTo = Math.floor(rand() * (n + 1));
    const there = snapshots.slice(0, upTo).filter(() => rand() < 0.6);
    if (rand() < 0.2 && snapshots[upTo]) there.push({ ...snapshots[upTo], guid: 'reused-name' });
    remote = listed(there);
  }
  return { ds, rules, holds, remote };
}

function lastIndex<T>(list: readonly T[], test: (x: T) => boolean): number {
  for (let i = list.length - 1; i >= 0; i--) if (test(list[i] as T)) return i;
  return -1;
}

function run(s: Scenario): DatasetPlan {
  return plan(s.ds, s.rules, { holds: s.holds, remote: s.remote });
}

describe('planDataset: property tests (random histories, rules, holds and remotes)', () => {
  it('never destroys a foreign, held, common-base, not-yet-replicated or unreachable-protected snapshot', () => {
    const rand = rng(424242);
    for (let round = 0; round < 1500; round++) {
      const s = scenario(rand);
      const p = run(s);
      const destroyed = new Set(p.destroy);
      const label = `round ${round}`;
      const ours = s.ds.snapshots.filter((x) => x.short.startsWith(PREFIX));
      for (const x of s.ds.snapshots) {
        if (!x.short.startsWith(PREFIX)) assert.equal(destroyed.has(x.short), false, `${label}: foreign`);
        if (s.holds[x.short]) assert.equal(destroyed.has(x.short), false, `${label}: held ${x.short}`);
      }
      if (s.remote?.kind === 'listed') {
        const there = new Set((s.remote.snapshots ?? []).map((x) => x.guid));
        const common = lastIndex(ours, (x) => there.has(x.guid));
        // The common base and everything after it survive; with no common, everything does.
        for (const x of ours.slice(Math.max(common, 0))) {
          assert.equal(destroyed.has(x.short), false, `${label}: ${x.short} is needed by the replica`);
        }
        if (common < 0) assert.deepEqual(p.destroy, [], label);
      }
      if (s.remote?.kind === 'unreachable') {
        const base = lastIndex(ours, (x) =>
          (s.holds[x.short] ?? []).some((t) => isBaseTagFor(t, 'zbm-replica')),
        );
        for (const x of ours.slice(Math.max(base, 0))) {
          assert.equal(destroyed.has(x.short), false, `${label}: ${x.short} protected while unreachable`);
        }
        if (base < 0) assert.deepEqual(p.destroy, [], label);
      }
      // Whatever a rule keeps is kept; keep and destroy split zbm's snapshots exactly.
      for (const k of retentionFor(s.ds, PREFIX, s.rules, 'UTC').keep) {
        assert.equal(destroyed.has(k.name), false, `${label}: ${k.name} kept by ${k.rule}`);
      }
      assert.deepEqual(
        [...p.keep.map((k) => k.short), ...p.destroy].sort(),
        ours.map((x) => x.short).sort(),
        label,
      );
      for (const k of p.keep) assert.ok(k.why.length > 0 && k.reasons.length > 0, label);
    }
  });

  it('is idempotent: a second plan over what the first one left destroys nothing', () => {
    const rand = rng(31337);
    for (let round = 0; round < 1500; round++) {
      const s = scenario(rand);
      const first = run(s);
      const gone = new Set(first.destroy);
      const after: Scenario = {
        ...s,
        ds: { ...s.ds, snapshots: s.ds.snapshots.filter((x) => !gone.has(x.short)) },
      };
      const second = run(after);
      assert.deepEqual(second.destroy, [], `round ${round}`);
      assert.deepEqual(
        second.keep.map((k) => [k.short, k.why]),
        first.keep.map((k) => [k.short, k.why]),
        `round ${round}`,
      );
    }
  });
});

describe('planDataset: the pool orders, not the names', () => {
  const NOW = Date.parse('2026-03-01T12:00:00Z') / 1000;
  const day = (d: number) =>
    `${PREFIX}${new Date(Date.UTC(2026, 0, 1) + d * 86_400_000)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}`;
  /** Snapshots with the given names, received in this order (createtxg). */
  const received = (names: readonly string[]): DatasetInfo => ({
    name: DS,
    snapshots: names.map((short, i) => ({
      short,
      guid: `g-${short}`,
      createtxg: 100 + i,
      creation: Math.min(NOW, 1_767_225_600 + i * 86_400),
    })),
  });
  const planned = (ds: DatasetInfo, rules: KeepRules) => {
    const anomalies = orderAnomalies(ds, PREFIX, NOW, 300);
    return planDataset({
      dataset: ds,
      prefix: PREFIX,
      retention: retentionFor(ds, PREFIX, rules, 'UTC', anomalies),
      holds: new Map(),
      anomalies,
    });
  };
  const RULES: KeepRules = { daily: 7, weekly: 4, monthly: 6 };
  const real = Array.from({ length: 60 }, (_, d) => day(d));
  const fakes = [
    `${PREFIX}20991225T000000Z`,
    `${PREFIX}20991226T000000Z`,
    `${PREFIX}20991218T000000Z`,
    `${PREFIX}20991101T000000Z`,
    `${PREFIX}20990101T000000Z`,
  ];

  it('future-dated names received after the real ones destroy nothing the rules would keep without them', () => {
    const honest = planned(received(real), RULES);
    const attacked = planned(received([...real, ...fakes]), RULES);
    assert.deepEqual(attacked.destroy, honest.destroy);
    assert.ok(honest.destroy.length > 0 && honest.keep.length > 0);
    assert.deepEqual(
      attacked.anomalies.map((a) => a.short),
      fakes,
    );
    for (const f of fakes) {
      assert.equal(attacked.verdicts.find((v) => v.short === f)?.action, 'keep');
      assert.match(
        why(attacked)[f] ?? '',
        /^ANOMALY: named for 2099-.*, in the future \(this host's clock says 2026-03-01T12:00:00Z\)/,
      );
    }
  });

  it('a name older than one received before it is an anomaly that takes no slot (keep-last counts by createtxg)', () => {
    const ds = received([day(0), day(1), day(2), day(-30)]);
    const p = planned(ds, { last: 2 });
    assert.deepEqual(p.anomalies, [
      {
        short: day(-30),
        why: `named for 2025-12-02T00:00:00Z, earlier than ${day(2)}, which this pool received before it (createtxg)`,
      },
    ]);
    assert.deepEqual(p.destroy, [day(0)]);
    assert.equal(why(p)[day(2)], 'keep-last');
    assert.equal(why(p)[day(1)], 'keep-last');
  });

  it('orders by createtxg whatever order the listing comes in, and a future creation is an anomaly too', () => {
    const ds = received([day(0), day(1), day(2)]);
    const shuffled: DatasetInfo = { name: DS, snapshots: [...ds.snapshots].reverse() };
    assert.deepEqual(planned(shuffled, { last: 1 }).destroy, [day(0), day(1)].reverse().sort());
    const late: DatasetInfo = {
      name: DS,
      snapshots: ds.snapshots.map((s, i) => (i === 1 ? { ...s, creation: NOW + 3600 } : s)),
    };
    assert.match(
      orderAnomalies(late, PREFIX, NOW, 300)[0]?.why ?? '',
      /^created 2026-03-01T13:00:00Z, its stream says, in the future/,
    );
  });

  it('finds no anomaly in an honest history, foreign snapshots and a clock a little ahead included', () => {
    const ds = received([day(0), 'manual-before-upgrade', day(1), day(59)]);
    assert.deepEqual(orderAnomalies(ds, PREFIX, NOW, 300), []);
    const ahead = received([day(0), `${PREFIX}20260301T120400Z`]);
    assert.deepEqual(orderAnomalies(ahead, PREFIX, NOW, 300), []);
    // Names without a time fall back to creation: two made in the same second are in order.
    const sameSecond: DatasetInfo = {
      name: DS,
      snapshots: ['a', 'b'].map((x, i) => ({
        short: `${PREFIX}${x}`,
        guid: x,
        createtxg: i,
        creation: NOW - 60,
      })),
    };
    assert.deepEqual(orderAnomalies(sameSecond, PREFIX, NOW, 300), []);
  });
});

describe('a disk with later chains: the rules count over the family, safety stays per dataset', () => {
  const NOW = Date.parse('2026-03-01T12:00:00Z') / 1000;
  /** zbm's snapshot name for 2026-01-01 at h:m (UTC). */
  const at = (h: number, m = 0) =>
    `${PREFIX}20260101T${String(h).padStart(2, '0')}${String(m).padStart(2, '0')}00Z`;
  /** A dataset whose snapshots this pool received in the given order, from createtxg txg on. */
  const chain = (name: string, shorts: readonly string[], txg: number): DatasetInfo => ({
    name,
    snapshots: shorts.map((short, i) => ({
      short,
      guid: `${name}@${short}`,
      createtxg: txg + i,
      creation: snapshotTime(short, PREFIX, 1_767_225_600),
    })),
  });
  interface Facts {
    holds?: Record<string, Record<string, string[]>>;
    clones?: Record<string, Record<string, string[]>>;
    remote?: (ds: DatasetInfo) => RemoteFacts | undefined;
  }
  /** What run.ts planAll does, over plain data: anomalies per dataset, rules per family. */
  function planAll(
    datasets: readonly DatasetInfo[],
    rules: KeepRules,
    f: Facts = {},
  ): Map<string, DatasetPlan> {
    const anomalies = new Map<string, Anomaly[]>(
      datasets.map((d) => [d.name, orderAnomalies(d, PREFIX, NOW, 300)]),
    );
    const retention = retentionByDataset(datasets, PREFIX, rules, 'UTC', anomalies);
    const places = chainPlaces(datasets, PREFIX);
    const out = new Map<string, DatasetPlan>();
    for (const d of datasets) {
      const r = retention.get(d.name);
      assert.ok(r, `no retention for ${d.name}`);
      const family = places.get(d.name);
      out.set(
        d.name,
        planDataset({
          dataset: d,
          prefix: PREFIX,
          retention: r,
          holds: new Map(Object.entries(f.holds?.[d.name] ?? {})),
          clones: new Map(Object.entries(f.clones?.[d.name] ?? {})),
          remote: f.remote?.(d),
          anomalies: anomalies.get(d.name) ?? [],
          ...(family === undefined ? {} : { family }),
        }),
      );
    }
    return out;
  }
  const get = (plans: Map<string, DatasetPlan>, name: string): DatasetPlan => {
    const p = plans.get(name);
    assert.ok(p, name);
    return p;
  };

  const [a, b, c, d, e] = [at(0), at(1), at(2), at(3), at(4)];
  const LATER = chainDataset(DS, d);
  // The later chain reached this pool first (lower createtxg): across datasets the names order.
  const primary = chain(DS, [a, b, c], 500);
  const later = chain(LATER, [d, e], 200);

  it('keep-last 2 over primary {a,b,c} and later chain {d,e}: keeps d, e, and c only as the clone origin', () => {
    const plans = planAll([primary, later], { last: 2 }, { clones: { [DS]: { [c]: [LATER] } } });
    const p = get(plans, DS);
    const l = get(plans, LATER);
    assert.deepEqual(p.destroy, [a, b]);
    assert.deepEqual(why(p), {
      [c]: `has clones (${LATER}): the origin of a later chain of this disk, kept as long as that chain exists`,
    });
    assert.deepEqual(why(l), { [d]: 'keep-last', [e]: 'keep-last' });
    assert.deepEqual(l.destroy, []);
    assert.deepEqual([...p.anomalies, ...l.anomalies], []);
    assert.deepEqual(p.family, { primary: DS, chain: 1, chains: 2, datasets: [DS, LATER] });
    assert.deepEqual(l.family, { primary: DS, chain: 2, chains: 2, datasets: [DS, LATER] });
    assert.match(p.notes[0] ?? '', new RegExp(`^chain 1 of 2 of ${DS}: the keep rules count`));
    assert.match(l.notes[0] ?? '', new RegExp(`^chain 2 of 2 of ${DS}: `));
    // c is kept only for safety, so the primary is not emptied.
    assert.equal(p.notes.length, 1);
  });

  it('a chain left without a snapshot stays as a dataset, and its plan says so', () => {
    const plans = planAll([primary, later], { last: 2 });
    const p = get(plans, DS);
    assert.deepEqual(p.destroy, [a, b, c]);
    assert.deepEqual(p.keep, []);
    assert.match(
      p.notes.join('\n'),
      new RegExp(
        `no zbm snapshot of ${DS} is left: .*the dataset itself stays \\(prune never destroys a dataset\\)`,
      ),
    );
    assert.deepEqual(get(plans, LATER).destroy, []);
  });

  it('a clone that is no chain of the disk keeps the usual advice', () => {
    const plans = planAll(
      [primary, later],
      { last: 2 },
      { clones: { [DS]: { [b]: ['main/restore/pick-files'] } } },
    );
    assert.equal(
      why(get(plans, DS))[b],
      'has clones (main/restore/pick-files): destroy or promote them to let it go',
    );
  });

  it('hourly slots are filled across chains: the newest snapshot of each hour, in whichever chain it is', () => {
    const first = chain(DS, [at(0, 0), at(0, 30), at(1, 0), at(1, 30)], 100);
    const laterName = chainDataset(DS, at(1, 45));
    const second = chain(laterName, [at(1, 45), at(2, 0), at(2, 15)], 300);
    const plans = planAll([first, second], { hourly: 3 });
    assert.deepEqual(why(get(plans, DS)), { [at(0, 30)]: 'keep-hourly 2026-01-01 00h' });
    assert.deepEqual(get(plans, DS).destroy, [at(0, 0), at(1, 0), at(1, 30)]);
    assert.deepEqual(why(get(plans, laterName)), {
      [at(1, 45)]: 'keep-hourly 2026-01-01 01h',
      [at(2, 15)]: 'keep-hourly 2026-01-01 02h',
    });
    assert.deepEqual(get(plans, laterName).destroy, [at(2, 0)]);
  });

  it('three chains: the slots go to the newest restore points of the disk, the middle chain may give all it has', () => {
    const c2 = chainDataset(DS, at(5));
    const c3 = chainDataset(DS, at(8));
    const plans = planAll(
      [chain(c3, [at(8), at(9)], 900), chain(DS, [at(0), at(1)], 100), chain(c2, [at(5), at(6)], 500)],
      { last: 3 },
    );
    assert.deepEqual(get(plans, DS).destroy, [at(0), at(1)]);
    assert.deepEqual(why(get(plans, c2)), { [at(6)]: 'keep-last' });
    assert.deepEqual(why(get(plans, c3)), { [at(8)]: 'keep-last', [at(9)]: 'keep-last' });
    assert.match(get(plans, c2).notes[0] ?? '', new RegExp(`^chain 2 of 3 of ${DS}`));
    assert.match(get(plans, c3).notes[0] ?? '', new RegExp(`^chain 3 of 3 of ${DS}`));
  });

  it('every safety rule stays per dataset: newest common, not yet replicated, no remote copy, held', () => {
    const remote = (ds: DatasetInfo): RemoteFacts =>
      ds.name === DS
        ? listed((ds.snapshots as SnapInfo[]).slice(0, 2)) // a, b are on the replica
        : { kind: 'listed', remote: 'zbm-replica', dataset: `replica/${ds.name}`, snapshots: null };
    const plans = planAll([primary, later], { last: 2 }, { remote, holds: { [DS]: { [a]: ['admin'] } } });
    assert.deepEqual(why(get(plans, DS)), {
      [a]: 'held by admin',
      [b]: 'newest common with zbm-replica',
      [c]: 'not yet on zbm-replica',
    });
    assert.deepEqual(get(plans, DS).destroy, []);
    assert.deepEqual(why(get(plans, LATER)), {
      [d]: 'keep-last; zbm-replica has no copy of this dataset',
      [e]: 'keep-last; zbm-replica has no copy of this dataset',
    });
  });

  it('anomalies are found per dataset: a chain received before an older one is none, a name out of its own chain order is', () => {
    const odd = chain(LATER, [d, e, at(3, 30)], 200);
    const plans = planAll([primary, odd], { last: 2 });
    assert.deepEqual(get(plans, DS).anomalies, []);
    assert.deepEqual(
      get(plans, LATER).anomalies.map((x) => x.short),
      [at(3, 30)],
    );
    // The anomaly takes no slot: d and e are still the two newest restore points.
    assert.deepEqual(get(plans, DS).destroy, [a, b, c]);
    assert.match(why(get(plans, LATER))[at(3, 30)] ?? '', /^ANOMALY: /);
    assert.equal(why(get(plans, LATER))[d], 'keep-last');
  });

  it('a dataset named like a chain of another prefix is its own family, with its own slots', () => {
    const other = `${DS}.other-20260101T030000Z`;
    const plans = planAll([primary, chain(other, [d, e], 200)], { last: 2 });
    assert.deepEqual(get(plans, DS).destroy, [a]);
    assert.deepEqual(get(plans, other).destroy, []);
    assert.equal(get(plans, DS).family, undefined);
    assert.equal(get(plans, other).family, undefined);
    assert.deepEqual(get(plans, DS).notes, []);
  });

  it('a later chain whose first chain is gone from this host says so', () => {
    const c2 = chainDataset(DS, at(5));
    const c3 = chainDataset(DS, at(8));
    const plans = planAll([chain(c2, [at(5)], 1), chain(c3, [at(8)], 2)], { last: 1 });
    assert.match(
      get(plans, c2).notes[0] ?? '',
      new RegExp(`^chain 1 of 2 of ${DS} \\(its first chain is gone from this host\\)`),
    );
    assert.deepEqual(get(plans, c2).destroy, [at(5)]);
  });

  it('random histories: one chain is planned exactly as before; a family keeps the newest N of its union', () => {
    const rand = rng(8080);
    for (let round = 0; round < 500; round++) {
      const s = scenario(rand);
      const anomalies = orderAnomalies(s.ds, PREFIX, NOW, 300);
      assert.deepEqual(
        familyRetention([{ dataset: s.ds, anomalies }], PREFIX, s.rules, 'UTC'),
        [retentionFor(s.ds, PREFIX, s.rules, 'UTC', anomalies)],
        `round ${round}`,
      );
      assert.deepEqual(
        planAll([s.ds], s.rules, { holds: { [DS]: s.holds }, remote: () => s.remote }).get(DS),
        run(s),
        `round ${round}`,
      );

      // Split the history at random points into chains named after their first snapshot.
      const ours = s.ds.snapshots.filter((x) => x.short.startsWith(PREFIX));
      const cuts = ours.filter((_, i) => i > 0 && rand() < 0.1);
      const chains: DatasetInfo[] = [];
      let current: SnapInfo[] = [];
      let name = DS;
      for (const x of ours) {
        if (cuts.includes(x)) {
          chains.push({ name, snapshots: current });
          current = [];
          name = chainDataset(DS, x.short);
        }
        current.push(x);
      }
      chains.push({ name, snapshots: current });
      const n = 1 + Math.floor(rand() * 5);
      const plans = planAll(chains, { last: n });
      const newest = ours.slice(-n).map((x) => x.short);
      const kept = chains.flatMap((ch) => get(plans, ch.name).keep.map((k) => k.short));
      const destroyed = chains.flatMap((ch) => get(plans, ch.name).destroy);
      assert.deepEqual(kept.sort(), [...newest].sort(), `round ${round}`);
      assert.equal(kept.length + destroyed.length, ours.length, `round ${round}`);
      for (const ch of chains) {
        const p = get(plans, ch.name);
        assert.equal(p.family === undefined, chains.length === 1, `round ${round}`);
      }
    }
  });
});
