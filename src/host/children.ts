import type { ChildProcess } from 'node:child_process';

/**
 * Every child zbm starts is registered here, so that an interrupted run (SIGINT, SIGTERM) or a
 * failing one can stop them all: no `zfs send` or ssh may outlive zbm.
 */
const live = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

export function liveChildren(): number {
  return live.size;
}

/** Sends SIGTERM to every live child, then SIGKILL to those still running after graceMs. */
export async function stopAll(graceMs = 3000): Promise<void> {
  const children = [...live];
  for (const child of children) terminate(child, graceMs);
  await Promise.all(children.map(exited));
}

export function terminate(child: ChildProcess, graceMs = 3000): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  signalGroup(child, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) signalGroup(child, 'SIGKILL');
  }, graceMs);
  timer.unref();
  child.once('exit', () => clearTimeout(timer));
}

/** Signals the child's whole process group (children are started as group leaders). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
}

/**
 * Work that must run even when zbm is interrupted (a guest's thaw): the signal handler stops the
 * children, then awaits these before exiting. Returns the function that unregisters it.
 */
const cleanups = new Set<() => Promise<void>>();

export function onInterrupt(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

export async function runInterruptCleanups(limitMs = 90_000): Promise<void> {
  const all = Promise.allSettled([...cleanups].map((c) => c()));
  await Promise.race([all, new Promise((r) => setTimeout(r, limitMs).unref())]);
}
