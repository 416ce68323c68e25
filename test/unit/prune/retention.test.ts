import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { snapshotTime } from '../../../src/conventions/names.ts';
import {
  type KeepRules,
  planRetention,
  RULE_ORDER,
  type RuleName,
  type Timed,
} from '../../../src/prune/retention.ts';

/** A backup at an ISO instant, named after it so that assertions read as times. */
const at = (iso: string): Timed => ({ name: iso, time: Date.parse(iso) / 1000 });
const history = (...isos: string[]): Timed[] => isos.map(at);

function kept(r: ReturnType<typeof planRetention>): [string, string][] {
  return r.keep.map((k) => [k.name, k.rule]);
}

describe('planRetention: Proxmox semantics case by case', () => {
  it('keep-last keeps the n newest, whatever order they come in', () => {
    const snaps = history(
      '2026-01-03T00:00:00Z',
      '2026-01-01T00:00:00Z',
      '2026-01-05T00:00:00Z',
      '2026-01-02T00:00:00Z',
      '2026-01-04T00:00:00Z',
    );
    const r = planRetention(snaps, { last: 2 }, 'UTC');
    assert.deepEqual(kept(r), [
      ['2026-01-05T00:00:00Z', 'last'],
      ['2026-01-04T00:00:00Z', 'last'],
    ]);
    assert.deepEqual(r.remove, ['2026-01-03T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-01T00:00:00Z']);
  });

  it('keep-hourly keeps the newest backup of each hour; hours without backups do not count', () => {
    const snaps = history(
      '2026-01-01T07:30:00Z',
      '2026-01-01T10:05:00Z',
      '2026-01-01T10:35:00Z',
      '2026-01-01T11:05:00Z',
      '2026-01-01T11:20:00Z',
      '2026-01-01T11:50:00Z',
      '2026-01-01T12:10:00Z',
    );
    const r = planRetention(snaps, { hourly: 3 }, 'UTC');
    // 09:00 and 08:00 have no backup: the third hour is 10:00, and 07:30 is beyond it.
    assert.deepEqual(kept(r), [
      ['2026-01-01T12:10:00Z', 'hourly'],
      ['2026-01-01T11:50:00Z', 'hourly'],
      ['2026-01-01T10:35:00Z', 'hourly'],
    ]);
    assert.deepEqual(r.remove, [
      '2026-01-01T11:20:00Z',
      '2026-01-01T11:05:00Z',
      '2026-01-01T10:05:00Z',
      '2026-01-01T07:30:00Z',
    ]);
  });

  it('a period already holding a backup kept by keep-last takes no hourly slot', () => {
    const snaps = history(
      '2026-01-01T10:30:00Z',
      '2026-01-01T11:30:00Z',
      '2026-01-01T12:00:00Z',
      '2026-01-01T12:20:00Z',
      '2026-01-01T12:40:00Z',
    );
    const r = planRetention(snaps, { last: 1, hourly: 2 }, 'UTC');
    // 12:00-12:59 is covered by keep-last: hourly takes 11:00 and 10:00, and the older 12 o'clock
    // backups stay unmarked by it (so removed).
    assert.deepEqual(kept(r), [
      ['2026-01-01T12:40:00Z', 'last'],
      ['2026-01-01T11:30:00Z', 'hourly'],
      ['2026-01-01T10:30:00Z', 'hourly'],
    ]);
    assert.deepEqual(r.remove, ['2026-01-01T12:20:00Z', '2026-01-01T12:00:00Z']);
  });

  it('a backup removed by one rule is not looked at by the later ones (week across a month end)', () => {
    // Fri 2025-01-31 and Sat 2025-02-01 are in the same ISO week (2025-W05) but not the same month.
    const snaps = history('2025-01-15T12:00:00Z', '2025-01-31T12:00:00Z', '2025-02-01T12:00:00Z');
    const r = planRetention(snaps, { weekly: 1, monthly: 2 }, 'UTC');
    // keep-weekly keeps Feb 1 and marks Jan 31 removed (same week); keep-monthly skips Jan 31 and
    // takes January with Jan 15.
    assert.deepEqual(kept(r), [
      ['2025-02-01T12:00:00Z', 'weekly'],
      ['2025-01-15T12:00:00Z', 'monthly'],
    ]);
    assert.deepEqual(r.remove, ['2025-01-31T12:00:00Z']);
  });

  it('daily periods follow local midnight across the spring DST change (Europe/Berlin)', () => {
    // Local: Sat 29 23:30 CET, Sun 30 00:30 CET, Sun 30 23:30 CEST, Mon 31 00:30 CEST.
    const snaps = history(
      '2025-03-29T22:30:00Z',
      '2025-03-29T23:30:00Z',
      '2025-03-30T21:30:00Z',
      '2025-03-30T22:30:00Z',
    );
    const berlin = planRetention(snaps, { daily: 3 }, 'Europe/Berlin');
    assert.deepEqual(kept(berlin), [
      ['2025-03-30T22:30:00Z', 'daily'],
      ['2025-03-30T21:30:00Z', 'daily'],
      ['2025-03-29T22:30:00Z', 'daily'],
    ]);
    assert.deepEqual(berlin.remove, ['2025-03-29T23:30:00Z']);
    // The same history in UTC has other days: the time zone really is applied.
    const utc = planRetention(snaps, { daily: 3 }, 'UTC');
    assert.deepEqual(utc.remove, ['2025-03-30T21:30:00Z', '2025-03-29T22:30:00Z']);
  });

  it('the repeated hour of the autumn DST change is one hourly period (Europe/Berlin)', () => {
    // Local: 01:30 CEST, 02:30 CEST, 02:30 CET (the hour repeats), 03:30 CET.
    const snaps = history(
      '2025-10-25T23:30:00Z',
      '2025-10-26T00:30:00Z',
      '2025-10-26T01:30:00Z',
      '2025-10-26T02:30:00Z',
    );
    const r = planRetention(snaps, { hourly: 3 }, 'Europe/Berlin');
    assert.deepEqual(kept(r), [
      ['2025-10-26T02:30:00Z', 'hourly'],
      ['2025-10-26T01:30:00Z', 'hourly'],
      ['2025-10-25T23:30:00Z', 'hourly'],
    ]);
    assert.deepEqual(r.remove, ['2025-10-26T00:30:00Z']);
  });

  it('weeks are ISO weeks of the ISO week-year: 2026-W53 runs into January 2027', () => {
    const snaps = history(
      '2026-12-27T12:00:00Z', // Sun, 2026-W52
      '2026-12-28T12:00:00Z', // Mon, 2026-W53
      '2027-01-03T12:00:00Z', // Sun, 2026-W53
      '2027-01-04T12:00:00Z', // Mon, 2027-W01
    );
    const weekly = planRetention(snaps, { weekly: 3 }, 'UTC');
    assert.deepEqual(kept(weekly), [
      ['2027-01-04T12:00:00Z', 'weekly'],
      ['2027-01-03T12:00:00Z', 'weekly'],
      ['2026-12-27T12:00:00Z', 'weekly'],
    ]);
    assert.deepEqual(weekly.remove, ['2026-12-28T12:00:00Z']);
    // Years are calendar years (%Y), not week-years.
    const yearly = planRetention(snaps, { yearly: 2 }, 'UTC');
    assert.deepEqual(kept(yearly), [
      ['2027-01-04T12:00:00Z', 'yearly'],
      ['2026-12-28T12:00:00Z', 'yearly'],
    ]);
  });

  it('week 1 can start in the previous December (2024-12-30 is 2025-W01)', () => {
    const snaps = history('2024-12-29T12:00:00Z', '2024-12-30T12:00:00Z', '2025-01-05T12:00:00Z');
    const r = planRetention(snaps, { weekly: 5 }, 'UTC');
    assert.deepEqual(kept(r), [
      ['2025-01-05T12:00:00Z', 'weekly'],
      ['2024-12-29T12:00:00Z', 'weekly'],
    ]);
    assert.deepEqual(r.remove, ['2024-12-30T12:00:00Z']);
  });

  it('keeps everything when no rule is set, or every rule is 0', () => {
    const snaps = history('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z');
    for (const rules of [{}, { last: 0, hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 }]) {
      const r = planRetention(snaps, rules, 'UTC');
      assert.deepEqual(kept(r), [
        ['2026-01-02T00:00:00Z', 'no-rules'],
        ['2026-01-01T00:00:00Z', 'no-rules'],
      ]);
      assert.deepEqual(r.remove, []);
    }
  });

  it('a rule set to 0 next to others is simply off', () => {
    const snaps = history('2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', '2026-01-03T00:00:00Z');
    const r = planRetention(snaps, { last: 0, daily: 1 }, 'UTC');
    assert.deepEqual(kept(r), [['2026-01-03T00:00:00Z', 'daily']]);
  });

  it('an empty history keeps and removes nothing', () => {
    assert.deepEqual(planRetention([], { last: 3 }, 'UTC'), { keep: [], remove: [] });
  });

  it('equal times: the later one in the input counts as newer', () => {
    const snaps = [
      { name: 'a', time: 1000 },
      { name: 'b', time: 1000 },
    ];
    assert.deepEqual(kept(planRetention(snaps, { last: 1 }, 'UTC')), [['b', 'last']]);
  });

  it('PBS docs example: keep-last 3, daily 13, weekly 8, monthly 11, yearly 9 over ten years of daily backups', () => {
    const snaps: Timed[] = [];
    const start = Date.UTC(2016, 0, 1, 3) / 1000;
    const end = Date.UTC(2025, 11, 31, 3) / 1000;
    for (let t = start; t <= end; t += 86_400) snaps.push({ name: String(t), time: t });
    const r = planRetention(snaps, { last: 3, daily: 13, weekly: 8, monthly: 11, yearly: 9 }, 'UTC');
    const count = (rule: RuleName) => r.keep.filter((k) => k.rule === rule).length;
    assert.equal(count('last'), 3);
    assert.equal(count('daily'), 13);
    assert.equal(count('weekly'), 8);
    assert.equal(count('monthly'), 11);
    // The 11 months reach back into 2024, so 2025 and 2024 are covered: yearly takes 2023-2016.
    assert.equal(count('yearly'), 8);
    // The oldest kept backup is the end of 2016: the rules cover about ten years.
    const oldest = Math.min(...r.keep.map((k) => Number(k.name)));
    assert.equal(new Date(oldest * 1000).toISOString(), '2016-12-31T03:00:00.000Z');
  });

  it('a year of hourly backups with --keep-daily 30 --keep-monthly 12', () => {
    const snaps = hourlyYear(2025);
    assert.equal(snaps.length, 8760);
    const r = planRetention(snaps, { daily: 30, monthly: 12 }, 'UTC');
    const daily = r.keep.filter((k) => k.rule === 'daily').map((k) => k.name);
    const monthly = r.keep.filter((k) => k.rule === 'monthly').map((k) => k.name);
    // The newest of each of the 30 newest days (Dec 2-31), then December is already covered,
    // so monthly takes the last hour of November back to January: 11 months, all there is.
    assert.equal(daily.length, 30);
    assert.equal(daily[0], '2025-12-31T23:00:00.000Z');
    assert.equal(daily[29], '2025-12-02T23:00:00.000Z');
    assert.deepEqual(
      monthly,
      [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1].map((m) => new Date(Date.UTC(2025, m, 0, 23)).toISOString()),
    );
    assert.equal(r.keep.length + r.remove.length, 8760);
  });

  it("a year of hourly backups with the replica's rules (last 5, hourly 24, daily 30, monthly 12)", () => {
    const r = planRetention(hourlyYear(2025), { last: 5, hourly: 24, daily: 30, monthly: 12 }, 'UTC');
    const count = (rule: RuleName) => r.keep.filter((k) => k.rule === rule).length;
    // last: Dec 31 19-23h; hourly: Dec 31 0-18h and Dec 30 19-23h; daily: Dec 29 back to Nov 30
    // (Dec 30 and 31 are covered); monthly: Oct back to Jan (Dec and Nov are covered).
    assert.deepEqual(
      RULE_ORDER.map((rule) => count(rule)),
      [5, 24, 30, 0, 10, 0],
    );
    assert.equal(r.keep.length, 69);
    const byRule = (rule: RuleName) => r.keep.filter((k) => k.rule === rule).map((k) => k.name);
    assert.equal(byRule('hourly').at(-1), '2025-12-30T19:00:00.000Z');
    assert.equal(byRule('daily').at(-1), '2025-11-30T23:00:00.000Z');
    assert.equal(byRule('monthly').at(-1), '2025-01-31T23:00:00.000Z');
  });

  it('the same year in Europe/Berlin follows local days and months', () => {
    const r = planRetention(hourlyYear(2025), { daily: 30, monthly: 12 }, 'Europe/Berlin');
    const daily = r.keep.filter((k) => k.rule === 'daily').map((k) => k.name);
    const monthly = r.keep.filter((k) => k.rule === 'monthly').map((k) => k.name);
    // 2025-12-31T23:00Z is already 2026-01-01 00:00 in Berlin: a day (and month) of its own.
    assert.equal(daily[0], '2025-12-31T23:00:00.000Z');
    assert.equal(daily[1], '2025-12-31T22:00:00.000Z');
    assert.equal(daily.length, 30);
    // Local month ends are 22:00Z in winter and 21:00Z in summer (CEST).
    assert.equal(monthly[0], '2025-11-30T22:00:00.000Z');
    assert.equal(monthly.includes('2025-07-31T21:00:00.000Z'), true);
    // January 2026 (local) and December are covered by daily: November back to January.
    assert.equal(monthly.at(-1), '2025-01-31T22:00:00.000Z');
    assert.equal(monthly.length, 11);
  });
});

function hourlyYear(year: number): Timed[] {
  const snaps: Timed[] = [];
  const start = Date.UTC(year, 0, 1) / 1000;
  const end = Date.UTC(year + 1, 0, 1) / 1000;
  for (let t = start; t < end; t += 3600) snaps.push({ name: new Date(t * 1000).toISOString(), time: t });
  return snaps;
}

describe('snapshotTime', () => {
  it('reads the UTC timestamp zbm puts in the name', () => {
    assert.equal(
      snapshotTime('bak-zbm-20261126T110503Z', 'bak-zbm-', 5),
      Date.UTC(2026, 10, 26, 11, 5, 3) / 1000,
    );
  });

  it('falls back to creation for other names and impossible dates', () => {
    assert.equal(snapshotTime('bak-zbm-manual', 'bak-zbm-', 42), 42);
    assert.equal(snapshotTime('bak-zbm-20260230T000000Z', 'bak-zbm-', 42), 42);
    assert.equal(snapshotTime('bak-zbm-20260101T250000Z', 'bak-zbm-', 42), 42);
    assert.equal(snapshotTime('other-20260101T000000Z', 'bak-zbm-', 42), 42);
    assert.equal(snapshotTime('bak-zbm-20260101T000000Z.1', 'bak-zbm-', 42), 42);
  });
});

/**
 * The PBS algorithm written as plainly as possible, with strftime-like string keys from
 * Intl.DateTimeFormat and a separate ISO-week computation: the fast planner must agree with it.
 */
function reference(snaps: readonly Timed[], rules: KeepRules, tz: string): Map<string, string> {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
  });
  const parts = (t: number) => {
    const p = Object.fromEntries(
      fmt
        .formatToParts(new Date(t * 1000))
        .filter((x) => x.type !== 'literal')
        .map((x) => [x.type, x.value]),
    );
    const y = Number(p.year);
    const m = Number(p.month);
    const d = Number(p.day);
    const date = new Date(Date.UTC(y, m - 1, d));
    const dayNum = date.getUTCDay() || 7;
    date.setUTCDate(date.getUTCDate() + 4 - dayNum);
    const weekYear = date.getUTCFullYear();
    const week = Math.ceil(((date.getTime() - Date.UTC(weekYear, 0, 1)) / 86_400_000 + 1) / 7);
    return {
      hourly: `${p.year}/${p.month}/${p.day}/${p.hour}`,
      daily: `${p.year}/${p.month}/${p.day}`,
      weekly: `${weekYear}/${week}`,
      monthly: `${p.year}/${p.month}`,
      yearly: `${p.year}`,
    };
  };
  const list = snaps
    .map((s, i) => ({ ...s, i }))
    .sort((a, b) => b.time - a.time || b.i - a.i)
    .map((s) => ({ ...s, keys: parts(s.time) }));
  const mark = new Map<string, string>();
  const any = RULE_ORDER.some((r) => (rules[r] ?? 0) > 0);
  if (!any) return new Map(list.map((s) => [s.name, 'no-rules']));
  for (const rule of RULE_ORDER) {
    const keep = rules[rule];
    if (keep === undefined) continue;
    const id = (s: (typeof list)[number]) => (rule === 'last' ? `#${s.name}` : s.keys[rule]);
    const already = new Set(list.filter((s) => mark.get(s.name)?.startsWith('keep')).map(id));
    const included = new Set<string>();
    for (const s of list) {
      if (mark.has(s.name)) continue;
      const k = id(s);
      if (already.has(k)) continue;
      if (!included.has(k)) {
        if (included.size >= keep) break;
        included.add(k);
        mark.set(s.name, `keep:${rule}`);
      } else {
        mark.set(s.name, 'remove');
      }
    }
  }
  const result = new Map<string, string>();
  for (const s of list) {
    const m = mark.get(s.name);
    result.set(s.name, m?.startsWith('keep:') ? m.slice(5) : 'remove');
  }
  return result;
}

/** A small seeded PRNG (mulberry32): failures can be replayed from the seed. */
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

const ZONES = [
  'UTC',
  'Europe/Berlin',
  'America/New_York',
  'Australia/Lord_Howe',
  'Asia/Kathmandu',
  'Pacific/Chatham',
  'America/St_Johns',
];

function randomHistory(rand: () => number): Timed[] {
  const n = Math.floor(rand() * 120);
  // Gaps from minutes to months, so that every kind of period both repeats and is skipped;
  // around the DST changes and year ends too.
  const steps = [60, 900, 3600, 3 * 3600, 86_400, 5 * 86_400, 30 * 86_400];
  let t =
    Date.UTC(2019 + Math.floor(rand() * 8), Math.floor(rand() * 12), 1 + Math.floor(rand() * 28)) / 1000;
  const snaps: Timed[] = [];
  for (let i = 0; i < n; i++) {
    t += Math.floor(rand() * (steps[Math.floor(rand() * steps.length)] ?? 60)) + 1;
    snaps.push({ name: `s${i}`, time: t });
  }
  return snaps;
}

function randomRules(rand: () => number): KeepRules {
  const rules: Record<string, number> = {};
  for (const r of RULE_ORDER) if (rand() < 0.5) rules[r] = Math.floor(rand() * 6);
  return rules;
}

describe('planRetention: property tests', () => {
  it('agrees with a plain implementation of the PBS algorithm (random histories, rules, zones)', () => {
    const rand = rng(20260601);
    for (let round = 0; round < 400; round++) {
      const snaps = randomHistory(rand);
      const rules = randomRules(rand);
      const tz = ZONES[Math.floor(rand() * ZONES.length)] ?? 'UTC';
      const r = planRetention(snaps, rules, tz);
      const got = new Map<string, string>([
        ...r.keep.map((k): [string, string] => [k.name, k.rule]),
        ...r.remove.map((n): [string, string] => [n, 'remove']),
      ]);
      assert.deepEqual(got, reference(snaps, rules, tz), `round ${round}, ${tz}, ${JSON.stringify(rules)}`);
    }
  });

  it('keeps what a single rule promises: the newest backup of each of the n newest periods', () => {
    const rand = rng(7);
    for (let round = 0; round < 200; round++) {
      const snaps = randomHistory(rand);
      const rule = RULE_ORDER[Math.floor(rand() * RULE_ORDER.length)] ?? 'last';
      const n = 1 + Math.floor(rand() * 5);
      const r = planRetention(snaps, { [rule]: n }, 'Europe/Berlin');
      const keptNames = new Set(r.keep.map((k) => k.name));
      const newestFirst = [...snaps].sort((a, b) => b.time - a.time);
      const period = periodOf(rule, 'Europe/Berlin');
      const seen = new Set<string>();
      for (const s of newestFirst) {
        const p = period(s);
        if (seen.has(p)) {
          assert.equal(keptNames.has(s.name), false, `${s.name}: an older backup of a kept period`);
          continue;
        }
        if (seen.size >= n) break;
        seen.add(p);
        assert.equal(keptNames.has(s.name), true, `round ${round}: ${rule} ${n} must keep ${s.name}`);
      }
      assert.equal(r.keep.length, Math.min(n, new Set(snaps.map(period)).size));
    }
  });

  it('is idempotent: planning again over what was kept removes nothing', () => {
    const rand = rng(99);
    for (let round = 0; round < 300; round++) {
      const snaps = randomHistory(rand);
      const rules = randomRules(rand);
      const first = planRetention(snaps, rules, 'America/New_York');
      const left = new Set(first.keep.map((k) => k.name));
      const second = planRetention(
        snaps.filter((s) => left.has(s.name)),
        rules,
        'America/New_York',
      );
      assert.deepEqual(second.remove, [], `round ${round}`);
      assert.deepEqual(second.keep, first.keep);
    }
  });
});

function periodOf(rule: RuleName, tz: string): (s: Timed) => string {
  const fmt = new Intl.DateTimeFormat('en-CA', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
  });
  return (s) => {
    if (rule === 'last') return s.name;
    const p = Object.fromEntries(fmt.formatToParts(new Date(s.time * 1000)).map((x) => [x.type, x.value]));
    if (rule === 'weekly') {
      const date = new Date(Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day)));
      const dayNum = date.getUTCDay() || 7;
      date.setUTCDate(date.getUTCDate() + 4 - dayNum);
      const wy = date.getUTCFullYear();
      return `${wy}/${Math.ceil(((date.getTime() - Date.UTC(wy, 0, 1)) / 86_400_000 + 1) / 7)}`;
    }
    const full = { hourly: 4, daily: 3, monthly: 2, yearly: 1 }[rule];
    return [p.year, p.month, p.day, p.hour].slice(0, full).join('/');
  };
}
