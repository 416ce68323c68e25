/**
 * Every mistake gets a clear answer: the bundle users run (built here, as `npm run build` builds
 * it), given the bad inputs of a first hour with zbm, answers with one line naming the problem and
 * the fix, and the exit code a script or a monitoring system acts on. No ZFS needed: the PATH
 * lacks zfs, and its ssh is a stand-in that cannot resolve the host.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'zbm-bad-input-'));
const bin = join(dir, 'bin');
const zbm = join(dir, 'zbm.cjs');
const here = hostname();

/** A file in the test's directory, as a relative name from there (the cwd of every run). */
function file(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

const GOOD = `jobs:
  backup:
    command: backup-pve
    schedule: hourly
    remote: zbm-dest
    local-zfs-root: rpool/data
    remote-zfs-root: main/bak-zbm
    remote-metadata-dir: /root/backups_metadata
`;

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** The exact first line on stderr. */
  readonly stderr: string;
  readonly code: number;
  /** The exact first line on stdout, where it matters (verify's status line). */
  readonly stdout?: string;
}

function cases(): Case[] {
  const prune = ['prune', '--local-zfs-root', 'main/bak-zbm', '--keep-last', '2'];
  const calendarHint =
    'for example hourly, daily, *:0/15, Mon..Fri 02:30 or *-*-* 02:30; systemd-analyze calendar checks one';
  return [
    {
      name: 'zfs not installed',
      args: prune,
      stderr: `error: zfs is not installed on ${here} (zfsutils-linux)`,
      code: 1,
    },
    {
      name: 'a host ssh cannot resolve',
      args: ['list-backups', '--remote', 'nosuchhost', '--remote-zfs-root', 'main/bak-zbm'],
      stderr:
        'error: cannot reach nosuchhost over ssh: Could not resolve hostname nosuchhost: Name or service not known',
      code: 1,
    },
    {
      name: 'a misspelled flag',
      args: ['backup-pve', '--remot', 'zbm-dest', '--local-zfs-root', 'rpool/data'],
      stderr: "error: unknown option '--remot', did you mean --remote?",
      code: 2,
    },
    {
      name: 'a misspelled command',
      args: ['bakup-pve'],
      stderr: "error: unknown command 'bakup-pve', did you mean backup-pve?",
      code: 2,
    },
    {
      name: 'required flags missing, all named at once',
      args: ['backup-pve', '--remote', 'zbm-dest'],
      stderr:
        'error: zbm backup-pve needs --local-zfs-root <dataset>, --remote-zfs-root <dataset>, --remote-metadata-dir <path> (see zbm backup-pve --help)',
      code: 2,
    },
    {
      name: 'a bad number',
      args: [...prune, '--keep-last', 'two'],
      stderr: 'error: --keep-last "two": expected a whole number (0 or more)',
      code: 2,
    },
    {
      name: 'a bad rate',
      args: ['restore', '--remote', 'a', '--remote-zfs-root', 'b', '--vmid', '100', '--bwlimit', 'fast'],
      stderr:
        'error: --bwlimit "fast": expected a rate per second: KiB/s as a bare number (50000), or with a unit: 800K, 50M, 1G',
      code: 2,
    },
    {
      name: 'a --remote with a port',
      args: ['replicate', '--remote', 'root@backup1:2222', '--remote-zfs-root', 'a', '--local-zfs-root', 'b'],
      stderr:
        'error: --remote "root@backup1:2222": a port goes in ~/.ssh/config ("Host backup1" with "HostName backup1" and "Port 2222"), then give --remote root@backup1',
      code: 2,
    },
    {
      name: 'a list of guests for restore',
      args: ['restore', '--remote', 'zbm-dest', '--remote-zfs-root', 'main/bak-zbm', '--vmid', '100,101'],
      stderr: 'error: --vmid "100,101": a restore takes one guest: run one zbm restore per VMID',
      code: 2,
    },
    {
      name: 'a mail recipient with a space',
      args: [...prune, '--notify-mail', 'Root Admin'],
      stderr:
        'error: --notify-mail "Root Admin": "Root Admin" is not a mail address such as root@example.com nor a local user such as root',
      code: 2,
    },
    {
      name: 'verify: a usage error is UNKNOWN, with its status line',
      args: ['verify', '--local-zfs-root', 'main/bak-zbm', '--max-age-days', '0'],
      stderr: 'error: --max-age-days "0": expected a number greater than 0',
      stdout: 'ZBM UNKNOWN - --max-age-days "0": expected a number greater than 0',
      code: 3,
    },
    {
      name: 'verify --pve without its remote',
      args: ['verify', '--pve'],
      stderr: 'error: verify --pve needs --remote (the backup server) and --remote-zfs-root',
      stdout: 'ZBM UNKNOWN - verify --pve needs --remote (the backup server) and --remote-zfs-root',
      code: 3,
    },
    {
      name: "verify --pve with the backup server's metadata directory",
      args: [
        'verify',
        '--pve',
        '--remote',
        'zbm-dest',
        '--remote-zfs-root',
        'main/bak-zbm',
        '--local-metadata-dir',
        '/root/backups_metadata',
      ],
      stderr: 'error: --local-metadata-dir goes with --local-zfs-root on the backup server, not with --pve',
      stdout:
        'ZBM UNKNOWN - --local-metadata-dir goes with --local-zfs-root on the backup server, not with --pve',
      code: 3,
    },
    {
      name: 'a metadata directory under both spellings, each another',
      args: [...prune, '--local-metadata-dir', '/srv/a', '--metadata-dir', '/srv/b'],
      stderr: 'error: --metadata-dir is the earlier spelling of the same option: give one of them',
      code: 2,
    },
    ...(existsSync('/etc/pve')
      ? []
      : [
          {
            name: 'verify --pve on a host without /etc/pve',
            args: ['verify', '--pve', '--remote', 'zbm-dest', '--remote-zfs-root', 'main/bak-zbm'],
            stderr: 'error: /etc/pve/.vmlist does not exist: is this a Proxmox VE host?',
            stdout: 'ZBM UNKNOWN - /etc/pve/.vmlist does not exist: is this a Proxmox VE host?',
            code: 3,
          },
        ]),
    {
      name: 'a YAML syntax error, at the line that opened it',
      args: [
        'config',
        'check',
        '--config',
        file('quote.yaml', 'jobs:\n  backup:\n    remote: "zbm-dest\n    yes: true\n'),
      ],
      stderr: `error: ${dir}/quote.yaml:3: a quote opened on this line is never closed`,
      code: 2,
    },
    {
      name: 'a schedule systemd would refuse',
      args: ['config', 'check', '--config', file('every.yaml', GOOD.replace('hourly', 'every hour'))],
      stderr: `error: ${dir}/every.yaml:4: jobs.backup.schedule: "every hour" is not a systemd calendar event (systemd.time(7)): ${calendarHint}`,
      code: 2,
    },
    {
      name: 'a cron schedule',
      args: ['config', 'check', '--config', file('cron.yaml', GOOD.replace('hourly', '"5 * * * *"'))],
      stderr: `error: ${dir}/cron.yaml:4: jobs.backup.schedule: "5 * * * *" is cron syntax; systemd timers take a calendar event (systemd.time(7)): the same schedule is "*-*-* *:5"`,
      code: 2,
    },
    {
      name: 'a config file that does not exist, named relative to the current directory',
      args: ['config', 'check', '--config', 'nope.yaml'],
      stderr: `error: ${dir}/nope.yaml does not exist: check the name (or create it, see /usr/share/doc/zbm/examples/zbm.yaml)`,
      code: 2,
    },
    {
      name: 'ZBM_CONFIG naming a file that does not exist',
      args: ['run', 'backup'],
      env: { ZBM_CONFIG: 'missing.yaml' },
      stderr: `error: ${dir}/missing.yaml does not exist: check the name (or create it, see /usr/share/doc/zbm/examples/zbm.yaml)`,
      code: 2,
    },
    {
      name: 'a job the file does not have',
      args: ['run', 'nightly', '--config', file('good.yaml', GOOD)],
      stderr: `error: ${dir}/good.yaml has no job "nightly" (jobs: backup)`,
      code: 2,
    },
    {
      name: 'ZBM_SSH_RETRIES out of range',
      args: ['list-backups', '--remote', 'nosuchhost', '--remote-zfs-root', 'main/bak-zbm'],
      env: { ZBM_SSH_RETRIES: '9' },
      stderr: 'error: ZBM_SSH_RETRIES="9": expected 0, 1, 2 or 3',
      code: 2,
    },
    {
      name: 'a TZ libc would turn into UTC',
      args: prune,
      env: { TZ: 'CET-1CEST' },
      stderr:
        'error: TZ="CET-1CEST": neither a zone (no file /usr/share/zoneinfo/CET-1CEST) nor a POSIX rule (summer time CEST without the rule for when it starts and ends (such as ,M3.5.0,M10.5.0/3)); set TZ to a zone such as Europe/Berlin (timedatectl list-timezones), or unset it to use /etc/localtime',
      code: 2,
    },
    {
      name: 'zbm serve outside an ssh forced command',
      args: ['serve', '--root', 'main/bak-zbm'],
      stderr:
        'error: zbm serve answers the commands of an ssh client: make it the forced command of the node\'s key in authorized_keys (command="zbm serve --root ...",restrict ssh-ed25519 ...), see /usr/share/doc/zbm/docs/serve.md',
      code: 2,
    },
    {
      name: 'zbm run without a job',
      args: ['run'],
      stderr: "error: missing required argument 'job'",
      code: 2,
    },
    { name: 'no command at all', args: [], stderr: 'Usage: zbm [options] [command]', code: 2 },
  ];
}

describe('bad input: the first line of stderr and the exit code, from the bundle users run', () => {
  before(() => {
    execFileSync(process.execPath, ['scripts/build.mjs', zbm], { stdio: 'inherit' });
    mkdirSync(bin);
    // ssh as it answers for a name DNS does not know (and quietly for `-O exit`).
    writeFileSync(
      join(bin, 'ssh'),
      '#!/bin/sh\nfor a; do [ "$a" = "-O" ] && exit 255; last=$a; done\n' +
        'echo "ssh: Could not resolve hostname nosuchhost: Name or service not known" >&2\nexit 255\n',
    );
    chmodSync(join(bin, 'ssh'), 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of cases()) {
    it(c.name, () => {
      const env: NodeJS.ProcessEnv = {
        PATH: bin,
        HOME: dir,
        ZBM_CODE_CACHE_DIR: join(dir, 'code-cache'),
        ...c.env,
      };
      const r = spawnSync(process.execPath, [zbm, ...c.args], { cwd: dir, env, encoding: 'utf8' });
      const first = (s: string) => s.split('\n')[0] ?? '';
      assert.equal(first(r.stderr), c.stderr, r.stderr);
      assert.equal(r.status, c.code, r.stderr);
      if (c.stdout !== undefined) assert.equal(first(r.stdout), c.stdout, r.stdout);
    });
  }
});
