import { lineError, splitLines } from './text.ts';

export interface StorageEntry {
  type: string;
  id: string;
  props: Readonly<Record<string, string>>;
}

export interface ZfsPool {
  pool: string;
  disabled: boolean;
  /** The nodes the storage is limited to (`nodes` option), or null for all nodes. */
  nodes: string[] | null;
}

const WHAT = 'storage.cfg';
const HEADER = /^([a-z][a-z0-9]*):\s*(\S+)\s*$/;
const PROPERTY = /^[ \t]+(\S+)(?:[ \t]+(.*?))?[ \t]*$/;
const KEY = /^[a-z][a-z0-9_-]*$/;

/**
 * Parses /etc/pve/storage.cfg: `<type>: <id>` headers followed by indented `<key> [<value>]` lines.
 * Anything else is an error: a storage zbm misreads could map a disk to the wrong dataset.
 */
export function parseStorageCfg(text: string): StorageEntry[] {
  const entries: StorageEntry[] = [];
  const seen = new Set<string>();
  let current: { type: string; id: string; props: Map<string, string> } | null = null;
  const finish = () => {
    if (current)
      entries.push({ type: current.type, id: current.id, props: Object.fromEntries(current.props) });
    current = null;
  };
  const lines = splitLines(text);
  for (const [i, line] of lines.entries()) {
    const n = i + 1;
    if (/^\s*#/.test(line)) continue;
    if (line.trim() === '') {
      finish();
      continue;
    }
    if (/^[ \t]/.test(line)) {
      if (!current) throw lineError(WHAT, n, line, 'property outside of a storage entry');
      const m = PROPERTY.exec(line);
      const key = m?.[1];
      if (!m || key === undefined || !KEY.test(key)) throw lineError(WHAT, n, line, 'malformed property');
      if (current.props.has(key)) throw lineError(WHAT, n, line, `duplicate property "${key}"`);
      // Flags such as `sparse` stand alone; PVE reads them as 1.
      current.props.set(key, m[2] === undefined || m[2] === '' ? '1' : m[2]);
      continue;
    }
    const h = HEADER.exec(line);
    if (!h) throw lineError(WHAT, n, line, 'expected "<type>: <storage id>"');
    finish();
    const [, type = '', id = ''] = h;
    if (seen.has(id)) throw lineError(WHAT, n, line, `storage id "${id}" is defined twice`);
    seen.add(id);
    current = { type, id, props: new Map() };
  }
  finish();
  return entries;
}

/** The zfspool storages by storage id; other types hold no datasets zbm can snapshot. */
export function zfsPools(entries: readonly StorageEntry[]): Map<string, ZfsPool> {
  const pools = new Map<string, ZfsPool>();
  for (const e of entries) {
    if (e.type !== 'zfspool') continue;
    const prop = (k: string) => (Object.hasOwn(e.props, k) ? e.props[k] : undefined);
    const disable = prop('disable');
    const nodes = prop('nodes');
    pools.set(e.id, {
      // A missing pool stays '' so that disks on it are reported, not silently mapped elsewhere.
      pool: prop('pool') ?? '',
      disabled: disable !== undefined && disable !== '0',
      nodes:
        nodes === undefined
          ? null
          : nodes
              .split(/[,\s]+/)
              .map((s) => s.trim())
              .filter((s) => s !== ''),
    });
  }
  return pools;
}
