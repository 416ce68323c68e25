/**
 * Pure builders of zfs command lines. Every name reaching them has been validated (names.ts);
 * they only decide flags, so tests can check exactly what zbm asks of zfs.
 */
import { LIST_COLUMNS } from './parse.ts';

export interface ListRequest {
  /** One or more datasets listed in the same zfs call. */
  readonly roots: readonly string[];
  /** Include snapshots and bookmarks (the default) or only datasets. */
  readonly withSnapshots?: boolean;
  readonly userProps?: readonly string[];
  /** Also list `origin`: the snapshot a clone was made from (Dataset.origin). */
  readonly withOrigin?: boolean;
  /** `-d depth` instead of `-r`: 0 for the roots alone, 1 for their snapshots too. */
  readonly depth?: number;
}

/** The columns after LIST_COLUMNS, in order: origin when asked for, then the user properties. */
export function extraColumns(req: Pick<ListRequest, 'withOrigin' | 'userProps'>): string[] {
  return [...(req.withOrigin ? ['origin'] : []), ...(req.userProps ?? [])];
}

export function listArgv(req: ListRequest): string[] {
  const types = req.withSnapshots === false ? 'filesystem,volume' : 'filesystem,volume,snapshot,bookmark';
  const depth = req.depth === undefined ? ['-r'] : ['-d', String(req.depth)];
  const cols = [...LIST_COLUMNS, ...extraColumns(req)].join(',');
  return ['zfs', 'list', '-H', '-p', ...depth, '-t', types, '-o', cols, ...req.roots];
}

/** One `zfs snapshot` with every name: atomic (one txg) when they share a pool. */
export function snapshotArgv(
  names: readonly string[],
  props: Readonly<Record<string, string>> = {},
): string[] {
  if (names.length === 0) throw new Error('no snapshot to take');
  const opts = Object.entries(props).flatMap(([k, v]) => ['-o', `${k}=${v}`]);
  return ['zfs', 'snapshot', ...opts, ...names];
}

export interface SendRequest {
  /** Full name of the snapshot to send. */
  readonly snapshot: string;
  /** Incremental base: a snapshot (`ds@s`) or bookmark (`ds#b`) full name; absent for a full stream. */
  readonly from?: string;
  /** `-I`: also send every snapshot between from and snapshot. */
  readonly intermediates?: boolean;
  /** `-w`: raw, for encrypted datasets (the stream stays encrypted). */
  readonly raw?: boolean;
  /** `-p`: include dataset properties. */
  readonly properties?: boolean;
}

/** The flags every zbm stream uses: blocks as stored, large blocks and embedded data kept. */
const STREAM_FLAGS = ['-L', '-e', '-c'];

export function sendArgv(req: SendRequest, dryRun = false): string[] {
  const argv = ['zfs', 'send', ...STREAM_FLAGS];
  if (req.raw) argv.push('-w');
  if (req.properties) argv.push('-p');
  if (dryRun) argv.push('-n', '-v', '-P');
  if (req.from !== undefined) argv.push(req.intermediates ? '-I' : '-i', req.from);
  argv.push(req.snapshot);
  return argv;
}

/**
 * Reads every block of a snapshot as a restore would send it, and throws the stream away: ZFS
 * checks each block's checksum as it reads it, so a block that cannot be read fails the command.
 * Nothing is written, no clone or mount is made.
 */
export function readBackArgv(snapshot: string, raw: boolean): string[] {
  return ['sh', '-c', 'exec "$@" >/dev/null', 'zbm-read-back', ...sendArgv({ snapshot, raw })];
}

export function resumeSendArgv(token: string, dryRun = false): string[] {
  return ['zfs', 'send', ...(dryRun ? ['-n', '-v', '-P'] : []), '-t', token];
}

export interface ReceiveRequest {
  readonly target: string;
  /** `-s` keep partial state so an interrupted stream can resume. */
  readonly resumable?: boolean;
  /** `-u` do not mount. */
  readonly noMount?: boolean;
  /** `-F`: only ever set when the user asked for a rollback explicitly. */
  readonly force?: boolean;
  /** `-o prop=value` on the received dataset. */
  readonly set?: Readonly<Record<string, string>>;
  /** `-x prop`: do not take this property from the stream. */
  readonly exclude?: readonly string[];
}

export function receiveArgv(req: ReceiveRequest): string[] {
  const argv = ['zfs', 'receive'];
  if (req.resumable !== false) argv.push('-s');
  if (req.noMount !== false) argv.push('-u');
  if (req.force) argv.push('-F');
  for (const [k, v] of Object.entries(req.set ?? {})) argv.push('-o', `${k}=${v}`);
  for (const p of req.exclude ?? []) argv.push('-x', p);
  argv.push(req.target);
  return argv;
}

export function abortReceiveArgv(dataset: string): string[] {
  return ['zfs', 'receive', '-A', dataset];
}

/** Destroys several snapshots of ONE dataset in one call (`ds@a,b,c`). */
export function destroySnapshotsArgv(dataset: string, shorts: readonly string[]): string[] {
  if (shorts.length === 0) throw new Error('no snapshot to destroy');
  return ['zfs', 'destroy', `${dataset}@${shorts.join(',')}`];
}

export function destroyBookmarkArgv(bookmark: string): string[] {
  return ['zfs', 'destroy', bookmark];
}

export function holdArgv(tag: string, snapshots: readonly string[]): string[] {
  return ['zfs', 'hold', tag, ...snapshots];
}

export function releaseArgv(tag: string, snapshots: readonly string[]): string[] {
  return ['zfs', 'release', tag, ...snapshots];
}

export function holdsArgv(snapshots: readonly string[], recursive = false): string[] {
  return ['zfs', 'holds', '-H', '-p', ...(recursive ? ['-r'] : []), ...snapshots];
}

export function bookmarkArgv(snapshot: string, bookmark: string): string[] {
  return ['zfs', 'bookmark', snapshot, bookmark];
}

export function getArgv(
  properties: readonly string[],
  names: readonly string[],
  recursive = false,
): string[] {
  return [
    'zfs',
    'get',
    '-H',
    '-p',
    ...(recursive ? ['-r'] : []),
    '-o',
    'name,property,value,source',
    properties.join(','),
    ...names,
  ];
}

/** One dataset's `creation`: what zbm serve allows of a pool's root dataset (policy.ts). */
/** `zfs rename` without -f: a mounted file system that is busy fails instead of being unmounted by force. */
export function renameArgv(from: string, to: string): string[] {
  return ['zfs', 'rename', from, to];
}

export function mountArgv(dataset: string): string[] {
  return ['zfs', 'mount', dataset];
}

export function poolStatusArgv(pool: string): string[] {
  return ['zpool', 'status', pool];
}

export function creationArgv(name: string): string[] {
  return getArgv(['creation'], [name]);
}

export function setArgv(name: string, props: Readonly<Record<string, string>>): string[] {
  return ['zfs', 'set', ...Object.entries(props).map(([k, v]) => `${k}=${v}`), name];
}

export function inheritArgv(name: string, property: string): string[] {
  return ['zfs', 'inherit', property, name];
}

/** `zfs create -p`: parents too, for the root that receives backups. */
export function createArgv(name: string, props: Readonly<Record<string, string>> = {}): string[] {
  return ['zfs', 'create', '-p', ...Object.entries(props).flatMap(([k, v]) => ['-o', `${k}=${v}`]), name];
}
