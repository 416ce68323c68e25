import { UsageError } from '../errors.ts';

/**
 * ZFS naming rules (OpenZFS zfs_namecheck): components of letters, digits and `_ - . : ` and space,
 * separated by `/`; `@` introduces a snapshot, `#` a bookmark; at most 255 characters; the pool
 * name starts with a letter. Names are checked wherever they enter zbm (flags, config, zfs output)
 * so that nothing else is ever handed to zfs.
 */
const COMPONENT = /^[A-Za-z0-9_.: -]+$/;
const MAX_NAME = 255;

export type NameKind = 'dataset' | 'snapshot' | 'bookmark';

function componentProblem(c: string): string | null {
  if (c === '') return 'it has an empty component';
  if (c === '.' || c === '..') return `"${c}" is not allowed as a component`;
  const bad = [...c].find((ch) => !COMPONENT.test(ch));
  if (bad !== undefined) return `${JSON.stringify(bad)} is not allowed in ZFS names`;
  return null;
}

/** Why name is not a valid ZFS name of this kind, or null when it is. */
export function nameProblem(name: string, kind: NameKind): string | null {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  const sep = kind === 'snapshot' ? '@' : kind === 'bookmark' ? '#' : null;
  let dataset = name;
  if (sep) {
    const at = name.indexOf(sep);
    if (at < 0) return `it has no "${sep}"`;
    dataset = name.slice(0, at);
    const short = name.slice(at + 1);
    const p = componentProblem(short);
    if (p) return `in the ${kind} part, ${p}`;
    if (short.includes('/')) return `the ${kind} part contains "/"`;
  }
  const parts = dataset.split('/');
  for (const part of parts) {
    const p = componentProblem(part);
    if (p) return p;
  }
  if (!/^[A-Za-z]/.test(dataset)) return 'the pool name does not start with a letter';
  return null;
}

export function isValidName(name: string, kind: NameKind): boolean {
  return nameProblem(name, kind) === null;
}

/** Returns name, or throws an error naming the bad value and the rule it breaks. */
export function checkName(name: string, kind: NameKind, what: string = kind): string {
  const p = nameProblem(name, kind);
  if (p) throw new UsageError(`invalid ${what} ${JSON.stringify(name)}: ${p}`);
  return name;
}

/** Checks the short name of a snapshot (after `@`), or a prefix of one. */
export function checkSnapshotShortName(short: string, what = 'snapshot name'): string {
  const p = componentProblem(short);
  if (p || short.length > MAX_NAME) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(short)}: ${p ?? 'it is too long'}`);
  }
  return short;
}

export function splitSnapshot(name: string): { dataset: string; snapshot: string } {
  const at = name.indexOf('@');
  if (at < 0) throw new Error(`not a snapshot name: ${name}`);
  return { dataset: name.slice(0, at), snapshot: name.slice(at + 1) };
}

/** The path of dataset below root (`rpool/data/vm-1` under `rpool/data` is `vm-1`), or null. */
export function relativeTo(root: string, dataset: string): string | null {
  if (dataset === root) return '';
  return dataset.startsWith(`${root}/`) ? dataset.slice(root.length + 1) : null;
}

export function joinDataset(root: string, relative: string): string {
  return relative === '' ? root : `${root}/${relative}`;
}

/** The pool of a dataset, snapshot or bookmark name: `zfs snapshot` is atomic only within one pool. */
export function poolOf(name: string): string {
  return name.split(/[/@#]/, 1)[0] ?? name;
}
