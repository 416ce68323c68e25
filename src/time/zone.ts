/**
 * The time zone of this process as the C library reads it, so that prune's periods are the local
 * days, weeks and months every other program on the host (and Proxmox Backup Server) sees. Every
 * spelling of TZ libc accepts is followed as glibc's tzset() does; what cannot be followed exactly
 * is refused with a message, never guessed:
 *
 *   unset            /etc/localtime (UTC when it does not exist, as libc does)
 *   ""               UTC
 *   Europe/Berlin    the TZif file under $TZDIR or /usr/share/zoneinfo (a leading ":" is optional)
 *   :/etc/localtime  any TZif file by its path
 *   CET-1CEST,M3.5.0,M10.5.0/3   a POSIX rule, when no file has that name
 *
 * Refused: a POSIX rule with summer time but no rule for it (libc then borrows the rules of an
 * unrelated "posixrules" file), text that is neither a file nor a rule (libc silently uses UTC),
 * and zone files with leap seconds ("right/..."). The zone's name is printed as given.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.ts';
import { civil, DAY, daysFromCivil, daysInMonth, isLeap, weekday } from './civil.ts';
import { ZONEINFO } from './zoneinfo.ts';

export interface LocalTime {
  /** Seconds east of UTC. */
  readonly offset: number;
  /** CET, CEST, UTC, or a numeric one such as +0530. */
  readonly abbr: string;
}

export interface TimeZone {
  /** As TZ gave it; for an unset TZ, the zone /etc/localtime links to. */
  readonly name: string;
  at(t: number): LocalTime;
}

/** What the zone reader needs of the host; tests replace it. */
export interface ZoneHost {
  readonly readFile: (path: string) => Buffer | undefined;
  readonly realpath: (path: string) => string | undefined;
  /** $TZDIR, else /usr/share/zoneinfo. */
  readonly tzdir: string;
}

export const LOCALTIME = '/etc/localtime';

export const hostZones: ZoneHost = {
  readFile: (path) => {
    try {
      return readFileSync(path);
    } catch {
      return undefined;
    }
  },
  realpath: (path) => {
    try {
      return realpathSync(path);
    } catch {
      return undefined;
    }
  },
  tzdir: process.env.TZDIR || ZONEINFO,
};

const UTC: LocalTime = { offset: 0, abbr: 'UTC' };

export function utcZone(name = 'UTC'): TimeZone {
  return { name, at: () => UTC };
}

function fixed(name: string, local: LocalTime): TimeZone {
  return { name, at: () => local };
}

// POSIX TZ rules (POSIX.1-2017 8.3, with RFC 8536's extension of hours to ±167).

interface RuleDate {
  readonly kind: 'J' | 'n' | 'M';
  /** J: 1-365 (Feb 29 never counted); n: 0-365; M: the weekday, 0 Sunday. */
  readonly day: number;
  readonly month: number;
  /** M: 1-5, 5 the last. */
  readonly week: number;
  /** Seconds after local midnight; may be negative or beyond a day. */
  readonly time: number;
}

export interface PosixRule {
  readonly std: LocalTime;
  readonly dst?: LocalTime;
  readonly start?: RuleDate;
  readonly end?: RuleDate;
}

class Reader {
  at = 0;
  constructor(readonly text: string) {}
  ch(): string {
    return this.text[this.at] ?? '';
  }
  /** re is anchored (^): what it matches right at the cursor. */
  take(re: RegExp): string {
    const m = re.exec(this.text.slice(this.at));
    if (!m) return '';
    this.at += m[0].length;
    return m[0];
  }
}

function abbreviation(r: Reader): string | null {
  if (r.ch() === '<') {
    const m = r.take(/^<[A-Za-z0-9+-]{3,}>/);
    return m ? m.slice(1, -1) : null;
  }
  return r.take(/^[A-Za-z]{3,}/) || null;
}

/** [+-]hh[:mm[:ss]] as seconds; null when absent or malformed. */
function hms(r: Reader, maxHours: number): number | null {
  const m = r.take(/^[+-]?\d{1,3}(?::\d{1,2}(?::\d{1,2})?)?/);
  if (!m) return null;
  const sign = m.startsWith('-') ? -1 : 1;
  const [h = 0, mi = 0, s = 0] = m.replace(/^[+-]/, '').split(':').map(Number);
  if (h > maxHours || mi > 59 || s > 59) return null;
  return sign * (h * 3600 + mi * 60 + s);
}

function ruleDate(r: Reader): RuleDate | null {
  let date: Omit<RuleDate, 'time'>;
  if (r.ch() === 'J') {
    r.at++;
    const n = Number(r.take(/^\d{1,3}/) || Number.NaN);
    if (!(n >= 1 && n <= 365)) return null;
    date = { kind: 'J', day: n, month: 0, week: 0 };
  } else if (r.ch() === 'M') {
    const m = /^M(\d{1,2})\.(\d)\.(\d)/.exec(r.text.slice(r.at));
    if (!m) return null;
    r.at += m[0].length;
    const [month, week, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (!(month >= 1 && month <= 12 && week >= 1 && week <= 5 && day <= 6)) return null;
    date = { kind: 'M', day, month, week };
  } else {
    const n = Number(r.take(/^\d{1,3}/) || Number.NaN);
    if (!(n >= 0 && n <= 365)) return null;
    date = { kind: 'n', day: n, month: 0, week: 0 };
  }
  let time = 7200;
  if (r.ch() === '/') {
    r.at++;
    const t = hms(r, 167);
    if (t === null) return null;
    time = t;
  }
  return { ...date, time };
}

/**
 * A POSIX TZ rule (`std offset [dst [offset] [,start[/time],end[/time]]]`), offsets west of UTC as
 * POSIX writes them; a string for what is wrong with it.
 */
export function parsePosixRule(text: string): PosixRule | string {
  const r = new Reader(text);
  const stdName = abbreviation(r);
  if (stdName === null) return 'not a zone name of at least 3 letters';
  const stdWest = hms(r, 24);
  if (stdWest === null) return `no UTC offset after ${stdName} (POSIX writes CET-1 for one hour east)`;
  const std = { offset: -stdWest, abbr: stdName };
  if (r.at === text.length) return { std };
  const dstName = abbreviation(r);
  if (dstName === null) return `${JSON.stringify(text.slice(r.at))} is not a summer time name`;
  let dstOffset = std.offset + 3600;
  if (/[-+\d]/.test(r.ch())) {
    const west = hms(r, 24);
    if (west === null) return 'a malformed summer time offset';
    dstOffset = -west;
  }
  const dst = { offset: dstOffset, abbr: dstName };
  if (r.at === text.length || text.slice(r.at) === ',')
    return `summer time ${dstName} without the rule for when it starts and ends (such as ,M3.5.0,M10.5.0/3)`;
  if (r.ch() !== ',') return `${JSON.stringify(text.slice(r.at))} is not a rule`;
  r.at++;
  const start = ruleDate(r);
  if (start === null) return 'a malformed start rule (Jn, n or Mm.w.d, then /time)';
  if (r.ch() !== ',') return 'no end rule after the start rule';
  r.at++;
  const end = ruleDate(r);
  if (end === null) return 'a malformed end rule (Jn, n or Mm.w.d, then /time)';
  if (r.at !== text.length) return `${JSON.stringify(text.slice(r.at))} after the rules`;
  return { std, dst, start, end };
}

/**
 * Local midnight (read as UTC) of the day a rule names in year, as glibc's compute_change does it:
 * the day within the year from that year's calendar, counted from January 1st of the year, or of
 * 1970 for any earlier year (glibc's own shortcut, followed so that old snapshots agree too).
 */
function ruleDay(rule: RuleDate, year: number): number {
  const jan1 = daysFromCivil(year, 1, 1);
  const base = year > 1970 ? jan1 : 0;
  switch (rule.kind) {
    case 'J':
      return base + rule.day - 1 + (isLeap(year) && rule.day >= 60 ? 1 : 0);
    case 'n':
      return base + rule.day;
    case 'M': {
      const first = daysFromCivil(year, rule.month, 1);
      let d = rule.day - weekday(first);
      if (d < 0) d += 7;
      for (let w = 1; w < rule.week; w++) {
        if (d + 7 >= daysInMonth(year, rule.month)) break;
        d += 7;
      }
      return base + (first - jan1) + d;
    }
  }
}

/** The local time of a POSIX rule at t: glibc decides by the rule's changes in t's UTC year. */
export function posixAt(rule: PosixRule, cache: Map<number, [number, number]>, t: number): LocalTime {
  const { std, dst, start, end } = rule;
  if (!dst || !start || !end) return std;
  const year = civil(Math.floor(t / DAY)).y;
  let changes = cache.get(year);
  if (!changes) {
    changes = [
      ruleDay(start, year) * DAY + start.time - std.offset,
      ruleDay(end, year) * DAY + end.time - dst.offset,
    ];
    cache.set(year, changes);
  }
  const [on, off] = changes;
  const summer = on > off ? t < off || t >= on : t >= on && t < off;
  return summer ? dst : std;
}

function posixZone(name: string, rule: PosixRule): TimeZone {
  const cache = new Map<number, [number, number]>();
  return { name, at: (t) => posixAt(rule, cache, t) };
}

// TZif files (RFC 8536), read as glibc's tzfile.c reads them.

function tzifZone(name: string, data: Buffer): TimeZone | string {
  if (data.length < 44 || data.toString('latin1', 0, 4) !== 'TZif') return 'not a zone file (TZif)';
  const version = data[4] ?? 0;
  const counts = (at: number) => [0, 1, 2, 3, 4, 5].map((i) => data.readUInt32BE(at + 20 + 4 * i));
  const [isut1 = 0, isstd1 = 0, leap1 = 0, time1 = 0, type1 = 0, char1 = 0] = counts(0);
  const v1Size = time1 * 5 + type1 * 6 + char1 + leap1 * 8 + isstd1 + isut1;
  let header = 0;
  let timeSize = 4;
  if (version >= 0x32) {
    header = 44 + v1Size;
    timeSize = 8;
  }
  const [isut = 0, isstd = 0, leap = 0, timecnt = 0, typecnt = 0, charcnt = 0] = counts(header);
  if (leap > 0) return 'a zone file with leap seconds (right/...): time_t does not count them here';
  if (typecnt === 0) return 'a zone file without local time types';
  let p = header + 44;
  const transitions = new Float64Array(timecnt);
  for (let i = 0; i < timecnt; i++, p += timeSize)
    transitions[i] = timeSize === 8 ? Number(data.readBigInt64BE(p)) : data.readInt32BE(p);
  const index = data.subarray(p, p + timecnt);
  p += timecnt;
  const chars = data.subarray(p + typecnt * 6, p + typecnt * 6 + charcnt);
  const types: { offset: number; isdst: boolean; abbr: string }[] = [];
  for (let i = 0; i < typecnt; i++, p += 6) {
    const at = data[p + 5] ?? 0;
    const nul = chars.indexOf(0, at);
    types.push({
      offset: data.readInt32BE(p),
      isdst: data[p + 4] === 1,
      abbr: chars.toString('latin1', at, nul < 0 ? chars.length : nul),
    });
  }
  p += charcnt + isstd + isut;
  let footer: PosixRule | null = null;
  if (version >= 0x32) {
    const end = data.indexOf(0x0a, p + 1);
    const text = data[p] === 0x0a && end > p ? data.toString('latin1', p + 1, end) : '';
    if (text !== '') {
      const rule = parsePosixRule(text);
      if (typeof rule === 'string') return `its rule for later times, ${JSON.stringify(text)}: ${rule}`;
      footer = rule;
    }
  }
  const local = (i: number): LocalTime => {
    const t = types[i] ?? types[0];
    return { offset: t?.offset ?? 0, abbr: t?.abbr ?? '' };
  };
  // Before the first transition (or without any): the first standard-time type, as glibc does.
  const firstStd = Math.max(
    0,
    types.findIndex((t) => !t.isdst),
  );
  const cache = new Map<number, [number, number]>();
  const last = timecnt > 0 ? (transitions[timecnt - 1] ?? 0) : 0;
  return {
    name,
    at: (t) => {
      if (timecnt === 0 || t < (transitions[0] ?? 0)) return local(firstStd);
      if (t >= last) return footer ? posixAt(footer, cache, t) : local(index[timecnt - 1] ?? 0);
      let lo = 0;
      let hi = timecnt - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if ((transitions[mid] ?? 0) <= t) lo = mid;
        else hi = mid;
      }
      return local(index[lo] ?? 0);
    },
  };
}

/** The zone name a zoneinfo path stands for (/etc/localtime → Europe/Berlin), if it is one. */
function linkedName(path: string, host: ZoneHost): string | undefined {
  const real = host.realpath(path);
  const dir = host.realpath(host.tzdir) ?? host.tzdir;
  return real?.startsWith(`${dir}/`) ? real.slice(dir.length + 1) : undefined;
}

function refuse(tz: string, why: string): never {
  throw new UsageError(
    `TZ=${JSON.stringify(tz)}: ${why}; set TZ to a zone such as Europe/Berlin (timedatectl list-timezones), or unset it to use ${LOCALTIME}`,
  );
}

/** The zone TZ names (undefined: unset), read as glibc reads it. */
export function zoneFromTz(tz: string | undefined, host: ZoneHost = hostZones): TimeZone {
  if (tz === '') return utcZone('UTC (TZ is empty)');
  const spec = tz?.startsWith(':') ? tz.slice(1) : tz;
  if (spec === undefined || spec === '') {
    // libc's default: /etc/localtime, UTC if there is none.
    const data = host.readFile(LOCALTIME);
    const name = tz === undefined ? (linkedName(LOCALTIME, host) ?? LOCALTIME) : `${tz} (${LOCALTIME})`;
    if (data === undefined) return utcZone(`UTC (no ${LOCALTIME})`);
    const zone = tzifZone(name, data);
    if (typeof zone === 'string') throw new UsageError(`${LOCALTIME}: ${zone}`);
    return zone;
  }
  const path = spec.startsWith('/') ? spec : join(host.tzdir, spec);
  const data = host.readFile(path);
  if (data !== undefined && data.toString('latin1', 0, 4) === 'TZif') {
    const link = spec.startsWith('/') ? linkedName(path, host) : undefined;
    const zone = tzifZone(link ? `${tz} (${link})` : (tz ?? spec), data);
    if (typeof zone === 'string') refuse(tz ?? spec, `${path} is ${zone}`);
    return zone;
  }
  // glibc: the default file that is not there means UTC; anything else may be a POSIX rule.
  if (spec === LOCALTIME) return utcZone(`UTC (no ${LOCALTIME})`);
  const rule = parsePosixRule(spec);
  if (typeof rule === 'string') {
    refuse(
      tz ?? spec,
      spec.startsWith('/')
        ? `${spec} is not a zone file`
        : `neither a zone (no file ${path}) nor a POSIX rule (${rule})`,
    );
  }
  return rule.dst ? posixZone(tz ?? spec, rule) : fixed(tz ?? spec, rule.std);
}

const zones = new Map<string, TimeZone>();

/** zoneFromTz, once per spelling for the life of the process (zones never change while it runs). */
export function zoneNamed(tz: string | undefined): TimeZone {
  const key = tz === undefined ? '\0unset' : tz;
  let zone = zones.get(key);
  if (!zone) {
    zone = zoneFromTz(tz);
    zones.set(key, zone);
  }
  return zone;
}

/** This process's zone: TZ as libc reads it. */
export function processZone(): TimeZone {
  return zoneNamed(process.env.TZ);
}

/** `+0100`, `-0330`. */
export function numericOffset(offset: number): string {
  const sign = offset < 0 ? '-' : '+';
  const a = Math.abs(offset);
  return `${sign}${String(Math.floor(a / 3600)).padStart(2, '0')}${String(Math.floor((a % 3600) / 60)).padStart(2, '0')}`;
}

/**
 * The instant a wall-clock time (seconds, read as UTC) names in zone: what `zpool status` and a
 * `--time` without an offset mean. In a gap the later offset applies, in an overlap the earlier
 * instant, as mktime does with tm_isdst = -1 in practice.
 */
export function fromWallClock(zone: TimeZone, local: number): number {
  const first = local - zone.at(local).offset;
  return local - zone.at(first).offset;
}
