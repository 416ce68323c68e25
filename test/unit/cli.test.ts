import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Invocation, parseCommandLine } from '../../src/cli/program.ts';

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

  it('rejects a bad flag or value with one line naming it and exit code 2', () => {
    const bad = [
      ['verify', '--local-zfs-root', 'main/bak', '--frobnicate'],
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
      ['verify', '--local-zfs-root', 'main', '--max-age-days', '0'],
      ['verify', '--local-zfs-root', 'main', '--prefix', 'a/b'],
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
    assert.match(parse(bad[0] ?? []).err, /--frobnicate/);
    assert.match(parse(bad[1] ?? []).err, /--keep-last.*two/);
    assert.match(parse(bad.at(-2) ?? []).err, /--jobs.*from 1 to 8/);
    const jobs = parse([...ORIGINAL.replicate.split(' '), '--jobs', '4']).result as Invocation;
    assert.equal(jobs.options.jobs, 4);
  });
});
