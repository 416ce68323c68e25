import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { printable } from '../text/printable.ts';

/**
 * Per-object lock files (O_EXCL) on this host. A lock whose holder died is recovered
 * automatically: the holder's pid is recorded, and a lock whose pid no longer runs zbm is stale.
 */
export interface LockHolder {
  readonly pid: number;
  readonly command: string;
  readonly since: string;
}

export interface Lock {
  readonly path: string;
  release(): void;
}

export const DEFAULT_LOCK_DIR = '/run/lock/zbm';

/** --lock-wait's default. */
export const DEFAULT_LOCK_WAIT_SECONDS = 30;

export function lockDir(): string {
  return process.env.ZBM_LOCK_DIR ?? DEFAULT_LOCK_DIR;
}

/** The name of a dataset's lock, on whichever host the dataset lives. */
export function datasetLockName(dataset: string): string {
  return `dataset-${dataset}`;
}

/**
 * The lock a receive into a dataset holds on the dataset's host (lock/remote.ts, zbm serve). Apart
 * from datasetLockName so that a receive and a replicate sending from the same dataset never wait
 * for each other; prune takes both.
 */
export function receiveLockName(dataset: string): string {
  return `receive-${dataset}`;
}

/**
 * The file of the lock named name, in the lock directory. The encoding is one-to-one (`%` and `/`
 * escaped), so that two datasets never share a lock file (`a/b` and `a_b` did).
 */
export function lockFileName(name: string): string {
  return `${name.replaceAll('%', '%25').replaceAll('/', '%2F')}.lock`;
}

/** The file name older zbm versions gave a lock: a node not yet upgraded still names its receive lock so. */
export function legacyLockFileName(name: string): string {
  return `${name.replaceAll('/', '_')}.lock`;
}

/** Whether pid is a zbm process on this host (a pid reused by another program is not). */
export function zbmProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  // The pid may have been reused by another program since the holder died.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('zbm');
  } catch {
    return true;
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    return typeof h.pid === 'number'
      ? { pid: h.pid, command: String(h.command), since: String(h.since) }
      : null;
  } catch {
    return null;
  }
}

function tryAcquire(path: string, command: string): Lock | LockHolder {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, JSON.stringify({ pid: process.pid, command, since: new Date().toISOString() }));
      closeSync(fd);
      return {
        path,
        release: () => {
          if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(path);
    // An unreadable file is a lock being written this very moment: treat it as held.
    if (holder === null) return { pid: 0, command: 'unknown (lock being written)', since: '' };
    if (zbmProcessAlive(holder.pid)) return holder;
    rmSync(path, { force: true });
  }
  return { pid: 0, command: 'unknown (lock keeps changing)', since: '' };
}

/** Told once, when a lock is found held and the wait for it begins (a run that waits says so). */
export type OnWait = (holder: LockHolder, waitMs: number) => void;

/** Takes the lock named name, waiting up to waitMs; returns who holds it when it cannot. */
export async function acquire(
  name: string,
  command: string,
  waitMs: number,
  onWait?: OnWait,
): Promise<{ lock: Lock } | { heldBy: LockHolder }> {
  const dir = lockDir();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, lockFileName(name));
  const deadline = Date.now() + waitMs;
  for (let first = true; ; first = false) {
    const r = tryAcquire(path, command);
    if ('release' in r) return { lock: r };
    if (Date.now() >= deadline) return { heldBy: r };
    if (first) onWait?.(r, deadline - Date.now());
    await sleep(Math.min(1000, Math.max(50, deadline - Date.now())));
  }
}

/** Takes every lock of names, in order, within one wait; none is kept if one stays held. */
export async function acquireAll(
  names: readonly string[],
  command: string,
  waitMs: number,
  onWait?: OnWait,
): Promise<{ lock: Lock } | { heldBy: LockHolder }> {
  const deadline = Date.now() + waitMs;
  const taken: Lock[] = [];
  const releaseAll = () => {
    for (const l of taken.reverse()) l.release();
  };
  for (const name of names) {
    const r = await acquire(name, command, Math.max(0, deadline - Date.now()), onWait);
    if ('heldBy' in r) {
      releaseAll();
      return r;
    }
    taken.push(r.lock);
  }
  return { lock: { path: taken.map((l) => l.path).join(' '), release: releaseAll } };
}

/** Who holds a lock, for a message: the holder's text may come from another host (zbm serve's locks). */
export function describeHolder(h: LockHolder): string {
  const command = printable(h.command);
  return h.pid ? `zbm pid ${h.pid} (${command}, since ${printable(h.since)})` : command;
}

/** The notice of a run that waits for a lock: what it waits for, for whom, and how long at most. */
export function describeWait(subject: string, h: LockHolder, waitMs: number): string {
  return `${subject}: waiting up to ${Math.ceil(waitMs / 1000)} s for ${describeHolder(h)} to finish`;
}
