import { ZbmError } from '../errors.ts';
import { nameProblem, splitSnapshot } from './names.ts';
import type { Bookmark, Dataset, DatasetType, Hold, PropertyValue, SendEstimate, Snapshot } from './types.ts';

/** zfs printed something zbm does not understand: refuse rather than guess. */
export class ZfsOutputError extends ZbmError {
  override name = 'ZfsOutputError';
  constructor(what: string, line: string, problem: string) {
    super(`unexpected output from ${what}: ${problem} in line ${JSON.stringify(line)}`);
  }
}

/** The columns of every listing, in this order; user properties follow them. */
export const LIST_COLUMNS = [
  'name',
  'type',
  'guid',
  'createtxg',
  'creation',
  'used',
  'referenced',
  'written',
  'encryption',
  'userrefs',
  'receive_resume_token',
] as const;

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

function integer(what: string, line: string, field: string, value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw new ZfsOutputError(what, line, `${field} is ${JSON.stringify(value)}, not a number`);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new ZfsOutputError(what, line, `${field} is too large`);
  return n;
}

/** For columns that are `-` where they do not apply (used of a bookmark, for example). */
function integerOrZero(what: string, line: string, field: string, value: string | undefined): number {
  return value === '-' ? 0 : integer(what, line, field, value);
}

function guid(what: string, line: string, value: string | undefined): string {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw new ZfsOutputError(what, line, `guid is ${JSON.stringify(value)}`);
  }
  return value;
}

interface MutableDataset extends Omit<Dataset, 'snapshots' | 'bookmarks'> {
  snapshots: Snapshot[];
  bookmarks: Bookmark[];
}

/**
 * Parses `zfs list -H -p -t filesystem,volume,snapshot,bookmark -o <LIST_COLUMNS>,<extra>`, where
 * extra is `origin` (when listed) and the user properties (argv.ts extraColumns). Snapshots and
 * bookmarks are attached to their dataset and sorted by createtxg.
 */
export function parseList(text: string, extra: readonly string[] = []): Dataset[] {
  const what = 'zfs list';
  const width = LIST_COLUMNS.length + extra.length;
  const originAt = extra.indexOf('origin');
  const datasets = new Map<string, MutableDataset>();
  const snaps: Snapshot[] = [];
  const marks: Bookmark[] = [];

  for (const line of lines(text)) {
    const f = line.split('\t');
    if (f.length !== width) {
      throw new ZfsOutputError(what, line, `${f.length} columns instead of ${width}`);
    }
    const [name = '', type = '', g, txg, creation, used, referenced, written, encryption, userrefs, token] =
      f;
    const props: Record<string, string> = {};
    extra.forEach((p, i) => {
      const v = f[LIST_COLUMNS.length + i];
      if (p !== 'origin' && v !== undefined && v !== '-') props[p] = v;
    });
    const originValue = originAt < 0 ? undefined : f[LIST_COLUMNS.length + originAt];
    const origin =
      originValue === undefined || originValue === '-' || originValue === '' ? null : originValue;
    if (origin !== null && nameProblem(origin, 'snapshot'))
      throw new ZfsOutputError(what, line, `bad origin (${nameProblem(origin, 'snapshot')})`);
    const kind = type === 'snapshot' ? 'snapshot' : type === 'bookmark' ? 'bookmark' : 'dataset';
    const problem = nameProblem(name, kind);
    if (problem) throw new ZfsOutputError(what, line, `bad name (${problem})`);

    if (type === 'filesystem' || type === 'volume') {
      datasets.set(name, {
        name,
        type: type as DatasetType,
        guid: guid(what, line, g),
        creation: integer(what, line, 'creation', creation),
        used: integer(what, line, 'used', used),
        referenced: integer(what, line, 'referenced', referenced),
        written: integer(what, line, 'written', written),
        encrypted: encryption !== undefined && encryption !== 'off' && encryption !== '-',
        resumeToken: token === undefined || token === '-' || token === '' ? null : token,
        origin,
        props,
        snapshots: [],
        bookmarks: [],
      });
    } else if (type === 'snapshot') {
      const { dataset, snapshot: short } = splitSnapshot(name);
      snaps.push({
        name,
        dataset,
        short,
        guid: guid(what, line, g),
        createtxg: integer(what, line, 'createtxg', txg),
        creation: integer(what, line, 'creation', creation),
        used: integerOrZero(what, line, 'used', used),
        referenced: integerOrZero(what, line, 'referenced', referenced),
        userrefs: integerOrZero(what, line, 'userrefs', userrefs),
        props,
      });
    } else if (type === 'bookmark') {
      const hash = name.indexOf('#');
      marks.push({
        name,
        dataset: name.slice(0, hash),
        short: name.slice(hash + 1),
        guid: guid(what, line, g),
        createtxg: integer(what, line, 'createtxg', txg),
        creation: integer(what, line, 'creation', creation),
      });
    } else {
      throw new ZfsOutputError(what, line, `unknown type ${JSON.stringify(type)}`);
    }
  }

  for (const s of snaps) datasets.get(s.dataset)?.snapshots.push(s);
  for (const b of marks) datasets.get(b.dataset)?.bookmarks.push(b);
  for (const d of datasets.values()) {
    d.snapshots.sort((a, b) => a.createtxg - b.createtxg);
    d.bookmarks.sort((a, b) => a.createtxg - b.createtxg);
  }
  return [...datasets.values()];
}

/** Parses `zfs get -H -p -o name,property,value,source`. */
export function parseGet(text: string): PropertyValue[] {
  return lines(text).map((line) => {
    const f = line.split('\t');
    if (f.length !== 4) throw new ZfsOutputError('zfs get', line, `${f.length} columns instead of 4`);
    const [name = '', property = '', value = '', source = ''] = f;
    return { name, property, value: value === '-' ? null : value, source };
  });
}

/**
 * The `creation` of one dataset (seconds since the epoch) from `zfs get -H -p` of that property and
 * that name alone: any other row, or a value that is not a plain count of seconds, is an error.
 */
export function parseCreation(text: string, name: string): number {
  const rows = parseGet(text);
  const [row] = rows;
  const line = text.trim();
  if (rows.length !== 1 || row?.name !== name || row.property !== 'creation')
    throw new ZfsOutputError('zfs get', line, `not the creation of ${name} alone`);
  return integer('zfs get', line, 'creation', row.value ?? '-');
}

/** Parses `zfs holds -H -p`: `<snapshot>\t<tag>\t<timestamp>`. */
export function parseHolds(text: string): Hold[] {
  return lines(text).map((line) => {
    const f = line.split('\t');
    if (f.length !== 3) throw new ZfsOutputError('zfs holds', line, `${f.length} columns instead of 3`);
    const [snapshot = '', tag = '', ts] = f;
    if (nameProblem(snapshot, 'snapshot')) throw new ZfsOutputError('zfs holds', line, 'bad snapshot name');
    return { snapshot, tag, timestamp: integer('zfs holds', line, 'timestamp', ts) };
  });
}

/**
 * Parses the estimate of `zfs send -n -v -P`: one line per stream (full/incremental), then a
 * `size` line with the total; with `-t` a dump of the resume token comes first.
 */
export function parseSendEstimate(text: string): SendEstimate {
  let bytes: number | null = null;
  for (const line of lines(text)) {
    const f = line.split('\t');
    if (f[0] === 'size') bytes = integer('zfs send -nvP', line, 'size', f[1]);
  }
  if (bytes === null) {
    throw new ZfsOutputError('zfs send -nvP', text.trim().split('\n').pop() ?? '', 'no size line');
  }
  return { bytes };
}
