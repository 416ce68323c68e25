/**
 * systemd calendar events (`OnCalendar=`, systemd.time(7)), validated the way systemd parses them,
 * so that `zbm config check` refuses a schedule that `install-timers` would turn into a timer
 * systemd refuses to load (which silently means no backups). Pure: the only outside fact, whether
 * a word is a time zone, is a parameter.
 *
 *   [weekdays] [[year-]month-day] [hour:minute[:second]] [time zone]
 *   Mon..Fri *-*-* 02:30      *:0/15      *-02~03      hourly      @1700000000
 */

/** The shorthands systemd accepts, case-insensitively. */
const SHORTHANDS = new Set([
  'minutely',
  'hourly',
  'daily',
  'monthly',
  'weekly',
  'yearly',
  'annually',
  'anually',
  'quarterly',
  'biannually',
  'bi-annually',
  'semiannually',
  'semi-annually',
]);

const WEEKDAYS: readonly (readonly [string, number])[] = [
  ['monday', 0],
  ['mon', 0],
  ['tuesday', 1],
  ['tue', 1],
  ['wednesday', 2],
  ['wed', 2],
  ['thursday', 3],
  ['thu', 3],
  ['friday', 4],
  ['fri', 4],
  ['saturday', 5],
  ['sat', 5],
  ['sunday', 6],
  ['sun', 6],
];

const USEC = 1_000_000;
const INT_MAX = 2 ** 31 - 1;

/** One element of a comma list: a value, a range `a..b`, with a repetition `/r`. */
interface Component {
  readonly start: number;
  /** -1: no range. */
  stop: number;
  readonly repeat: number;
}

/** null for `*`. */
type Chain = Component[] | null;

class Invalid extends Error {}

/** A cursor over the text, as systemd's parser walks it. */
class Cursor {
  constructor(
    readonly text: string,
    public at = 0,
  ) {}
  /** A method, not a getter: the character changes as the cursor moves. */
  ch(): string {
    return this.text[this.at] ?? '';
  }
  peek(n: number): string {
    return this.text[this.at + n] ?? '';
  }
  get done(): boolean {
    return this.at >= this.text.length;
  }
  skipSpaces(): void {
    while (this.ch() === ' ') this.at++;
  }
}

const isDigit = (c: string) => c >= '0' && c <= '9';

function decimal(c: Cursor, usec: boolean): number {
  if (!isDigit(c.ch())) throw new Invalid();
  let digits = '';
  while (isDigit(c.ch())) digits += c.text[c.at++];
  let value = Number(digits);
  if (usec) {
    value *= USEC;
    // One "." is a decimal point, ".." a range.
    if (c.ch() === '.' && c.peek(1) !== '.') {
      c.at++;
      let frac = '';
      while (isDigit(c.ch())) frac += c.text[c.at++];
      if (frac === '') throw new Invalid();
      value += Math.round(Number(`0.${frac}`) * USEC);
    }
  }
  if (value > INT_MAX) throw new Invalid();
  return value;
}

function chain(c: Cursor, usec: boolean): Chain {
  if (c.ch() === '*') {
    c.at++;
    return usec ? [{ start: 0, stop: -1, repeat: USEC }] : null;
  }
  const list: Component[] = [];
  for (;;) {
    if (list.length > 240) throw new Invalid();
    const start = decimal(c, usec);
    let stop = -1;
    let repeat = 0;
    if (c.ch() === '.' && c.peek(1) === '.') {
      c.at += 2;
      stop = decimal(c, usec);
      repeat = usec ? USEC : 1;
    }
    if (c.ch() === '/') {
      c.at++;
      repeat = decimal(c, usec);
      if (repeat === 0) throw new Invalid();
    }
    if (!['', ' ', ',', '-', '~', ':'].includes(c.ch())) throw new Invalid();
    list.push({ start, stop, repeat });
    if (c.ch() !== ',') return list;
    c.at++;
  }
}

function weekdays(c: Cursor): void {
  let open = -1;
  let first = true;
  for (;;) {
    const rest = c.text.slice(c.at).toLowerCase();
    const found = WEEKDAYS.find(([name]) => rest.startsWith(name));
    if (!found) {
      if (first) return;
      throw new Invalid();
    }
    const [name, day] = found;
    if (!['', '-', '.', ',', ' '].includes(c.peek(name.length))) throw new Invalid();
    if (open >= 0 && open > day) throw new Invalid();
    c.at += name.length;
    if (c.done) return;
    if (c.ch() === ' ') {
      c.skipSpaces();
      return;
    }
    if (c.ch() === '.') {
      if (open >= 0 || c.peek(1) !== '.') throw new Invalid();
      open = day;
      c.at += 2;
    } else if (c.ch() === '-') {
      if (open >= 0) throw new Invalid();
      open = day;
      c.at++;
    } else if (c.ch() === ',') {
      open = -1;
      c.at++;
    }
    if (c.done || c.ch() === ' ') {
      c.skipSpaces();
      if (open >= 0) throw new Invalid();
      return;
    }
    first = false;
  }
}

interface Spec {
  year: Chain;
  month: Chain;
  day: Chain;
  hour: Chain;
  minute: Chain;
  second: Chain;
  endOfMonth: boolean;
}

/** Returns true when the date was an @timestamp: no time follows. */
function date(c: Cursor, spec: Spec): boolean {
  if (c.done) return false;
  if (c.ch() === '@') {
    c.at++;
    const start = c.at;
    while (isDigit(c.ch())) c.at++;
    if (c.at === start) throw new Invalid();
    return true;
  }
  const from = c.at;
  const first = chain(c, false);
  // A ':' (or the end): this was a time, not a date.
  if (c.done || c.ch() === ':') {
    c.at = from;
    return false;
  }
  if (c.ch() === '~') spec.endOfMonth = true;
  else if (c.ch() !== '-') throw new Invalid();
  c.at++;
  const second = chain(c, false);
  if (c.done || c.ch() === ' ') {
    c.skipSpaces();
    spec.month = first;
    spec.day = second;
    return false;
  }
  if (spec.endOfMonth) throw new Invalid();
  if (c.ch() === '~') spec.endOfMonth = true;
  else if (c.ch() !== '-') throw new Invalid();
  c.at++;
  const third = chain(c, false);
  if (!(c.done || c.ch() === ' ')) throw new Invalid();
  c.skipSpaces();
  spec.year = first;
  spec.month = second;
  spec.day = third;
  return false;
}

function time(c: Cursor, spec: Spec): void {
  if (c.done) return;
  spec.hour = chain(c, false);
  if (c.ch() !== ':') throw new Invalid();
  c.at++;
  spec.minute = chain(c, false);
  if (c.done) return;
  if (c.ch() !== ':') throw new Invalid();
  c.at++;
  spec.second = chain(c, true);
  if (!c.done) throw new Invalid();
}

function valid(list: Chain, from: number, to0: number, endOfMonth: boolean): boolean {
  if (list === null) return true;
  // Counted from the end of the month, at most 28 days back.
  const to = endOfMonth ? to0 - 3 : to0;
  return list.every((x) => {
    if (x.start < from || x.start > to) return false;
    if (x.repeat > to - from) return false;
    if (x.stop >= 0) return x.stop >= from && x.stop <= to && x.start + x.repeat <= x.stop;
    return endOfMonth ? x.start - x.repeat >= from : x.start + x.repeat <= to;
  });
}

/** Two-digit years as systemd reads them: 0-69 are 2000-2069, 70-99 are 1970-1999. */
function fixYear(x: number): number {
  if (x >= 0 && x < 70) return x + 2000;
  if (x >= 70 && x < 100) return x + 1900;
  return x;
}

/** A word systemd takes as the time zone of an event: UTC, or a zone of the host's tzdata. */
export type IsTimeZone = (name: string) => boolean;

/**
 * Whether systemd accepts text as a calendar event (`OnCalendar=`). The one difference: systemd
 * also takes the abbreviations of the host's own zone (CET, CEST in Berlin) as a suffix; zbm takes
 * them only if isTimeZone does.
 */
export function isCalendarEvent(text: string, isTimeZone: IsTimeZone): boolean {
  let body = text;
  if (/ utc$/i.test(body)) body = body.slice(0, -4);
  else {
    const space = body.lastIndexOf(' ');
    if (space >= 0 && isTimeZone(body.slice(space + 1))) body = body.slice(0, space);
  }
  if (body === '') return false;
  if (SHORTHANDS.has(body.toLowerCase())) return true;
  const spec: Spec = {
    year: null,
    month: null,
    day: null,
    hour: null,
    minute: null,
    second: null,
    endOfMonth: false,
  };
  try {
    const c = new Cursor(body);
    weekdays(c);
    if (!date(c, spec)) time(c, spec);
    if (!c.done) return false;
  } catch (err) {
    if (err instanceof Invalid) return false;
    throw err;
  }
  if (spec.day === null) spec.endOfMonth = false;
  const years = spec.year?.map((x) => ({ ...x, start: fixYear(x.start), stop: fixYear(x.stop) })) ?? null;
  for (const list of [years, spec.month, spec.day, spec.hour, spec.minute, spec.second]) {
    // A range is shortened to a whole number of repetitions before it is checked.
    for (const x of list ?? []) if (x.stop > x.start && x.repeat > 0) x.stop -= (x.stop - x.start) % x.repeat;
  }
  return (
    valid(years, 1970, 2199, false) &&
    valid(spec.month, 1, 12, false) &&
    valid(spec.day, 1, 31, spec.endOfMonth) &&
    valid(spec.hour, 0, 23, false) &&
    valid(spec.minute, 0, 59, false) &&
    valid(spec.second, 0, 60 * USEC - 1, false)
  );
}

const CRON_DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** One cron field in systemd's words (`*` stays, `*\/15` → `0/15`, `1-5` → `1..5`), or null. */
function cronField(field: string, dayNames = false): string | null {
  if (field === '*') return '*';
  const parts = field.split(',').map((p) => {
    const m = /^(\*|\d+)(?:-(\d+))?(?:\/(\d+))?$/.exec(p);
    if (!m) return null;
    const [, a = '', b, step] = m;
    if (dayNames) {
      if (a === '*' || step !== undefined) return null;
      const from = CRON_DAYS[Number(a)];
      const to = b === undefined ? undefined : CRON_DAYS[Number(b)];
      if (from === undefined || (b !== undefined && to === undefined)) return null;
      return to ? `${from}..${to}` : from;
    }
    const start = a === '*' ? '0' : a;
    return `${start}${b === undefined ? '' : `..${b}`}${step === undefined ? '' : `/${step}`}`;
  });
  return parts.includes(null) ? null : parts.join(',');
}

/**
 * The same schedule as an OnCalendar event, for a cron line (`0 * * * *`), when it translates
 * plainly; null when text is not a cron line, or one cron means differently (day of month and
 * weekday both set: cron takes either, systemd both).
 */
export function fromCron(text: string): string | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5 || !fields.every((f) => /^[\d*/,-]+$/.test(f))) return null;
  const [minute = '', hour = '', dom = '', month = '', dow = ''] = fields;
  if (dom !== '*' && dow !== '*') return null;
  const m = cronField(minute);
  const h = cronField(hour);
  const d = cronField(dom);
  const mo = cronField(month);
  const w = dow === '*' ? '' : cronField(dow, true);
  if (m === null || h === null || d === null || mo === null || w === null) return null;
  return `${w ? `${w} ` : ''}*-${mo}-${d} ${h}:${m}`;
}

/** The problem with a schedule, for `config check`; null when systemd takes it. */
export function scheduleProblem(text: string, isTimeZone: IsTimeZone): string | null {
  if (isCalendarEvent(text, isTimeZone)) return null;
  const cron = fromCron(text);
  const valid = cron !== null && isCalendarEvent(cron, isTimeZone) ? cron : null;
  if (/^[\d*/,-]+(\s+[\d*/,-]+){4}$/.test(text.trim())) {
    return `${JSON.stringify(text)} is cron syntax; systemd timers take a calendar event (systemd.time(7))${valid ? `: the same schedule is "${valid}"` : ', such as hourly or *-*-* 02:30'}`;
  }
  return `${JSON.stringify(text)} is not a systemd calendar event (systemd.time(7)): for example hourly, daily, *:0/15, Mon..Fri 02:30 or *-*-* 02:30; systemd-analyze calendar checks one`;
}

const SPAN_UNITS: Readonly<Record<string, number>> = {
  s: 1,
  sec: 1,
  second: 1,
  seconds: 1,
  m: 60,
  min: 60,
  minute: 60,
  minutes: 60,
  h: 3600,
  hr: 3600,
  hour: 3600,
  hours: 3600,
  d: 86400,
  day: 86400,
  days: 86400,
};

/**
 * The seconds of a systemd time span (systemd.time(7)) such as `5min`, `90s`, `1h 30min` or `300`
 * (seconds), or null. A subset of what systemd takes: whole numbers, seconds to days, so whatever
 * passes here systemd reads the same way.
 */
export function timeSpanSeconds(text: string): number | null {
  const t = text.trim();
  // Spaces only: a line break would end the unit file's line.
  if (!/^(?:\d+ *[a-z]* *)+$/.test(t)) return null;
  let total = 0;
  for (const [, n = '', unit = ''] of t.matchAll(/(\d+) *([a-z]*)/g)) {
    const factor = unit === '' ? 1 : SPAN_UNITS[unit];
    if (factor === undefined || n.length > 9) return null;
    total += Number(n) * factor;
  }
  return total;
}
