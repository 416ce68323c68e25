import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorMessage } from '../../../src/errors.ts';
import { sendEach } from '../../../src/transfer/send-loop.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await tick();
};

/** A gate a test opens by hand: what waits on it goes on once it is opened. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open = () => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/** Counts the streams and the transfers under way, and the most of each at one time. */
function meter() {
  const m = { streams: 0, maxStreams: 0, transfers: 0, maxTransfers: 0 };
  return {
    m,
    streamStarts: () => {
      m.maxStreams = Math.max(m.maxStreams, ++m.streams);
    },
    streamEnds: () => {
      m.streams--;
    },
    transferStarts: () => {
      m.maxTransfers = Math.max(m.maxTransfers, ++m.transfers);
    },
    transferEnds: () => {
      m.transfers--;
    },
  };
}

const failedAs = (_: unknown, err: unknown) => `failed: ${errorMessage(err)}`;

describe('sendEach: the send loop of backup-pve and replicate', () => {
  it('runs at most jobs streams at a time, every item once, and returns the results in the order of the items', async () => {
    for (const jobs of [1, 2, 3]) {
      const { m, streamStarts, streamEnds } = meter();
      const items = [5, 1, 4, 2, 3, 1];
      const results = await sendEach(items, { jobs, failed: failedAs }, async (n, takeStream) => {
        await takeStream();
        streamStarts();
        // Later items end first: the results still come back in the order of the items.
        await ticks(n);
        streamEnds();
        return `sent ${n}`;
      });
      assert.deepEqual(
        results,
        items.map((n) => `sent ${n}`),
      );
      assert.equal(m.maxStreams, jobs, `--jobs ${jobs}`);
    }
  });

  it("a failed item is reported in its own place; the other items are all sent, and its stream's place is given back", {
    timeout: 5000,
  }, async () => {
    const sent: number[] = [];
    const results = await sendEach(
      [1, 2, 3, 4],
      { jobs: 1, failed: (n, err, i) => `item ${n} at ${i}: ${errorMessage(err)}` },
      async (n, takeStream) => {
        await takeStream();
        await tick();
        if (n === 2) throw new Error('cannot receive: injected');
        sent.push(n);
        return `sent ${n}`;
      },
    );
    assert.deepEqual(results, ['sent 1', 'item 2 at 1: cannot receive: injected', 'sent 3', 'sent 4']);
    assert.deepEqual(sent, [1, 3, 4]);
  });

  it("gives a thrown item's place back even when it threw while still waiting for it", {
    timeout: 5000,
  }, async () => {
    const first = gate();
    const order: string[] = [];
    const results = await sendEach(
      ['a', 'b', 'c'],
      { jobs: 1, failed: failedAs },
      async (name, takeStream) => {
        if (name === 'a') {
          await takeStream();
          await first.wait;
          return 'sent a';
        }
        if (name === 'b') {
          // Asks for the place (a has it) and gives up before it comes.
          void takeStream();
          first.open();
          throw new Error('gave up');
        }
        await takeStream();
        order.push(name);
        return `sent ${name}`;
      },
    );
    assert.deepEqual(results, ['sent a', 'failed: gave up', 'sent c']);
    assert.deepEqual(order, ['c'], 'c got a place: the one b was waiting for came back');
  });

  it("a receive still committing after its stream leaves the stream's place to the next one, within a bound", async () => {
    // Each item streams, then commits for a while after calling the early release (onStreamsEnd).
    const { m, streamStarts, streamEnds, transferStarts, transferEnds } = meter();
    let committing = 0;
    let startedDuringCommit = 0;
    const items = Array.from({ length: 12 }, (_, i) => i);
    await sendEach(items, { jobs: 1, failed: failedAs }, async (_, takeStream) => {
      transferStarts();
      const streamEnded = await takeStream();
      streamStarts();
      if (committing > 0) startedDuringCommit++;
      await tick();
      streamEnds();
      streamEnded();
      committing++;
      await ticks(6);
      committing--;
      transferEnds();
      return 'ok';
    });
    assert.equal(m.maxStreams, 1, '--jobs 1: one stream at a time');
    assert.ok(startedDuringCommit >= 6, `streams started during a commit: ${startedDuringCommit}`);
    // Bounded all the same: --jobs 1 and three receives committing beside it.
    assert.equal(m.maxTransfers, 4);
  });

  it('never more than 8 transfers at once, whatever --jobs asks (they share one ssh connection)', async () => {
    const { m, transferStarts, transferEnds } = meter();
    await sendEach(
      Array.from({ length: 30 }, (_, i) => i),
      { jobs: 20, failed: failedAs },
      async (_, takeStream) => {
        transferStarts();
        await takeStream();
        await ticks(3);
        transferEnds();
        return 'ok';
      },
    );
    assert.equal(m.maxTransfers, 8);
  });

  it('an item waiting before its stream (for a dataset lock) holds no place: the item that will free it can stream', {
    timeout: 5000,
  }, async () => {
    // a waits for a lock that b frees only once b has streamed; with one stream at a time, a loop
    // that handed out the place before the body would never end.
    const lock = gate();
    const order: string[] = [];
    const results = await sendEach(['a', 'b'], { jobs: 1, failed: failedAs }, async (name, takeStream) => {
      if (name === 'a') await lock.wait;
      await takeStream();
      order.push(name);
      if (name === 'b') lock.open();
      return `sent ${name}`;
    });
    assert.deepEqual(results, ['sent a', 'sent b']);
    assert.deepEqual(order, ['b', 'a']);
  });

  it('an item that never takes a place (skipped) costs none; settled reports each item once, with its result', async () => {
    const settled: string[] = [];
    const results = await sendEach(
      ['skip', 'x', 'broken', 'y'],
      {
        jobs: 1,
        failed: failedAs,
        settled: (name, result, i) => {
          settled.push(`${i} ${name}: ${result}`);
        },
      },
      async (name, takeStream) => {
        if (name === 'skip') return 'skipped';
        await takeStream();
        await tick();
        if (name === 'broken') throw new Error('injected');
        return `sent ${name}`;
      },
    );
    assert.deepEqual(results, ['skipped', 'sent x', 'failed: injected', 'sent y']);
    assert.deepEqual(settled.sort(), [
      '0 skip: skipped',
      '1 x: sent x',
      '2 broken: failed: injected',
      '3 y: sent y',
    ]);
  });

  it('asking twice for a place in one item takes one place', { timeout: 5000 }, async () => {
    // With one place, a second place for the same item would never come.
    const results = await sendEach(['p', 'q'], { jobs: 1, failed: failedAs }, async (name, takeStream) => {
      const [one, two] = await Promise.all([takeStream(), takeStream()]);
      assert.equal(one, two);
      return `sent ${name}`;
    });
    assert.deepEqual(results, ['sent p', 'sent q']);
  });
});
