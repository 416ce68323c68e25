import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchThenEach } from '../../../src/backup/batch.ts';
import type { BackupLog } from '../../../src/backup/context.ts';

function recorder() {
  const lines: string[] = [];
  const log: BackupLog = {
    error: (m) => lines.push(`error: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    info: (m) => lines.push(`info: ${m}`),
    debug: (m) => lines.push(`debug: ${m}`),
  };
  return { lines, log };
}

/** An action over items that fails whenever one of them is in bad, and records each call. */
function action(bad: ReadonlySet<string>) {
  const calls: string[][] = [];
  const run = async (items: readonly string[]) => {
    calls.push([...items]);
    const faulty = items.filter((i) => bad.has(i));
    if (faulty.length > 0) throw new Error(`cannot do ${faulty.join(', ')}`);
  };
  return { calls, run };
}

describe('batchThenEach', () => {
  it('one call for all items when it goes through, and no error', async () => {
    const { log, lines } = recorder();
    const a = action(new Set());
    const errors = await batchThenEach(['a', 'b', 'c'], a.run, log, 'zfs snapshot');
    assert.deepEqual(a.calls, [['a', 'b', 'c']]);
    assert.equal(errors.size, 0);
    assert.deepEqual(lines, []);
  });

  it('after a failed batch, one call per item: only the faulty item has an error, by its index', async () => {
    const { log, lines } = recorder();
    const a = action(new Set(['b']));
    const errors = await batchThenEach(['a', 'b', 'c'], a.run, log, 'zfs snapshot');
    assert.deepEqual(a.calls, [['a', 'b', 'c'], ['a'], ['b'], ['c']]);
    assert.deepEqual([...errors], [[1, 'cannot do b']]);
    assert.deepEqual(lines, [
      'debug: zfs snapshot for 3 guest(s) at once failed (cannot do b); one guest at a time',
    ]);
  });

  it('a lone item that fails is not tried again, unless asked (retrySingle)', async () => {
    const once = action(new Set(['a']));
    const errors = await batchThenEach(['a'], once.run, recorder().log, 'zfs list');
    assert.deepEqual(once.calls, [['a']]);
    assert.deepEqual([...errors], [[0, 'cannot do a']]);

    const twice = action(new Set(['a']));
    const each: string[] = [];
    const retried = await batchThenEach(
      ['a'],
      twice.run,
      recorder().log,
      'writing the configs and manifests',
      async (item) => {
        each.push(item);
      },
      true,
    );
    assert.deepEqual(twice.calls, [['a']]);
    assert.deepEqual(each, ['a'], 'the per-item call is the one given, not the batch action');
    assert.equal(retried.size, 0);
  });

  it('no item: no call', async () => {
    const a = action(new Set());
    const errors = await batchThenEach([], a.run, recorder().log, 'zfs snapshot');
    assert.deepEqual(a.calls, []);
    assert.equal(errors.size, 0);
  });
});
