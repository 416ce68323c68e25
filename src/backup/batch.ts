/**
 * backup-pve does its steps once for all guests, for speed, and must still keep one guest's failure
 * its own: this is the fallback that every batched step (snapshot, list, holds, metadata) shares.
 */
import { errorMessage } from '../errors.ts';
import type { BackupLog } from './context.ts';

/**
 * Runs action once for all items; when that fails, each once per item, so that the item at fault
 * fails alone and the others go on. The per-item errors are returned by index (none: all went
 * through). Only for actions that may be repeated: each one here is idempotent or all-or-nothing.
 */
export async function batchThenEach<T>(
  items: readonly T[],
  action: (items: readonly T[]) => Promise<void>,
  log: BackupLog,
  what: string,
  each: (item: T) => Promise<void> = (item) => action([item]),
  retrySingle = false,
): Promise<Map<number, string>> {
  const errors = new Map<number, string>();
  if (items.length === 0) return errors;
  try {
    await action(items);
    return errors;
  } catch (err) {
    if (items.length === 1 && !retrySingle) {
      errors.set(0, errorMessage(err));
      return errors;
    }
    log.debug(
      `${what} for ${items.length} guest(s) at once failed (${errorMessage(err)}); one guest at a time`,
    );
  }
  for (const [i, item] of items.entries()) {
    try {
      await each(item);
    } catch (err) {
      errors.set(i, errorMessage(err));
    }
  }
  return errors;
}
