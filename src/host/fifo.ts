import { spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A kernel pipe (pipe(2)) for two processes zbm starts, given as their stdin and stdout.
 *
 * node gives a child's stdio a socketpair, not a pipe, and `zfs receive` reads its stream from a
 * socket much slower than from a pipe: in the lab, a 64 MiB pull (`ssh … zfs send` into a local
 * `zfs receive`) took 14.9-15.5 s through a socketpair against 12.6-13.6 s through a pipe; the
 * sending side (`zfs send` into ssh) showed no difference. node has no pipe(2), so the pipe is a
 * FIFO: opened at both ends, then unlinked, which leaves what pipe(2) would have made. The FIFOs
 * are made ahead, several by one `mkfifo`, in a directory only this user can enter, so that a run
 * moving many small increments starts one process for many of them.
 */
export interface PipeFds {
  readonly read: number;
  readonly write: number;
}

const BATCH = 8;

let dir: string | undefined;
const stock: string[] = [];
let made = 0;
let refill: Promise<void> | undefined;
/** mkfifo failed once: the callers use node's socketpair from then on. */
let unavailable = false;

function makeBatch(): Promise<void> {
  if (!dir) {
    let created: string;
    try {
      created = mkdtempSync(join(tmpdir(), 'zbm-fifo-'));
    } catch {
      unavailable = true;
      return Promise.resolve();
    }
    dir = created;
    process.once('exit', () => rmSync(created, { recursive: true, force: true }));
  }
  const into = dir;
  const names = Array.from({ length: BATCH }, () => join(into, String(made++)));
  return new Promise((resolve) => {
    const child = spawn('mkfifo', ['-m', '600', '--', ...names], { stdio: 'ignore' });
    child.on('error', () => {
      unavailable = true;
      resolve();
    });
    child.on('exit', (code) => {
      if (code === 0) stock.push(...names);
      else unavailable = true;
      resolve();
    });
  });
}

/** Opens a fresh pipe; null when no FIFO can be made here (the caller keeps node's socketpair). */
export async function openPipe(): Promise<PipeFds | null> {
  while (stock.length === 0 && !unavailable) {
    refill ??= makeBatch().finally(() => {
      refill = undefined;
    });
    await refill;
  }
  const path = stock.shift();
  if (path === undefined) return null;
  // Opening a FIFO for reading waits for a writer, and for writing waits for a reader: a first
  // descriptor open both ways (Linux never makes that wait) lets both real ends open at once.
  const both = openSync(path, constants.O_RDWR);
  let read: number | undefined;
  try {
    read = openSync(path, constants.O_RDONLY);
    return { read, write: openSync(path, constants.O_WRONLY) };
  } catch (err) {
    if (read !== undefined) closeSync(read);
    throw err;
  } finally {
    closeSync(both);
    unlinkSync(path);
  }
}
