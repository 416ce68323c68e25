import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Invocation, parseCommandLine } from '../../../src/cli/program.ts';

function parse(line: string[]): { result: Invocation | number; out: string; err: string } {
  let out = '';
  let err = '';
  const result = parseCommandLine(line, { writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  return { result, out, err };
}

const ORIGINAL = {
  'backup-pve':
    'backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y',
  replicate: 'replicate --remote zbm-replica --remote-zfs-root main/bak-zbm --local-zfs-root main/bak-zbm',
  prune:
    'prune --local-zfs-root main/bak-zbm --prefix bak-zbm- --keep-last 2 --keep-hourly 2 --remote zbm-replica --remote-zfs-root main/bak-zbm -y',
  verify: 'verify --local-zfs-root main/bak-zbm --prefix bak-zbm- --max-age-days 1 --min-snapshots 20',
};

describe('command line', () => {
  it("accepts the original design's four commands exactly as written", () => {
    for (const [name, line] of Object.entries(ORIGINAL)) {
      const { result, err } = parse(line.split(' '));
      assert.equal(typeof result, 'object', `${name}: ${err}`);
      assert.equal((result as Invocation).command, name);
    }
    const prune = parse(ORIGINAL.prune.split(' ')).result as Invocation;
    assert.equal(prune.options.keepLast, 2);
    assert.equal(prune.options.keepHourly, 2);
    assert.equal(prune.options.yes, true);
    assert.equal(prune.options.remote, 'zbm-replica');
  });

  it('lists the four commands and the exit codes in --help', () => {
    const { result, out } = parse(['--help']);
    assert.equal(result, 0);
    for (const c of Object.keys(ORIGINAL)) assert.match(out, new RegExp(`^  ${c} `, 'm'));
    assert.match(out, /Exit codes:/);
  });

  it('has --help for every command, naming its flags', () => {
    const { result, out } = parse(['prune', '--help']);
    assert.equal(result, 0);
    for (const f of ['--keep-last', '--keep-yearly', '--remote-zfs-root', '-y, --yes'])
      assert.ok(out.includes(f), f);
  });

  it('rejects a bad flag or value with one line naming it and exit code 2 (3 for verify)', () => {
    const bad = [
      ['prune', '--local-zfs-root', 'main/bak', '--frobnicate'],
      ['prune', '--local-zfs-root', 'main/bak', '--keep-last', 'two'],
      ['prune', '--local-zfs-root', 'main/bak;reboot'],
      [
        'backup-pve',
        '--remote',
        '-oProxyCommand=sh',
        '--local-zfs-root',
        'a',
        '--remote-zfs-root',
        'b',
        '--remote-metadata-dir',
        '/m',
      ],
      [
        'backup-pve',
        '--remote',
        'dest',
        '--local-zfs-root',
        'a',
        '--remote-zfs-root',
        'b',
        '--remote-metadata-dir',
        'relative',
      ],
      ['status', '--local-zfs-root', 'main', '--prefix', 'a/b'],
      ['prune', '--local-zfs-root', 'main', '--prefix', '__'],
      ['prune', '--local-zfs-root', 'main', '--prefix', 'vzdump-'],
      ['replicate', '--remote', 'x'],
      [...ORIGINAL['backup-pve'].split(' '), '--jobs', '0'],
      [...ORIGINAL.replicate.split(' '), '--jobs', '9'],
      ['frobnicate'],
    ];
    for (const line of bad) {
      const { result, err } = parse(line);
      assert.equal(result, 2, line.join(' '));
      assert.equal(err.trim().split('\n').length, 1, `one line for ${line.join(' ')}: ${err}`);
    }
    // verify and drill are monitoring plugins: a usage error is UNKNOWN (3), with its status line on stdout.
    for (const line of [
      ['verify', '--local-zfs-root', 'main', '--max-age-days', '0'],
      ['verify', '--local-zfs-root', 'main/bak', '--frobnicate'],
      ['drill', '--local-zfs-root', 'main/bak', '--sample', '0'],
      ['drill', '--vmid', '100'],
    ]) {
      const { result, out, err } = parse(line);
      assert.equal(result, 3, line.join(' '));
      assert.equal(err.trim().split('\n').length, 1, err);
      assert.match(out, /^ZBM UNKNOWN - \S.*\n$/);
    }
    assert.match(parse(bad[0] ?? []).err, /--frobnicate/);
    assert.match(parse(bad[1] ?? []).err, /--keep-last.*two/);
    assert.match(
      parse(['prune', '--local-zfs-root', 'main', '--prefix', '__']).err,
      /Proxmox names its own snapshots __replicate_/,
    );
    assert.match(parse(bad.at(-2) ?? []).err, /--jobs.*from 1 to 8/);
    const jobs = parse([...ORIGINAL.replicate.split(' '), '--jobs', '4']).result as Invocation;
    assert.equal(jobs.options.jobs, 4);
  });
});

describe('command line: verify of the pool', () => {
  it('checks the pool by default, with a 35-day scrub limit; --no-pool-checks turns it off; a fraction of a day is a limit', () => {
    const options = (extra: string[]) =>
      (parse([...ORIGINAL.verify.split(' '), ...extra]).result as Invocation).options;
    assert.deepEqual([options([]).poolChecks, options([]).maxScrubAgeDays], [true, 35]);
    assert.equal(options(['--no-pool-checks']).poolChecks, false);
    assert.equal(options(['--max-scrub-age-days', '0.0002']).maxScrubAgeDays, 0.0002);
    // --help wraps its lines to the terminal: read it as one.
    const help = parse(['verify', '--help']).out.replace(/\s+/g, ' ');
    assert.match(help, / --no-pool-checks do not check the pool's health nor its scrub age /);
    assert.match(
      help,
      / --max-scrub-age-days <days> the pool's last scrub must be younger than this; a pool never scrubbed is judged by its age \(default: 35\) /,
    );
  });
});

describe('command line: what a new user types wrong', () => {
  it('help is not an error: zbm help and zbm help <command> exit 0 on stdout', () => {
    for (const line of [['help'], ['help', 'run'], ['help', 'backup-pve'], ['backup-pve', '--help']]) {
      const { result, out, err } = parse(line);
      assert.equal(result, 0, line.join(' '));
      assert.match(out, /^Usage: zbm/, line.join(' '));
      assert.equal(err, '');
    }
    assert.match(parse(['help', 'run']).out, /^Usage: zbm run \[options\] <job>/);
    assert.match(parse(['help', 'config', 'check']).out, /^Usage: zbm config check \[options\]/);
    const unknown = parse(['help', 'bakup-pve']);
    assert.equal(unknown.result, 2);
    assert.equal(unknown.err, "error: unknown command 'bakup-pve', did you mean backup-pve?\n");
  });

  it('--help marks the required flags, and its usage line names them', () => {
    const { out } = parse(['backup-pve', '--help']);
    assert.match(
      out,
      /^Usage: zbm backup-pve --remote <host> --local-zfs-root <dataset> --remote-zfs-root <dataset> --remote-metadata-dir <path> \[options\]$/m,
    );
    assert.match(out, /--remote <host> +ssh destination of the backup server \(required\)/);
    assert.doesNotMatch(out, /--prefix <prefix>.*\(required\)/);
  });

  it('reports every missing required flag at once', () => {
    const { result, err } = parse(['backup-pve', '--remote', 'zbm-dest']);
    assert.equal(result, 2);
    assert.equal(
      err,
      'error: zbm backup-pve needs --local-zfs-root <dataset>, --remote-zfs-root <dataset>, --remote-metadata-dir <path> (see zbm backup-pve --help)\n',
    );
  });

  it('reports a misspelled flag as unknown, with the flag it resembles, before any missing one', () => {
    const { result, err } = parse(['backup-pve', '--remot', 'zbm-dest', '--local-zfs-root', 'rpool/data']);
    assert.equal(result, 2);
    assert.equal(err, "error: unknown option '--remot', did you mean --remote?\n");
    assert.equal(parse(['bakup-pve']).err, "error: unknown command 'bakup-pve', did you mean backup-pve?\n");
  });

  it('--bwlimit: a bare number is KiB/s as in vzdump, a unit is a unit', () => {
    const rate = (r: string) =>
      (parse([...ORIGINAL.replicate.split(' '), '--bwlimit', r]).result as Invocation).options.bwlimit;
    assert.equal(rate('50000'), 50_000 * 1024);
    assert.equal(rate('800K'), 800 * 1024);
    assert.equal(rate('50M'), 50 * 1024 * 1024);
    assert.equal(rate('1048576B'), 1_048_576);
    assert.match(parse(['backup-pve', '--help']).out, /a bare number is KiB\/s as in vzdump/);
  });

  it('a --remote with a port points to ~/.ssh/config', () => {
    const { result, err } = parse([
      'replicate',
      '--remote',
      'root@backup1:2222',
      '--remote-zfs-root',
      'a',
      '--local-zfs-root',
      'b',
    ]);
    assert.equal(result, 2);
    assert.match(
      err,
      /a port goes in ~\/\.ssh\/config \("Host backup1" with "HostName backup1" and "Port 2222"\), then give --remote root@backup1/,
    );
  });

  it('a relative --config is taken from the current directory, and ZBM_CONFIG names the file too', () => {
    const check = parse(['config', 'check', '--config', 'packaging/zbm.yaml']).result as Invocation;
    assert.equal(check.options.config, `${process.cwd()}/packaging/zbm.yaml`);
    process.env.ZBM_CONFIG = 'x/zbm.yaml';
    try {
      const run = parse(['run', 'backup']).result as Invocation;
      assert.equal(run.options.config, `${process.cwd()}/x/zbm.yaml`);
    } finally {
      delete process.env.ZBM_CONFIG;
    }
  });

  it('the metadata directory is named after its host everywhere; the earlier spellings still work', () => {
    const restore = 'restore --remote zbm-dest --remote-zfs-root main/bak-zbm --vmid 100';
    for (const flag of ['--remote-metadata-dir', '--metadata-dir']) {
      const r = parse([...restore.split(' '), flag, '/root/backups_metadata']).result as Invocation;
      assert.equal(
        r.options[flag === '--metadata-dir' ? 'metadataDir' : 'remoteMetadataDir'],
        '/root/backups_metadata',
      );
    }
    const here = parse(['list-backups', '--local-zfs-root', 'main/bak-zbm', '--local-metadata-dir', '/m'])
      .result as Invocation;
    assert.equal(here.options.localMetadataDir, '/m');
    // prune and verify: the directory of the backups under --local-zfs-root, whatever their --remote.
    for (const [command, line] of [
      ['prune', ORIGINAL.prune],
      ['verify', ORIGINAL.verify],
    ] as const) {
      for (const flag of ['--local-metadata-dir', '--metadata-dir']) {
        const r = parse([...line.split(' '), flag, '/m']).result as Invocation;
        assert.equal(
          r.options[flag === '--metadata-dir' ? 'metadataDir' : 'localMetadataDir'],
          '/m',
          command,
        );
      }
      assert.match(parse([command, '--help']).out, /--local-metadata-dir <path>/);
      assert.doesNotMatch(parse([command, '--help']).out, /--metadata-dir/, command);
    }
    // The earlier spelling is accepted, not advertised.
    assert.doesNotMatch(parse(['restore', '--help']).out, /--metadata-dir/);
    assert.doesNotMatch(parse(['list-backups', '--help']).out, /--metadata-dir/);
  });

  it('restore takes one guest, and says so for a list', () => {
    const { result, err } = parse(
      'restore --remote zbm-dest --remote-zfs-root main/bak-zbm --vmid 100,101'.split(' '),
    );
    assert.equal(result, 2);
    assert.match(err, /--vmid "100,101": a restore takes one guest: run one zbm restore per VMID/);
  });

  it('alerts and metrics only on the commands that run unattended; -y confirms --force-rollback', () => {
    for (const c of ['backup-pve', 'replicate', 'prune', 'verify'])
      assert.match(parse([c, '--help']).out, /--notify-mail/, c);
    for (const c of ['status', 'list-backups', 'restore'])
      assert.doesNotMatch(parse([c, '--help']).out, /--notify|--prometheus/, c);
    const r = parse([...ORIGINAL.replicate.split(' '), '--force-rollback', '-y']).result as Invocation;
    assert.equal(r.options.yes, true);
  });
});
