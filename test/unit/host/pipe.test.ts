import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { liveChildren } from '../../../src/host/children.ts';
import { LocalHost } from '../../../src/host/local.ts';
import { PipeError, pipe } from '../../../src/host/pipe.ts';
import { run } from '../../../src/host/process.ts';
import { RateLimiter } from '../../../src/host/rate.ts';

const local = new LocalHost('testhost');

describe('pipe between two commands', () => {
  it('streams every byte and counts them', async () => {
    const seen: number[] = [];
    const res = await pipe(
      { host: local, argv: ['head', '-c', '3000000', '/dev/zero'] },
      { host: local, argv: ['sh', '-c', 'wc -c > /dev/null'] },
      { onProgress: (b) => seen.push(b) },
    );
    assert.equal(res.bytes, 3_000_000);
    assert.equal(seen.at(-1), 3_000_000);
    assert.equal(liveChildren(), 0);
  });

  it('stops an endless sender when the receiver fails, and reports both sides', async () => {
    await assert.rejects(
      pipe(
        { host: local, argv: ['yes'] },
        {
          host: local,
          argv: ['sh', '-c', 'head -c 10 >/dev/null; echo "cannot receive: out of space" >&2; exit 3'],
        },
      ),
      (err: unknown) => {
        assert.ok(err instanceof PipeError);
        // Cause first: the receiver that failed on its own, then the sender it took down.
        assert.match(
          err.message,
          /^transfer from testhost to testhost failed after \d+ bytes: receiver: on testhost: cannot receive: out of space \(sh, exit code 3\); sender: on testhost: yes was stopped \(SIGTERM\)$/,
        );
        return true;
      },
    );
    assert.equal(liveChildren(), 0);
  });

  it('stops a waiting receiver when the sender fails', async () => {
    await assert.rejects(
      pipe(
        { host: local, argv: ['sh', '-c', 'echo "cannot open dataset" >&2; exit 1'] },
        // Would wait forever for input that never ends if the sender's failure were not noticed.
        { host: local, argv: ['sh', '-c', 'cat >/dev/null; sleep 599'] },
      ),
      (err: unknown) => err instanceof PipeError && /cannot open dataset/.test(err.message),
    );
    assert.equal(liveChildren(), 0);
    // The receiver's own child (sleep) went with it: the whole process group is stopped.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(spawnSync('pgrep', ['-f', 'sleep 599']).status, 1, 'a grandchild outlived the pipe');
  });

  it('reports a command that does not exist', async () => {
    await assert.rejects(
      pipe({ host: local, argv: ['zbm-no-such-command'] }, { host: local, argv: ['cat'] }),
      /sender: zbm-no-such-command is not installed on testhost/,
    );
    assert.equal(liveChildren(), 0);
  });

  it('holds a rate limit', async () => {
    // A lower bound only: at 2 MiB/s the half-second bucket absorbs 1 MiB of the 3 MiB, so the
    // other 2 MiB cannot pass in less than 1 s.
    const limiter = new RateLimiter(2 * 1024 * 1024);
    const t0 = performance.now();
    await pipe(
      { host: local, argv: ['head', '-c', String(3 * 1024 * 1024), '/dev/zero'] },
      { host: local, argv: ['sh', '-c', 'cat >/dev/null'] },
      { limiter },
    );
    assert.ok(performance.now() - t0 >= 950);
  });
});

describe('run', () => {
  it('returns stdout and names the host, command and stderr on failure', async () => {
    assert.equal((await run(local, ['printf', 'a\tb'])).stdout, 'a\tb');
    await assert.rejects(
      run(local, ['sh', '-c', 'echo "dataset does not exist" >&2; exit 1']),
      /: on testhost: dataset does not exist \(sh, exit code 1\)$/,
    );
  });

  it('stops a command that exceeds its time limit', async () => {
    await assert.rejects(run(local, ['sleep', '30'], { timeoutMs: 100 }), /timed out/);
    assert.equal(liveChildren(), 0);
  });
});

describe('pipe: a receiver that has what it needs before the sender is done', () => {
  it('succeeds on the exit codes: the rest of the stream is drained, the sender is not broken', async () => {
    const res = await pipe(
      { host: local, argv: ['sh', '-c', 'head -c 100 /dev/zero; sleep 0.3; head -c 300000 /dev/zero'] },
      { host: local, argv: ['head', '-c', '100'] },
    );
    assert.ok(res.bytes >= 100);
    assert.equal(liveChildren(), 0);
  });
});

describe('pipe: a rate limit slower than the sender', () => {
  it('delivers every byte the sender wrote, long after it exited', async () => {
    // At 64 KiB/s the sender is done within the first second; its last output waits in the pipe for
    // several more, and must not be cut off when the sender's exit is noticed.
    const res = await pipe(
      { host: local, argv: ['head', '-c', '300000', '/dev/zero'] },
      { host: local, argv: ['sh', '-c', 'test "$(wc -c)" -eq 300000'] },
      { limiter: new RateLimiter(64 * 1024) },
    );
    assert.equal(res.bytes, 300_000);
    assert.equal(liveChildren(), 0);
  });
});

describe('pipe: a receiver whose stdin outlives it', () => {
  it('stops the stream at once when the receiver fails, however slowly the sender dies', async () => {
    // Like an ssh client multiplexed over a master: the client dies, but the master holds its
    // stdin and goes on reading. And like a `zfs send` in the kernel, the sender ignores SIGTERM.
    const dir = mkdtempSync(join(tmpdir(), 'zbm-pipe-'));
    const out = join(dir, 'received');
    try {
      await assert.rejects(
        pipe(
          { host: local, argv: ['sh', '-c', 'trap "" TERM; head -c 4194304 /dev/zero'] },
          { host: local, argv: ['sh', '-c', 'exec 3<&0; cat <&3 >"$0" & sleep 0.2; exit 3', out] },
          { limiter: new RateLimiter(512 * 1024) },
        ),
        PipeError,
      );
      // The stream has ended when pipe returns; give the reader left behind a moment to write it out.
      await new Promise((r) => setTimeout(r, 300));
      // What passed before the receiver's exit (a 256 KiB burst and 0.2 s at 512 KiB/s), not the
      // seconds until the sender is killed.
      const got = statSync(out).size;
      assert.ok(got < 1024 * 1024, `${got} bytes reached the receiver after it failed`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
