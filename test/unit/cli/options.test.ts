/**
 * Each command's Options type is derived from its flags (cli/program.ts): what the type says is
 * always there must be there after parsing, defaults included, so the command needs no fallback.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Invocation, parseCommandLine } from '../../../src/cli/program.ts';

function parse(line: string): Invocation {
  let err = '';
  const r = parseCommandLine(line.split(' '), { writeOut: () => {}, writeErr: (s) => (err += s) });
  assert.notEqual(typeof r, 'number', err);
  return r as Invocation;
}

describe('the options a command receives', () => {
  it('carry every defaulted flag with its default, typed as always present', () => {
    const inv = parse('prune --local-zfs-root main/bak-zbm');
    assert.equal(inv.command, 'prune');
    if (inv.command !== 'prune') return;
    const lockWait: number = inv.options.lockWait;
    const prefix: string = inv.options.prefix;
    assert.deepEqual([lockWait, prefix], [30, 'bak-zbm-']);
    assert.equal(inv.options.keepLast, undefined);
  });

  it('carry serve and install-timers defaults, and --no-start as start', () => {
    const serve = parse('serve --root main/bak-zbm/pve1');
    if (serve.command !== 'serve') assert.fail(serve.command);
    const skew: number = serve.options.clockSkew;
    assert.deepEqual(
      [skew, serve.options.prefix, serve.options.root],
      [300, 'bak-zbm-', 'main/bak-zbm/pve1'],
    );
    const timers = parse('install-timers --no-start');
    if (timers.command !== 'install-timers') assert.fail(timers.command);
    const start: boolean = timers.options.start;
    assert.deepEqual([start, timers.options.unitDir], [false, '/etc/systemd/system']);
    const started = parse('install-timers');
    assert.equal(started.command === 'install-timers' && started.options.start, true);
  });

  it('carry the parsed value of each flag under the key of the Options type', () => {
    const inv = parse(
      'backup-pve --remote root@zbm-dest --local-zfs-root rpool/data --remote-zfs-root main/bak --remote-metadata-dir /m --vmid 100,101 --jobs 2',
    );
    if (inv.command !== 'backup-pve') assert.fail(inv.command);
    const vmid: readonly number[] | undefined = inv.options.vmid;
    assert.deepEqual([vmid, inv.options.jobs, inv.options.keepSource], [[100, 101], 2, 1]);
  });
});
