import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forEachLimited, Slots } from '../../src/concurrency.ts';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('forEachLimited', () => {
  it('runs at most limit calls at a time, every item once, and rethrows the first error at the end', async () => {
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    await assert.rejects(
      forEachLimited([1, 2, 3, 4, 5, 6], 2, async (n) => {
        most = Math.max(most, ++running);
        await tick();
        seen.push(n);
        running--;
        if (n === 2) throw new Error('two');
      }),
      /two/,
    );
    assert.equal(most, 2);
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [1, 2, 3, 4, 5, 6],
    );
  });
});

describe('Slots', () => {
  it('lets n holders in, the others in the order they asked, as places are released', async () => {
    const slots = new Slots(2);
    const order: string[] = [];
    const a = await slots.acquire();
    const b = await slots.acquire();
    const waiting = ['c', 'd'].map(async (name) => {
      const release = await slots.acquire();
      order.push(name);
      return release;
    });
    await tick();
    assert.deepEqual(order, [], 'both places are taken');
    a();
    await tick();
    assert.deepEqual(order, ['c']);
    b();
    const [c, d] = await Promise.all(waiting);
    assert.deepEqual(order, ['c', 'd']);
    c?.();
    d?.();
  });

  it('a release called twice frees one place only', async () => {
    const slots = new Slots(1);
    const release = await slots.acquire();
    release();
    release();
    const first = await slots.acquire();
    let second = false;
    void slots.acquire().then(() => {
      second = true;
    });
    await tick();
    assert.equal(second, false, 'the second release gave no extra place');
    first();
    await tick();
    assert.equal(second, true);
  });
});
