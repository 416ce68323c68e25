/**
 * The bundle's launcher (scripts/launcher.cjs) runs zbm through V8's code cache. What a user would
 * check: zbm answers the same with or without a cache, a cache is made once and then used, and a
 * cache that is broken, or that someone else could have written, is never run.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';

const dir = mkdtempSync(join(tmpdir(), 'zbm-code-cache-'));
const zbm = join(dir, 'zbm');
const cache = join(dir, 'cache');

function run(env: Record<string, string> = {}): string {
  const r = spawnSync(process.execPath, [zbm, '--version'], {
    env: { PATH: process.env.PATH, ZBM_CODE_CACHE_DIR: cache, ...env },
    encoding: 'utf8',
  });
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  return r.stdout;
}

/** The cache files in the directory, with their inode: a rewrite renames a new file into place. */
function files(): Map<string, number> {
  if (!existsSync(cache)) return new Map();
  return new Map(readdirSync(cache).map((n) => [n, statSync(join(cache, n)).ino]));
}

describe('code cache of the bundle', () => {
  let version = '';
  before(() => {
    execFileSync(process.execPath, ['scripts/build.mjs', zbm], { stdio: 'inherit' });
    version = run({ ZBM_CODE_CACHE: 'off' });
    assert.match(version, /^\d+\.\d+\.\d+\n$/);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => rmSync(cache, { recursive: true, force: true }));

  it('is written by the first run, one file named for the bundle and node, then used as it is', () => {
    assert.equal(run(), version);
    const first = files();
    assert.equal(first.size, 1);
    const [name] = first.keys();
    assert.match(name ?? '', new RegExp(`^code-[0-9a-f]{16}-${process.version}-${process.arch}\\.v8$`));
    assert.equal(statSync(join(cache, name ?? '')).mode & 0o777, 0o644);
    assert.equal(run(), version);
    assert.deepEqual(files(), first, 'a cache V8 accepted is not written again');
  });

  it('a broken cache is rejected and replaced, and zbm answers as without one', () => {
    run();
    const [name] = files().keys();
    writeFileSync(join(cache, name ?? ''), 'not a V8 code cache');
    const broken = files();
    assert.equal(run(), version);
    const replaced = files();
    assert.notDeepEqual(replaced, broken);
    assert.equal(run(), version);
    assert.deepEqual(files(), replaced);
  });

  it('caches of other builds are removed when a new one is written', () => {
    mkdirSync(cache, { mode: 0o755 });
    writeFileSync(join(cache, 'code-0000000000000000-v0.0.0-x64.v8'), 'old build');
    writeFileSync(join(cache, 'unrelated'), 'not ours');
    run();
    const names = [...files().keys()].sort();
    assert.equal(names.length, 2);
    assert.match(names[0] ?? '', new RegExp(`-${process.version}-`));
    assert.equal(names[1], 'unrelated');
  });

  it('a directory others can write is neither read nor written', () => {
    mkdirSync(cache);
    chmodSync(cache, 0o777);
    assert.equal(run(), version);
    assert.deepEqual(files(), new Map());
  });

  it('a cache file that is a symlink is not followed, and its target is left alone', () => {
    run();
    const [name] = files().keys();
    const elsewhere = join(dir, 'elsewhere');
    writeFileSync(elsewhere, 'someone else');
    rmSync(join(cache, name ?? ''));
    symlinkSync(elsewhere, join(cache, name ?? ''));
    assert.equal(run(), version);
    assert.equal(
      lstatSync(join(cache, name ?? '')).isFile(),
      true,
      'the link is replaced by a cache of our own',
    );
    assert.equal(execFileSync('cat', [elsewhere], { encoding: 'utf8' }), 'someone else');
  });

  it('ZBM_CODE_CACHE=off makes no directory and no file', () => {
    assert.equal(run({ ZBM_CODE_CACHE: 'off' }), version);
    assert.equal(existsSync(cache), false);
  });
});
