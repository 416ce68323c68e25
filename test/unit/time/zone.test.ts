/**
 * TZ as the C library reads it: zbm's reader against libc itself (`date`, which asks localtime()),
 * for every spelling libc accepts; the spellings it cannot follow exactly are refused, never guessed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { planRetention } from '../../../src/prune/retention.ts';
import { fromWallClock, numericOffset, type ZoneHost, zoneFromTz } from '../../../src/time/zone.ts';
import { parseZpoolStatus } from '../../../src/verify/checks.ts';

const SPELLINGS = [
  'Europe/Berlin',
  ':Europe/Berlin',
  ':/usr/share/zoneinfo/Europe/Berlin',
  '/usr/share/zoneinfo/Australia/Lord_Howe',
  'CET-1CEST,M3.5.0,M10.5.0/3',
  'EST5EDT,M3.2.0,M11.1.0',
  'AEST-10AEDT,M10.1.0,M4.1.0/3',
  'JST-9',
  '<+0530>-5:30',
  'FOO3BAR,J60/2,J300/2',
  'FOO3BAR,59/2,299/2',
  'XXX-3YYY-4,M3.5.0/-1,M10.5.0/25',
  'America/Sao_Paulo',
  'Asia/Kolkata',
  'Pacific/Chatham',
  'America/St_Johns',
  'Africa/Casablanca',
  'Europe/Dublin',
  '',
  ':',
  ':/etc/localtime',
  'EST5EDT',
  'UTC0',
  'Etc/GMT+3',
];

/** Instants around the DST changes of both hemispheres and the year ends, 1960-2060. */
function instants(): number[] {
  const out: number[] = [];
  for (let y = 1960; y <= 2060; y += 7)
    for (const m of [0, 2, 3, 9, 10])
      for (const d of [1, 25, 28, 31])
        for (const h of [0, 1, 2, 3, 23]) out.push(Date.UTC(y, m, d, h, 30) / 1000);
  return out;
}

const gnuDate =
  spawnSync('date', ['-d', '@0', '+%z'], { encoding: 'utf8', env: { TZ: 'UTC0' } }).stdout === '+0000\n';

describe('TZ as libc reads it', () => {
  it('gives the offset and abbreviation localtime() gives, for every spelling', {
    skip: !gnuDate && 'no GNU date here',
  }, () => {
    const times = instants();
    for (const tz of [...SPELLINGS, undefined]) {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
      if (tz !== undefined) env.TZ = tz;
      const libc = execFileSync(
        'sh',
        ['-c', 'for t in "$@"; do date -d "@$t" +%z%Z; done', 'sh', ...times.map(String)],
        {
          env,
          encoding: 'utf8',
        },
      )
        .trim()
        .split('\n');
      const zone = zoneFromTz(tz);
      times.forEach((t, i) => {
        const l = zone.at(t);
        assert.equal(
          `${numericOffset(l.offset)}${l.abbr}`,
          libc[i],
          `TZ=${JSON.stringify(tz)} at ${new Date(t * 1000).toISOString()}`,
        );
      });
    }
  });

  it('names the zone as given, not by another name for it', () => {
    assert.equal(zoneFromTz('Asia/Kolkata').name, 'Asia/Kolkata');
    assert.equal(zoneFromTz('Asia/Calcutta').name, 'Asia/Calcutta');
    assert.equal(zoneFromTz('').name, 'UTC (TZ is empty)');
    assert.equal(zoneFromTz('CET-1CEST,M3.5.0,M10.5.0/3').name, 'CET-1CEST,M3.5.0,M10.5.0/3');
  });

  it('an unset TZ is /etc/localtime, named by the zone it links to; without it, UTC as libc does', () => {
    const berlin = readFileSync('/usr/share/zoneinfo/Europe/Berlin');
    const host = (localtime: Buffer | undefined, link?: string): ZoneHost => ({
      readFile: (p) => (p === '/etc/localtime' ? localtime : undefined),
      realpath: (p) => (p === '/etc/localtime' ? link : p),
      tzdir: '/usr/share/zoneinfo',
    });
    const linked = zoneFromTz(undefined, host(berlin, '/usr/share/zoneinfo/Europe/Berlin'));
    assert.equal(linked.name, 'Europe/Berlin');
    assert.equal(linked.at(Date.UTC(2026, 6, 1) / 1000).abbr, 'CEST');
    assert.equal(zoneFromTz(undefined, host(berlin, '/etc/localtime')).name, '/etc/localtime');
    assert.equal(zoneFromTz(undefined, host(undefined)).name, 'UTC (no /etc/localtime)');
  });

  it('refuses what libc would silently turn into UTC or into borrowed rules', () => {
    assert.throws(() => zoneFromTz('CET-1CEST'), {
      name: 'UsageError',
      message:
        'TZ="CET-1CEST": neither a zone (no file /usr/share/zoneinfo/CET-1CEST) nor a POSIX rule (summer time CEST without the rule for when it starts and ends (such as ,M3.5.0,M10.5.0/3)); set TZ to a zone such as Europe/Berlin (timedatectl list-timezones), or unset it to use /etc/localtime',
    });
    assert.throws(
      () => zoneFromTz('Europe/Berln'),
      /neither a zone \(no file \/usr\/share\/zoneinfo\/Europe\/Berln\) nor a POSIX rule/,
    );
    assert.throws(() => zoneFromTz('/etc/passwd'), /TZ="\/etc\/passwd": \/etc\/passwd is not a zone file/);
    assert.throws(() => zoneFromTz('CET-1CEST,M3.5.0'), /no end rule after the start rule/);
  });

  it('prune periods: two backups on different local days are two days, however TZ spells the zone', () => {
    // 22:30 and 23:30 UTC on January 1st: January 1st and 2nd in Berlin.
    const snaps = [
      { name: 'a', time: Date.UTC(2026, 0, 1, 22, 30) / 1000 },
      { name: 'b', time: Date.UTC(2026, 0, 1, 23, 30) / 1000 },
    ];
    for (const tz of ['Europe/Berlin', ':/usr/share/zoneinfo/Europe/Berlin', 'CET-1CEST,M3.5.0,M10.5.0/3']) {
      const r = planRetention(snaps, { daily: 2 }, tz);
      assert.deepEqual(r.remove, [], tz);
      assert.deepEqual(
        r.keep.map((k) => `${k.name} ${k.period}`),
        ['b 2026-01-02', 'a 2026-01-01'],
        tz,
      );
    }
    // In UTC they are one day: the older goes.
    assert.deepEqual(planRetention(snaps, { daily: 2 }, 'UTC').remove, ['a']);
  });

  it('reads wall-clock times (zpool status, restore --time) in the same zone', () => {
    const berlin = zoneFromTz('Europe/Berlin');
    assert.equal(
      fromWallClock(berlin, Date.UTC(2026, 10, 26, 11, 5, 3) / 1000),
      Date.UTC(2026, 10, 26, 10, 5, 3) / 1000,
    );
    assert.equal(fromWallClock(berlin, Date.UTC(2026, 6, 1, 12) / 1000), Date.UTC(2026, 6, 1, 10) / 1000);
    const p = parseZpoolStatus(
      '  pool: main\n state: ONLINE\n  scan: scrub repaired 0B in 00:00:01 with 0 errors on Thu Nov 26 11:05:03 2026\n',
      berlin,
    );
    assert.equal(p.lastScrub, Date.UTC(2026, 10, 26, 10, 5, 3) / 1000);
  });
});
