import { InvalidArgumentError } from 'commander';
import { errorMessage } from '../errors.ts';
import { parseByteSize } from '../host/rate.ts';
import { parseSshDestination } from '../host/ssh.ts';
import { checkName, checkSnapshotShortName } from '../zfs/names.ts';

/** Turns a validator that throws into a commander argument parser (a usage error, exit 2). */
function parser<T>(check: (value: string) => T): (value: string) => T {
  return (value: string) => {
    try {
      return check(value);
    } catch (err) {
      throw new InvalidArgumentError(errorMessage(err));
    }
  };
}

export const dataset = parser((v) => checkName(v, 'dataset', 'dataset name'));

export const prefix = parser((v) => checkSnapshotShortName(v, 'snapshot prefix'));

export const remote = parser(parseSshDestination);

export const count = parser((v) => {
  if (!/^\d+$/.test(v)) throw new Error('expected a whole number (0 or more)');
  return Number(v);
});

export const positiveNumber = parser((v) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new Error('expected a number greater than 0');
  return n;
});

export const byteRate = parser((v) => {
  const n = parseByteSize(v);
  if (n === null) throw new Error('expected bytes per second such as 50M, 800K or 1G');
  return n;
});

export const absolutePath = parser((v) => {
  if (!v.startsWith('/') || v.includes('\0') || v.includes('\n'))
    throw new Error('expected an absolute path');
  return v.replace(/\/+$/, '') || '/';
});

/** A comma-separated list of VMIDs, accumulated over repeated flags. */
export function vmids(value: string, previous: number[] = []): number[] {
  const ids = value.split(',').map((s) => s.trim());
  for (const id of ids) {
    if (!/^[1-9]\d{2,8}$/.test(id)) {
      throw new InvalidArgumentError(`${JSON.stringify(id)} is not a VMID (a number from 100)`);
    }
  }
  return [...previous, ...ids.map(Number)];
}
