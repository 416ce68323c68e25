/**
 * `schedule:` is a systemd calendar event: zbm's validator against what systemd itself says
 * (`systemd-analyze calendar`, when this machine has it), and against verdicts recorded from it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fromCron, isCalendarEvent, scheduleProblem, timeSpanSeconds } from '../../../src/config/calendar.ts';
import { hostHasZone } from '../../../src/time/zoneinfo.ts';

/** Verdicts of systemd 252 (Debian 12), recorded with `systemd-analyze calendar`. */
const RECORDED: readonly (readonly [string, boolean])[] = [
  ['hourly', true],
  ['Hourly', true],
  ['daily', true],
  ['weekly', true],
  ['monthly', true],
  ['yearly', true],
  ['annually', true],
  ['quarterly', true],
  ['semiannually', true],
  ['semi-annually', true],
  ['minutely', true],
  ['every hour', false],
  ['0 * * * *', false],
  ['*:20', true],
  ['*:0/15', true],
  ['02:30', true],
  ['*-*-* 02:30', true],
  ['Mon', true],
  ['mon', true],
  ['Monday', true],
  ['Mon..Fri', true],
  ['Mon,Wed 10:00', true],
  ['Sat,Sun *-*-* 03:00', true],
  ['*-02~03', true],
  ['2026-11-26 11:05:03', true],
  ['11-26', true],
  ['*-*-1,15 4:00', true],
  ['1..10/2:00', true],
  ['*:0/15:30.5', true],
  ['*-*-* 02:30 UTC', true],
  ['*-*-* 02:30 Europe/Berlin', true],
  ['*-*-* 02:30 Mars/Base', false],
  ['@1700000000', true],
  ['now', false],
  ['today', false],
  ['24:00', false],
  ['*-13-01', false],
  ['Mon Tue', false],
  ['', false],
  ['Mon..Fri/2', false],
  ['1-1', true],
  ['0-1-1', true],
  ['2026-*-* *:*:*', true],
  ['*-*-* *:*:60', false],
  ['*:*:59.123456', true],
  ['Mon,Tue..Thu', true],
  ['Fri..Mon', false],
  ['*-*-31/2', false],
  ['*-*~07/1', true],
  ['Mon *-05~07/1', true],
  ['*-*-*', true],
  ['*:5', true],
  ['2:3', true],
  ['02:30:00 UTC', true],
  ['UTC', false],
  ['hourly UTC', true],
  ['*-*-* 2:30/', false],
  ['*/2:00', false],
  ['2003-03-05 05:40 Europe/Berlin', true],
];

/** More shapes, checked against systemd-analyze only. */
const MORE = [
  'Mon-Fri',
  'Mon-',
  'Mon,',
  'Mon..',
  'Mon.Fri',
  'Mo',
  'Monthly',
  'anually',
  'bi-annually',
  '*-*-* *:*:59.',
  '*:*:*',
  '*-*-* 00/6:00',
  '0/6:00',
  '1969-01-01',
  '2199-12-31',
  '2200-01-01',
  '*-02-30',
  '*-*~28',
  '*-*~29',
  '*-*-0',
  '*-0-1',
  '12:60',
  '23:59:59',
  '1,2,3:0',
  '1..3,5:0',
  '3..1:0',
  '*-*-* 02:30 utc',
  '*-*-* 02:30 Europe/berlin',
  '@',
  '@x',
  'Sun *-*-* 00:00:00',
  'Wed..Wed',
  'weekly Europe/Berlin',
  '*-*-* 02',
  ':30',
  '*:',
  '5/0:00',
  '*-1/3-1',
  '2026-1-1 1:1:1.5',
  '1..10/0:00',
  'Thursday,Friday',
  'Sat..Sun 1:00',
  '*-*-1..7 Mon',
  'Mon *-*-1..7 3:00',
];

function systemdSays(event: string): boolean | null {
  const r = spawnSync('systemd-analyze', ['calendar', event], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC' },
  });
  if (r.error) return null;
  return r.status === 0;
}

const haveSystemd = systemdSays('hourly') === true;

describe('schedule: a systemd calendar event, as systemd parses it', () => {
  it('agrees with the verdicts recorded from systemd-analyze', () => {
    for (const [event, ok] of RECORDED)
      assert.equal(isCalendarEvent(event, hostHasZone), ok, JSON.stringify(event));
  });

  it('agrees with systemd-analyze calendar on this machine', {
    skip: !haveSystemd && 'no systemd-analyze here',
  }, () => {
    for (const event of [...RECORDED.map(([e]) => e), ...MORE]) {
      assert.equal(isCalendarEvent(event, hostHasZone), systemdSays(event), JSON.stringify(event));
    }
  });

  it('refuses cron syntax, with the same schedule in systemd words when it translates plainly', () => {
    assert.equal(fromCron('0 * * * *'), '*-*-* *:0');
    assert.equal(fromCron('30 2 * * *'), '*-*-* 2:30');
    assert.equal(fromCron('*/15 * * * 1-5'), 'Mon..Fri *-*-* *:0/15');
    assert.equal(fromCron('0 3 1 * 0'), null, 'cron takes day of month or weekday, systemd both');
    assert.equal(fromCron('hourly'), null);
    assert.equal(
      scheduleProblem('0 * * * *', hostHasZone),
      '"0 * * * *" is cron syntax; systemd timers take a calendar event (systemd.time(7)): the same schedule is "*-*-* *:0"',
    );
    assert.equal(
      scheduleProblem('every hour', hostHasZone),
      '"every hour" is not a systemd calendar event (systemd.time(7)): for example hourly, daily, *:0/15, Mon..Fri 02:30 or *-*-* 02:30; systemd-analyze calendar checks one',
    );
    assert.equal(scheduleProblem('*-*-* 02:30', hostHasZone), null);
  });
});

describe('timeSpanSeconds: randomized-delay, a systemd time span', () => {
  const spans: readonly (readonly [string, number | null])[] = [
    ['5min', 300],
    ['90s', 90],
    ['300', 300],
    ['1h 30min', 5400],
    ['1h30min', 5400],
    ['2 hours', 7200],
    ['1d', 86400],
    ['0', 0],
    ['5 minutes please', null],
    ['5min\n30s', null],
    ['-5min', null],
    ['1.5h', null],
    ['5 fortnights', null],
    ['', null],
    ['min', null],
  ];
  for (const [text, seconds] of spans) {
    it(`${JSON.stringify(text)}: ${seconds ?? 'refused'}`, () =>
      assert.equal(timeSpanSeconds(text), seconds));
  }

  const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
  it('agrees with systemd-analyze timespan on whatever it takes', {
    skip: !analyze && 'no systemd-analyze',
  }, () => {
    for (const [text, seconds] of spans) {
      if (seconds === null) continue;
      const r = spawnSync('systemd-analyze', ['timespan', text], { encoding: 'utf8' });
      const us = /μs: (\d+)/.exec(r.stdout)?.[1];
      assert.equal(Number(us) / 1e6, seconds, `${text}: ${r.stdout}${r.stderr}`);
    }
  });
});
