import { forEachLimited, Slots } from '../concurrency.ts';

/** Receives that may still be committing beside the running streams. */
const COMMITTING = 3;
/** Transfers on one ssh connection: below sshd's default MaxSessions (10), with room for the run's other commands. */
const MAX_TRANSFERS = 8;

/**
 * How many transfers run at once for `jobs` streams at a time: a receive that has its whole stream
 * and is still committing (onStreamsEnd was called) leaves its stream's place to the next one.
 */
function transfersAtOnce(jobs: number): number {
  return Math.min(MAX_TRANSFERS, jobs + COMMITTING);
}

/**
 * Waits for one of the run's stream places and returns the call that gives it back, to be passed
 * to syncDataset as onStreamsEnd: a receive still committing after its stream (most of a small
 * increment's time, a transaction group) no longer holds its stream's place. A second call returns
 * the same place. The loop gives the place back anyway when the body ends, thrown or not.
 */
export type TakeStream = () => Promise<() => void>;

export interface SendLoopOptions<T, R> {
  /** Streams at a time (--jobs; 1: one after the other). */
  readonly jobs: number;
  /**
   * The result of an item whose body threw, called at once, while the item still holds its stream
   * place: the failure is the item's own, the other items go on.
   */
  readonly failed: (item: T, error: unknown, index: number) => R;
  /** Called as each item ends, its stream place given back. */
  readonly settled?: (item: T, result: R, index: number) => void;
}

/**
 * Runs body on every transfer, `jobs` streams at a time, and returns the results in the order of
 * items, whatever order the transfers end in. The body takes its stream place itself when it is
 * ready to send, so that whatever it must hold first (a dataset lock) is held before the place.
 */
export async function sendEach<T, R>(
  items: readonly T[],
  opts: SendLoopOptions<T, R>,
  body: (item: T, takeStream: TakeStream, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  const streams = new Slots(opts.jobs);
  await forEachLimited(items, transfersAtOnce(opts.jobs), async (item, i) => {
    let asked: Promise<() => void> | undefined;
    let release: (() => void) | undefined;
    const takeStream: TakeStream = () => {
      asked ??= streams.acquire().then((r) => {
        release = r;
        return r;
      });
      return asked;
    };
    try {
      results[i] = await body(item, takeStream, i);
    } catch (error) {
      results[i] = opts.failed(item, error, i);
    } finally {
      // A place still awaited when the body threw is given back as soon as it comes.
      if (release) release();
      else if (asked) (await asked)();
    }
    opts.settled?.(item, results[i] as R, i);
  });
  return results;
}
