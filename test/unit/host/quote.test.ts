import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { displayArgv, shellJoin, shellQuote } from '../../../src/host/quote.ts';
import { hostileStrings } from '../../support/hostile.ts';

const dir = mkdtempSync(join(tmpdir(), 'zbm-quote-'));
const marker = join(dir, 'pwned');

const HOSTILE = hostileStrings(marker);

describe('shell quoting', () => {
  it('leaves plain words readable', () => {
    assert.equal(
      shellQuote('rpool/data/vm-100-disk-0@bak-zbm-2026'),
      'rpool/data/vm-100-disk-0@bak-zbm-2026',
    );
    assert.equal(shellJoin(['zfs', 'list', '-H']), 'zfs list -H');
  });

  it('round-trips every hostile string through a real sh -c unchanged, executing nothing', () => {
    // printf prints each argument followed by NUL, so the output shows the words sh saw.
    const line = shellJoin(['printf', '%s\\0', ...HOSTILE]);
    const out = execFileSync('sh', ['-c', line], { encoding: 'utf8' });
    assert.deepEqual(out.split('\0').slice(0, -1), HOSTILE);
    assert.equal(existsSync(marker), false, 'a hostile string executed a command');
  });

  it('round-trips through two shells, as ssh does with its remote command', () => {
    const inner = shellJoin(['printf', '%s\\0', ...HOSTILE]);
    const out = execFileSync('sh', ['-c', shellJoin(['sh', '-c', inner])], { encoding: 'utf8' });
    assert.deepEqual(out.split('\0').slice(0, -1), HOSTILE);
    assert.equal(existsSync(marker), false);
  });

  it('refuses NUL, which no shell word can carry', () => {
    assert.throws(() => shellQuote('a\0b'), /NUL/);
  });
});

describe('displayArgv', () => {
  it("shows zbm's sh wrappers by name and arguments, not by their script", () => {
    const argv = [
      'sh',
      '-c',
      'long script; with "$1" lines\nmore',
      'zbm-lock',
      'f.lock',
      '30',
      'a b',
      'zfs',
      'receive',
      'p/x',
    ];
    assert.equal(displayArgv(argv), "zbm-lock f.lock 30 'a b' zfs receive p/x");
    assert.equal(displayArgv(['zfs', 'list', '-H']), 'zfs list -H');
  });
});
