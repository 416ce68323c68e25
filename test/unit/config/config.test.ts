import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandOptionSpecs, parseCommandLine } from '../../../src/cli/program.ts';
import { ConfigError, parseConfig } from '../../../src/config/config.ts';
import { unitsFor } from '../../../src/config/units.ts';
import { BACKUP_PVE } from '../../lab/commands.ts';

const specs = commandOptionSpecs();
const parse = (text: string) => parseConfig(text, '/etc/zbm/zbm.yaml', specs);
const problems = (text: string): string[] => {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  assert.fail('expected a ConfigError');
};

const GOOD = `
defaults:
  prefix: bak-zbm-
  lock-wait: 60
notify:
  mail: [root@localhost, admin@example.com]
  webhook: https://ntfy.example.com/zbm
  on: failure
jobs:
  backup:
    command: backup-pve
    schedule: hourly
    remote: zbm-dest
    local-zfs-root: rpool/data
    remote-zfs-root: main/bak-zbm
    remote-metadata-dir: /root/backups_metadata
    yes: true
  verify:
    command: verify
    schedule: "*-*-* 06:00"
    local-zfs-root: main/bak-zbm
    max-age-days: 1
    min-snapshots: 20
    json: false
`;

describe('config file', () => {
  it('turns each job into the command line it stands for, with defaults and notify for the commands that have them', () => {
    const config = parse(GOOD);
    const backup = config.jobs.find((j) => j.name === 'backup');
    assert.deepEqual(backup?.argv, [
      'backup-pve',
      '--remote',
      'zbm-dest',
      '--prefix',
      'bak-zbm-',
      '--local-zfs-root',
      'rpool/data',
      '--remote-zfs-root',
      'main/bak-zbm',
      '--remote-metadata-dir',
      '/root/backups_metadata',
      '--yes',
      '--lock-wait',
      '60',
      '--notify-mail',
      'root@localhost',
      '--notify-mail',
      'admin@example.com',
      '--notify-webhook',
      'https://ntfy.example.com/zbm',
      '--notify-on',
      'failure',
    ]);
    assert.equal(backup?.schedule, 'hourly');
    // verify has no --lock-wait: the default does not reach it, and false flags are left out.
    const verify = config.jobs.find((j) => j.name === 'verify');
    assert.ok(!verify?.argv.includes('--lock-wait'));
    assert.ok(!verify?.argv.includes('--json'));
    assert.equal(verify?.schedule, '*-*-* 06:00');
    // A negated flag is a key of its own, true to give it.
    const noPool = parse(
      'jobs:\n  verify:\n    command: verify\n    local-zfs-root: main/bak-zbm\n    no-pool-checks: true\n',
    );
    assert.deepEqual(noPool.jobs[0]?.argv, [
      'verify',
      '--local-zfs-root',
      'main/bak-zbm',
      '--no-pool-checks',
    ]);
  });

  it('gives the same options as the flags typed by hand, and later flags override the file', () => {
    const backup = parse(GOOD).jobs.find((j) => j.name === 'backup');
    const io = { writeOut: () => {}, writeErr: () => {} };
    const fromFile = parseCommandLine([...(backup?.argv ?? []), '--lock-wait', '5'], io);
    const typed = parseCommandLine(
      [
        ...BACKUP_PVE,
        '--lock-wait',
        '5',
        '--notify-mail',
        'root@localhost',
        '--notify-mail',
        'admin@example.com',
        '--notify-webhook',
        'https://ntfy.example.com/zbm',
        '--notify-on',
        'failure',
      ],
      io,
    );
    assert.deepEqual(fromFile, typed);
    assert.equal(typeof fromFile === 'object' && fromFile.options.lockWait, 5);
  });

  it('names the line and the key of every problem at once', () => {
    assert.deepEqual(
      problems(`jobs:
  backup:
    command: backup-pve
    remote: "zbm dest"
    local-zfs-root: rpool/data
    keep-lastt: 2
  p2:
    command: prune
    local-zfs-root: main/bak-zbm
    keep-last: many
    yes: 1
  x:
    command: destroy-all
  "bad name!":
    command: prune
`),
      [
        '/etc/zbm/zbm.yaml:2: jobs.backup: missing remote-zfs-root (zbm backup-pve needs --remote-zfs-root)',
        '/etc/zbm/zbm.yaml:2: jobs.backup: missing remote-metadata-dir (zbm backup-pve needs --remote-metadata-dir)',
        '/etc/zbm/zbm.yaml:4: jobs.backup.remote: invalid remote "zbm dest": expected an ssh destination such as "backup1" or "root@backup1"',
        '/etc/zbm/zbm.yaml:6: jobs.backup.keep-lastt: zbm backup-pve has no option --keep-lastt',
        '/etc/zbm/zbm.yaml:10: jobs.p2.keep-last: expected a whole number (0 or more)',
        '/etc/zbm/zbm.yaml:11: jobs.p2.yes: expected true or false',
        '/etc/zbm/zbm.yaml:13: jobs.x.command: expected one of backup-pve, replicate, prune, verify, drill, status, not "destroy-all"',
        '/etc/zbm/zbm.yaml:14: jobs.bad name!: a job name is letters, digits, - and _ (it names a systemd unit)',
      ],
    );
  });

  it('reports YAML syntax errors on one line each, at the line to fix', () => {
    // An unclosed bracket or quote is noticed at the end of the file: the line named is where it opened.
    assert.deepEqual(problems('jobs: [a\n'), [
      '/etc/zbm/zbm.yaml:1: a [ opened on this line is never closed',
    ]);
    assert.deepEqual(problems('jobs:\n  backup:\n    schedule: "hourly\n    remote: x\n\n'), [
      '/etc/zbm/zbm.yaml:3: a quote opened on this line is never closed',
    ]);
    assert.deepEqual(problems('jobs:\n\tbackup:\n    command: prune\n'), [
      '/etc/zbm/zbm.yaml:2: a tab in the indentation: YAML indents with spaces',
    ]);
    assert.deepEqual(problems('jobs:\n  backup:\n    command: prune\n   remote: x\n'), [
      '/etc/zbm/zbm.yaml:4: All mapping items must start at the same column',
    ]);
    assert.deepEqual(problems('jobs:\n  a:\n    command: prune\n  a:\n    command: prune\n'), [
      '/etc/zbm/zbm.yaml:4: a key given twice in the same section',
    ]);
    assert.deepEqual(problems('jobs:\n  backup:\n    command backup-pve\n    remote: x\n'), [
      '/etc/zbm/zbm.yaml:3: a key without its colon: write key: value',
    ]);
    // An unquoted * is YAML's alias, not the start of a schedule.
    assert.deepEqual(
      problems('jobs:\n  a:\n    command: prune\n    local-zfs-root: m\n    schedule: *:20\n'),
      [
        '/etc/zbm/zbm.yaml:5: jobs.a.schedule: a value that starts with * is a YAML alias: put it in quotes, "*:20"',
      ],
    );
  });

  it('validates schedule: as systemd does, and refuses cron syntax with its OnCalendar form', () => {
    const job = (schedule: string) =>
      `jobs:\n  p:\n    command: prune\n    local-zfs-root: main/bak-zbm\n    schedule: ${schedule}\n`;
    assert.deepEqual(problems(job('every hour')), [
      '/etc/zbm/zbm.yaml:5: jobs.p.schedule: "every hour" is not a systemd calendar event (systemd.time(7)): for example hourly, daily, *:0/15, Mon..Fri 02:30 or *-*-* 02:30; systemd-analyze calendar checks one',
    ]);
    assert.deepEqual(problems(job('"0 * * * *"')), [
      '/etc/zbm/zbm.yaml:5: jobs.p.schedule: "0 * * * *" is cron syntax; systemd timers take a calendar event (systemd.time(7)): the same schedule is "*-*-* *:0"',
    ]);
    for (const ok of ['hourly', '"*:40"', '"Mon..Fri *-*-* 02:30"', '"*-*-* 07:00 UTC"'])
      assert.equal(parse(job(ok)).jobs[0]?.schedule, ok.replace(/"/g, ''));
  });

  it('rejects unknown sections and keys, and a file without jobs', () => {
    assert.deepEqual(problems('job:\n  a: 1\n'), [
      '/etc/zbm/zbm.yaml:1: job: unknown section (expected defaults, notify, jobs)',
      '/etc/zbm/zbm.yaml:1: jobs: missing: the file has no `jobs:` section',
    ]);
    assert.deepEqual(problems('notify:\n  pager: x\ndefaults:\n  colour: red\njobs: {}\n'), [
      '/etc/zbm/zbm.yaml:2: notify.pager: unknown key (expected mail, webhook, on)',
      '/etc/zbm/zbm.yaml:4: defaults.colour: no command has this option',
    ]);
    assert.deepEqual(problems('jobs:\n  a:\n    command: prune\n    local-zfs-root: "x; rm -rf /"\n'), [
      '/etc/zbm/zbm.yaml:4: jobs.a.local-zfs-root: invalid dataset name "x; rm -rf /": ";" is not allowed in ZFS names',
    ]);
  });
});

describe('systemd units', () => {
  it('a oneshot service (niced, idle I/O) and a persistent timer per scheduled job; none without a schedule', () => {
    const [service, timer] = unitsFor(
      { name: 'backup', command: 'backup-pve', argv: [], schedule: 'hourly', randomizedDelay: null, line: 1 },
      '/usr/bin/zbm',
      '/etc/pve/zbm.yaml',
    );
    assert.equal(service?.name, 'zbm-backup.service');
    assert.match(service?.text ?? '', /^# Generated by zbm install-timers/);
    assert.match(
      service?.text ?? '',
      /\nType=oneshot\nExecStart=\/usr\/bin\/zbm run --config \/etc\/pve\/zbm.yaml backup\n/,
    );
    assert.match(service?.text ?? '', /\nNice=10\nIOSchedulingClass=idle\n/);
    assert.equal(timer?.name, 'zbm-backup.timer');
    assert.match(timer?.text ?? '', /\nOnCalendar=hourly\nPersistent=true\nAccuracySec=1min\n/);
    assert.doesNotMatch(timer?.text ?? '', /Random/);
    assert.deepEqual(
      unitsFor(
        { name: 'x', command: 'prune', argv: [], schedule: null, randomizedDelay: null, line: 1 },
        '/z',
        '/c',
      ),
      [],
    );
  });

  it('randomized-delay: each host at its own stable offset within the span, not coalesced again', () => {
    const [, timer] = unitsFor(
      {
        name: 'backup',
        command: 'backup-pve',
        argv: [],
        schedule: 'hourly',
        randomizedDelay: '5min',
        line: 1,
      },
      '/usr/bin/zbm',
      '/etc/pve/zbm.yaml',
    );
    assert.equal(
      timer?.text.slice(timer.text.indexOf('[Timer]')),
      '[Timer]\nOnCalendar=hourly\nPersistent=true\nRandomizedDelaySec=5min\nFixedRandomDelay=yes\nAccuracySec=1s\n\n[Install]\nWantedBy=timers.target\n',
    );
  });
});

describe('randomized-delay in the config file', () => {
  const job = (delay: string, schedule = '    schedule: hourly\n') =>
    `jobs:\n  p:\n    command: prune\n    local-zfs-root: main/bak-zbm\n${schedule}    randomized-delay: ${delay}\n`;

  it('takes a systemd time span, as written', () => {
    const cases: readonly (readonly [string, string])[] = [
      ['5min', '5min'],
      ['"1h 30min"', '1h 30min'],
      ['90s', '90s'],
      ['300', '300'],
    ];
    for (const [given, kept] of cases) assert.equal(parse(job(given)).jobs[0]?.randomizedDelay, kept);
    assert.equal(parse(job('5min')).jobs[0]?.schedule, 'hourly');
    assert.equal(
      parse('jobs:\n  p:\n    command: prune\n    local-zfs-root: main/bak-zbm\n').jobs[0]?.randomizedDelay,
      null,
    );
  });

  it('refuses what is not a time span, or a delay without a schedule', () => {
    assert.deepEqual(problems(job('"5 minutes please"')), [
      '/etc/zbm/zbm.yaml:6: jobs.p.randomized-delay: expected a systemd time span such as 5min, 90s or 1h 30min, not "5 minutes please"',
    ]);
    assert.deepEqual(problems(job('"5min\\nExecStart=/bin/sh"')), [
      '/etc/zbm/zbm.yaml:6: jobs.p.randomized-delay: expected a systemd time span such as 5min, 90s or 1h 30min, not "5min\\nExecStart=/bin/sh"',
    ]);
    assert.deepEqual(problems(job('"5min\\n30s"')), [
      '/etc/zbm/zbm.yaml:6: jobs.p.randomized-delay: expected a systemd time span such as 5min, 90s or 1h 30min, not "5min\\n30s"',
    ]);
    assert.deepEqual(problems(job('true')), [
      '/etc/zbm/zbm.yaml:6: jobs.p.randomized-delay: expected a systemd time span such as 5min, 90s or 1h 30min',
    ]);
    assert.deepEqual(problems(job('5min', '')), [
      '/etc/zbm/zbm.yaml:5: jobs.p.randomized-delay: a randomized delay spreads the timer of a schedule: add schedule:, or remove it',
    ]);
  });
});
