/**
 * Retention rules with the semantics of Proxmox Backup Server and vzdump (`keep-*`), as one pure
 * function. Walking newest to oldest, each rule in the fixed order last → hourly → daily → weekly
 * → monthly → yearly keeps the first backup of each new period until it has taken N periods; a
 * period that already holds a backup kept by an earlier rule takes no slot; what no rule keeps is
 * removed. Periods are calendar periods in LOCAL time (TZ as libc reads it, src/time/zone.ts),
 * weeks are ISO weeks (%G/%V).
 */
import { civil, DAY, daysFromCivil } from '../time/civil.ts';
import { processZone, type TimeZone, zoneNamed } from '../time/zone.ts';

export type RuleName = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly';

/** The order in which the rules are applied: it decides which rule a backup is kept by. */
export const RULE_ORDER: readonly RuleName[] = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];

export type KeepRules = Readonly<Partial<Record<RuleName, number>>>;

/** Why a backup was kept: a rule, or `no-rules` when no rule is set and everything is kept. */
export type KeepRule = RuleName | 'no-rules';

export interface Timed {
  readonly name: string;
  /** Seconds since the epoch. */
  readonly time: number;
}

export interface RetentionResult {
  /** Newest first; period: the local period that kept it (`2026-11-26` for keep-daily). */
  readonly keep: readonly { readonly name: string; readonly rule: KeepRule; readonly period?: string }[];
  /** Newest first. */
  readonly remove: readonly string[];
}

export function hasRules(rules: KeepRules): boolean {
  return RULE_ORDER.some((r) => (rules[r] ?? 0) > 0);
}

/**
 * UTC offset (seconds) of a zone at an instant, computed at the start of each UTC day and reused
 * for the whole day when the next day starts with the same offset; only a day with a transition is
 * resolved instant by instant (no zone has two transitions within a day). Finders live as long as
 * the process: the offsets of a zone never change while it runs, and every dataset shares them.
 */
const finders = new WeakMap<TimeZone, (t: number) => number>();

function offsetFinder(zone: TimeZone): (t: number) => number {
  const cached = finders.get(zone);
  if (cached) return cached;
  const dayStart = new Map<number, number>();
  const atDayStart = (day: number): number => {
    let off = dayStart.get(day);
    if (off === undefined) {
      off = zone.at(day * DAY).offset;
      dayStart.set(day, off);
    }
    return off;
  };
  const finder = (t: number): number => {
    const day = Math.floor(t / DAY);
    const off = atDayStart(day);
    return off === atDayStart(day + 1) ? off : zone.at(t).offset;
  };
  finders.set(zone, finder);
  return finder;
}

/** Numeric period keys of one instant in local time, one per calendar rule. */
interface Periods {
  readonly hourly: number;
  readonly daily: number;
  readonly weekly: number;
  readonly monthly: number;
  readonly yearly: number;
}

function periods(local: number): Periods {
  const days = Math.floor(local / DAY);
  const hour = Math.floor((local - days * DAY) / 3600);
  const { y, m } = civil(days);
  // ISO 8601: weeks start on Monday and belong to the year of their Thursday (%G/%V).
  const dow = ((((days + 3) % 7) + 7) % 7) + 1; // 1970-01-01 was a Thursday (4)
  const thursday = days - dow + 4;
  const isoYear = civil(thursday).y;
  const week = Math.floor((thursday - daysFromCivil(isoYear, 1, 1)) / 7) + 1;
  return {
    hourly: days * 24 + hour,
    daily: days,
    weekly: isoYear * 100 + week,
    monthly: y * 12 + m - 1,
    yearly: y,
  };
}

/** The period of a rule as an administrator reads it: `2026-11-26 14h`, `2026-W48`, `2026-11`. */
export function periodLabel(rule: Exclude<RuleName, 'last'>, local: number): string {
  const days = Math.floor(local / DAY);
  const { y, m, d } = civil(days);
  const p = (n: number) => String(n).padStart(2, '0');
  switch (rule) {
    case 'hourly':
      return `${y}-${p(m)}-${p(d)} ${p(Math.floor((local - days * DAY) / 3600))}h`;
    case 'daily':
      return `${y}-${p(m)}-${p(d)}`;
    case 'weekly': {
      const w = periods(local).weekly;
      return `${Math.floor(w / 100)}-W${p(w % 100)}`;
    }
    case 'monthly':
      return `${y}-${p(m)}`;
    case 'yearly':
      return String(y);
  }
}

/**
 * Which backups the rules keep (and by which rule, in which local period) and which they remove,
 * both newest first. snaps may come in any order; equal times are ordered by their position in
 * snaps, a later one counting as newer (pass them oldest first, as `zfs list` does). With no rule
 * set, or all 0, everything is kept, as in PBS. tz: a TZ value read as libc reads it, or a zone;
 * the default is this process's TZ.
 */
export function planRetention(
  snaps: readonly Timed[],
  rules: KeepRules,
  tz?: string | TimeZone,
): RetentionResult {
  const zone = typeof tz === 'string' ? zoneNamed(tz) : (tz ?? processZone());
  let newestFirst: Timed[];
  if (snaps.every((s, i) => i === 0 || (snaps[i - 1] as Timed).time <= s.time)) {
    // The usual case (zfs list order): no sort needed.
    newestFirst = [...snaps].reverse();
  } else {
    const order = snaps.map((_, i) => i);
    order.sort((a, b) => (snaps[b] as Timed).time - (snaps[a] as Timed).time || b - a);
    newestFirst = order.map((i) => snaps[i] as Timed);
  }

  if (!hasRules(rules)) {
    return { keep: newestFirst.map((s) => ({ name: s.name, rule: 'no-rules' })), remove: [] };
  }

  const offset = offsetFinder(zone);
  const keys = newestFirst.map((s) => periods(s.time + offset(s.time)));
  const n = newestFirst.length;
  // 0: not decided yet, 1: kept, 2: removed by a rule whose period already had its backup.
  const mark = new Uint8Array(n);
  const keptBy: (RuleName | undefined)[] = new Array(n);

  for (const rule of RULE_ORDER) {
    const count = rules[rule] ?? 0;
    if (count <= 0) continue;
    const key = rule === 'last' ? (i: number) => i : (i: number) => (keys[i] as Periods)[rule];
    const earlier = new Set<number>();
    for (let i = 0; i < n; i++) if (mark[i] === 1) earlier.add(key(i));
    const taken = new Set<number>();
    for (let i = 0; i < n; i++) {
      if (mark[i] !== 0) continue;
      const k = key(i);
      if (earlier.has(k)) continue;
      if (taken.has(k)) {
        mark[i] = 2;
        continue;
      }
      if (taken.size >= count) break;
      taken.add(k);
      mark[i] = 1;
      keptBy[i] = rule;
    }
  }

  const keep: { name: string; rule: KeepRule; period?: string }[] = [];
  const remove: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = newestFirst[i] as Timed;
    const rule = keptBy[i];
    if (mark[i] === 1 && rule) {
      keep.push(
        rule === 'last'
          ? { name: s.name, rule }
          : { name: s.name, rule, period: periodLabel(rule, s.time + offset(s.time)) },
      );
    } else remove.push(s.name);
  }
  return { keep, remove };
}
