/**
 * The pipes zbm gives a local `zfs receive` as its stdin: real pipes (node's own are socketpairs),
 * each its own, with no name left behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  fstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';
import { openPipe } from '../../../src/host/fifo.ts';

describe('openPipe: a kernel pipe for two children', () => {
  it('gives each caller its own pipe, even many at once, and leaves no FIFO behind', async () => {
    const pipes = await Promise.all(Array.from({ length: 11 }, () => openPipe()));
    try {
      const buf = Buffer.alloc(16);
      pipes.forEach((p, i) => {
        assert.ok(p, 'mkfifo is on every Debian');
        assert.ok(fstatSync(p.read).isFIFO() && fstatSync(p.write).isFIFO(), 'a pipe, not a socket');
        assert.match(readlinkSync(`/proc/self/fd/${p.read}`), / \(deleted\)$/, 'its name is gone');
        writeSync(p.write, `pipe ${i}`);
      });
      pipes.forEach((p, i) => {
        assert.ok(p);
        const n = readSync(p.read, buf, 0, buf.length, null);
        assert.equal(buf.subarray(0, n).toString(), `pipe ${i}`, 'each pipe carries only its own bytes');
      });
      // 11 pipes: two batches of FIFOs were made, the first 11 opened and unlinked; what is left is
      // the rest of the second batch, unopened, in a directory of this process alone.
      const first = pipes[0];
      assert.ok(first);
      const dir = dirname(readlinkSync(`/proc/self/fd/${first.read}`));
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.deepEqual(
        readdirSync(dir).sort((a, b) => Number(a) - Number(b)),
        ['11', '12', '13', '14', '15'],
      );
    } finally {
      for (const p of pipes) {
        if (!p) continue;
        closeSync(p.read);
        closeSync(p.write);
      }
    }
  });

  it('a pipe ends for its reader when its writer is closed', async () => {
    const p = await openPipe();
    assert.ok(p);
    writeSync(p.write, 'last');
    closeSync(p.write);
    assert.equal(readFileSync(p.read, 'utf8'), 'last', 'read to the end of the stream, then EOF');
    closeSync(p.read);
  });

  it('is null where no FIFO can be made (no mkfifo, or no writable $TMPDIR): the caller keeps its socketpair', () => {
    for (const [path, tmp] of [
      ['/nonexistent', tmpdir()],
      [process.env.PATH ?? '', '/proc/nonexistent'],
    ]) {
      // $TMPDIR is set once tsx has started: tsx itself needs a writable one.
      const script = `import { openPipe } from './src/host/fifo.ts';
        process.env.PATH = ${JSON.stringify(path)};
        process.env.TMPDIR = ${JSON.stringify(tmp)};
        console.log(JSON.stringify([await openPipe(), await openPipe()]));`;
      const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(out.trim(), '[null,null]', `PATH=${path} TMPDIR=${tmp}`);
    }
  });
});
