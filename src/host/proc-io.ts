import { readFileSync } from 'node:fs';

/**
 * What the kernel counted of a local process's reads and writes (/proc/<pid>/io, Linux): with the
 * children it has reaped, not the ones still running. Null once the process is gone.
 */
export interface ProcessIo {
  readonly rchar: number;
  readonly wchar: number;
}

export function processIo(pid: number): ProcessIo | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/io`, 'utf8');
  } catch {
    return null;
  }
  const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { rchar: field('rchar'), wchar: field('wchar') };
}

/** The running children of a local process (its main thread's), oldest first. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter((w) => w !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** The running children's counts of a local process added up: the work of a wrapper's command. */
export function childrenIo(pid: number): ProcessIo {
  let rchar = 0;
  let wchar = 0;
  for (const child of childPids(pid)) {
    const io = processIo(child);
    rchar += io?.rchar ?? 0;
    wchar += io?.wchar ?? 0;
  }
  return { rchar, wchar };
}

/** A process's and its running children's counts added up: how far a pipeline of it has come. */
export function treeIo(pid: number): ProcessIo | null {
  const own = processIo(pid);
  if (!own) return null;
  const children = childrenIo(pid);
  return { rchar: own.rchar + children.rchar, wchar: own.wchar + children.wchar };
}
