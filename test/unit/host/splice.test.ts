/**
 * The transfer path without node: the sender's stdout is the receiver's stdin, the size comes
 * from the sender's own count (zfs/counted-send.ts). Local processes stand in for zfs and ssh; the
 * sender is one process that writes the stream, as `zfs send` is.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { liveChildren } from '../../../src/host/children.ts';
import type { Host } from '../../../src/host/host.ts';
import { LocalHost } from '../../../src/host/local.ts';
import { PipeError } from '../../../src/host/pipe.ts';
import { splice } from '../../../src/host/splice.ts';
import { countedSendArgv, streamBytes } from '../../../src/zfs/counted-send.ts';

const local = new LocalHost('testhost');

/** What this process's main thread has read so far: where node reads a child's output. */
function ownReads(): number {
  const io = readFileSync(`/proc/${process.pid}/task/${process.pid}/io`, 'utf8');
  return Number(/^rchar: (\d+)$/m.exec(io)?.[1]);
}

describe('splice: a stream from one command into another through the kernel', () => {
  it('moves every byte without node reading one, and reports the size the sender counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zbm-splice-'));
    try {
      const out = join(dir, 'out');
      const before = ownReads();
      const res = await splice(
        { host: local, argv: countedSendArgv(['head', '-c', '33554432', '/dev/urandom']) },
        { host: local, argv: ['sh', '-c', 'cat > "$1"', 'sh', out] },
        { measure: streamBytes },
      );
      const read = ownReads() - before;
      assert.equal(res.bytes, 32 * 1024 * 1024);
      assert.equal(readFileSync(out).length, 32 * 1024 * 1024);
      // Through node, this would be 32 MiB and more: what is left is the children's stderr.
      assert.ok(read < 1024 * 1024, `node read ${read} bytes during a 32 MiB transfer`);
      assert.equal(liveChildren(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("gives a local receiver a pipe as its stdin, and a remote one's ssh client node's socketpair", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zbm-splice-'));
    // Runs here, but zbm takes it for another host: its receiver is the ssh client.
    const remote: Host = { name: 'remote', isLocal: false, invocation: local.invocation, close: local.close };
    try {
      const kinds: string[] = [];
      for (const to of [local, remote]) {
        const out = join(dir, to.name);
        const res = await splice(
          { host: local, argv: countedSendArgv(['head', '-c', '300000', '/dev/urandom']) },
          { host: to, argv: ['sh', '-c', 'stat -L -c %F /dev/stdin > "$1.kind"; cat > "$1"', 'sh', out] },
          { measure: streamBytes },
        );
        assert.equal(res.bytes, 300_000);
        assert.equal(readFileSync(out).length, 300_000);
        kinds.push(readFileSync(`${out}.kind`, 'utf8').trim());
      }
      assert.deepEqual(kinds, ['fifo', 'socket']);
      assert.equal(liveChildren(), 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows progress read from /proc while the stream runs, and tells when the sender is done', async () => {
    const seen: number[] = [];
    let endedAt = -1;
    const res = await splice(
      {
        host: local,
        // The stream first, then the sender lingers: progress must see the bytes before it ends.
        argv: countedSendArgv(['sh', '-c', 'head -c 1000000 /dev/zero; sleep 1.2']),
      },
      { host: local, argv: ['sh', '-c', 'cat > /dev/null; sleep 0.3'] },
      {
        measure: streamBytes,
        onProgress: (b) => seen.push(b),
        onStreamEnd: () => {
          endedAt = seen.length;
        },
      },
    );
    assert.equal(res.bytes, 1_000_000);
    assert.ok(seen.includes(1_000_000), `progress: ${seen.join(', ')}`);
    assert.ok(endedAt >= 0, 'the end of the stream was told');
    assert.equal(liveChildren(), 0);
  });

  it("a failing sender's words reach the error without the counting script's, and the receiver is stopped", async () => {
    await assert.rejects(
      splice(
        {
          host: local,
          argv: countedSendArgv(['sh', '-c', 'echo "cannot send tank/a@1: dataset is busy" >&2; exit 1']),
        },
        { host: local, argv: ['sh', '-c', 'cat > /dev/null; sleep 599'] },
        { measure: streamBytes },
      ),
      (err: unknown) => {
        assert.ok(err instanceof PipeError);
        assert.equal(err.fromStderr, 'cannot send tank/a@1: dataset is busy\n');
        assert.match(err.message, /sender: .*cannot send tank\/a@1: dataset is busy/);
        return true;
      },
    );
    assert.equal(liveChildren(), 0);
  });

  it('a receiver that fails stops an endless sender, and both sides are reported, the receiver first', async () => {
    await assert.rejects(
      splice(
        { host: local, argv: countedSendArgv(['yes']) },
        {
          host: local,
          argv: ['sh', '-c', 'head -c 10 >/dev/null; echo "cannot receive: out of space" >&2; exit 3'],
        },
        { measure: streamBytes },
      ),
      (err: unknown) => {
        assert.ok(err instanceof PipeError);
        assert.match(
          err.message,
          /^transfer from testhost to testhost failed after \d+ bytes: receiver: .*out of space/,
        );
        assert.equal(err.toExit.code, 3);
        return true;
      },
    );
    assert.equal(liveChildren(), 0);
  });
});

describe('streamBytes: the size a counted send reports', () => {
  it("subtracts what the send said on stderr after the marker, not what came before it (ssh's words)", () => {
    const stderr =
      'Warning: Permanently added 192.0.2.10 (ED25519) to the list of known hosts.\n' +
      'zbm-send: start\n' +
      'warning: cannot send tank/a@2: dataset is busy\n' +
      'zbm-send: wchar 1048640\n';
    assert.deepEqual(streamBytes(stderr), {
      bytes: 1048640 - 'zbm-send: start\n'.length - 'warning: cannot send tank/a@2: dataset is busy\n'.length,
      stderr:
        'Warning: Permanently added 192.0.2.10 (ED25519) to the list of known hosts.\n' +
        'warning: cannot send tank/a@2: dataset is busy\n',
    });
  });

  it('has no size when the total is missing (the shell was killed), and keeps the words', () => {
    assert.deepEqual(streamBytes('zbm-send: start\ncannot send: Broken pipe\n'), {
      bytes: null,
      stderr: 'cannot send: Broken pipe\n',
    });
    assert.deepEqual(streamBytes('ssh: connect to host b port 22: Connection refused\n'), {
      bytes: null,
      stderr: 'ssh: connect to host b port 22: Connection refused\n',
    });
  });
});
