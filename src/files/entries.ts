/**
 * What `zbm files` reads out of a backed-up disk, as plain data: the entries of a file system
 * (from 7-Zip's listing of a VM's disk or find's listing of a container's subvol), the path the
 * user asked for, and what an extraction may write. Pure: a guest's file system is hostile input,
 * so every name and link that reaches the disk of this host is judged here, where it is tested.
 */

export type EntryKind = 'dir' | 'file' | 'symlink' | 'other';

export interface Entry {
  /** Relative to the file system's root, `/`-separated, without a leading or trailing slash. */
  readonly path: string;
  readonly kind: EntryKind;
  readonly size: number;
  /** Seconds since the epoch; null when the file system does not say. */
  readonly mtime: number | null;
  /** Permission bits including setuid/setgid/sticky; null for file systems without (FAT, NTFS). */
  readonly mode: number | null;
  /** A symbolic link's target, as stored. */
  readonly target?: string;
  /** What `other` is (character device, socket, ...), for the message that it was left out. */
  readonly what?: string;
}

/** The user's path inside a disk: its components, never `..`; `/` is the root. */
export function parseBrowsePath(text: string): { components: string[] } | { error: string } {
  if (text.includes('\0')) return { error: 'a path cannot contain a NUL byte' };
  const components = text.split('/').filter((c) => c !== '' && c !== '.');
  if (components.includes('..'))
    return { error: `${text}: ".." is not allowed; give the path from the root` };
  return { components };
}

const MODE_KINDS: Record<string, EntryKind> = { d: 'dir', '-': 'file', l: 'symlink' };
const OTHER_KINDS: Record<string, string> = {
  c: 'character device',
  b: 'block device',
  p: 'named pipe',
  s: 'socket',
};

/** `-rwsr-xr-x` → 0o4755. */
function modeBits(text: string): number | null {
  if (!/^[-dlcbps][-r][-w][-xsS][-r][-w][-xsS][-r][-w][-xtT]$/.test(text)) return null;
  const bit = (i: number, ch: string) => (text[i] === ch ? 1 : 0);
  const exec = (i: number) => (/[xst]/.test(text[i] as string) ? 1 : 0);
  let mode = 0;
  for (const [base, shift] of [
    [1, 6],
    [4, 3],
    [7, 0],
  ] as const) {
    mode |= ((bit(base, 'r') << 2) | (bit(base + 1, 'w') << 1) | exec(base + 2)) << shift;
  }
  if (/[sS]/.test(text[3] as string)) mode |= 0o4000;
  if (/[sS]/.test(text[6] as string)) mode |= 0o2000;
  if (/[tT]/.test(text[9] as string)) mode |= 0o1000;
  return mode;
}

/** `2026-11-30 13:54:18.000000000` (7-Zip prints UTC for these file systems) → seconds. */
function sevenZipTime(text: string | undefined): number | null {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(text ?? '');
  if (!m) return null;
  const t = Date.parse(`${m[1]}T${m[2]}Z`);
  return Number.isFinite(t) ? t / 1000 + Number(`0${m[3] ?? ''}`) : null;
}

// Entries 7-Zip makes up rather than reads: the journal, NTFS's metafiles, deleted files.
const SYNTHETIC = /^\[(SYS|SYSTEM|DELETED)\](\/|$)/;

export interface SevenZipListing {
  /** `Type =` of the archive: `Ext`, `FAT`, `NTFS`, `GPT`, `MBR`, ... */
  readonly type: string | null;
  readonly entries: Entry[];
}

/** Parses `7zz l -slt` (technical listing): a header block, `----------`, then one block per entry. */
export function parseSevenZipListing(text: string): SevenZipListing {
  const [head = '', body = ''] = text.split(/\n-{10}\n/);
  const type = /^Type = (.+)$/m.exec(head)?.[1] ?? null;
  const entries: Entry[] = [];
  for (const block of body.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const i = line.indexOf(' = ');
      if (i > 0) fields.set(line.slice(0, i), line.slice(i + 3));
      else if (line.endsWith(' =')) fields.set(line.slice(0, -2), '');
    }
    const path = fields.get('Path');
    // An NTFS alternate data stream (`name:stream`) is part of its file, not a file of its own.
    if (!path || SYNTHETIC.test(path) || fields.get('Alternate Stream') === '+') continue;
    const modeText = fields.get('Mode') ?? '';
    const folder = fields.get('Folder') === '+';
    const letter = modeText[0] ?? (folder ? 'd' : '-');
    const kind: EntryKind = MODE_KINDS[letter] ?? 'other';
    const size = Number(fields.get('Size') || 0);
    entries.push({
      path: path.replace(/\/+$/, ''),
      kind,
      size: kind === 'file' && Number.isFinite(size) ? size : 0,
      mtime: sevenZipTime(fields.get('Modified')),
      mode: modeText ? modeBits(modeText) : null,
      ...(kind === 'symlink' ? { target: fields.get('Symbolic Link') ?? '' } : {}),
      ...(kind === 'other' ? { what: OTHER_KINDS[letter] ?? `type ${letter}` } : {}),
    });
  }
  return { type, entries };
}

const FIND_KINDS: Record<string, EntryKind> = { d: 'dir', f: 'file', l: 'symlink' };

/** Fields of FIND_FORMAT, each NUL-terminated: names may hold any byte but NUL and `/`. */
export const FIND_FORMAT = '%y\\0%s\\0%T@\\0%m\\0%l\\0%p\\0';

/** Parses find's output in FIND_FORMAT, run as `find ./<path>` from the file system's root. */
export function parseFindListing(text: string): Entry[] {
  const f = text.split('\0');
  const entries: Entry[] = [];
  for (let i = 0; i + 6 <= f.length; i += 6) {
    const [y = '', size, mtime, mode, target = '', raw = ''] = f.slice(i, i + 6);
    const path = raw.replace(/^\.\/?/, '');
    if (path === '') continue;
    const kind = FIND_KINDS[y] ?? 'other';
    entries.push({
      path,
      kind,
      size: kind === 'file' ? Number(size) : 0,
      mtime: Number.isFinite(Number(mtime)) ? Math.floor(Number(mtime)) : null,
      mode: /^[0-7]+$/.test(mode ?? '') ? Number.parseInt(mode as string, 8) : null,
      ...(kind === 'symlink' ? { target } : {}),
      ...(kind === 'other' ? { what: OTHER_KINDS[y] ?? `type ${y}` } : {}),
    });
  }
  return entries;
}

/** The entries directly inside dir ('' for the root), by name. */
export function childrenOf(entries: readonly Entry[], dir: string): Entry[] {
  const prefix = dir === '' ? '' : `${dir}/`;
  return entries
    .filter(
      (e) =>
        e.path.startsWith(prefix) &&
        e.path.length > prefix.length &&
        !e.path.slice(prefix.length).includes('/'),
    )
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The entry at path and everything under it, parents before children. */
export function subtree(entries: readonly Entry[], path: string): Entry[] {
  return entries
    .filter((e) => path === '' || e.path === path || e.path.startsWith(`${path}/`))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Where a symbolic link at `link` (relative to the extracted tree's root) leads, or null when it
 * leaves the tree: an absolute target or one that climbs above the root. Judged on the names
 * alone, never by following anything on disk.
 */
export function linkInside(link: string, target: string): string | null {
  if (target === '' || target.startsWith('/') || target.includes('\0')) return null;
  const parts = link.split('/').slice(0, -1);
  for (const c of target.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else parts.push(c);
  }
  return parts.join('/');
}

export interface Skipped {
  readonly path: string;
  readonly why: string;
}

/** An entry as written: path under the destination, source its path in the file system. */
export interface Planned extends Entry {
  readonly source: string;
}

/** What an extraction of a subtree writes, and what it leaves out with the reason. */
export interface ExtractionPlan {
  readonly dirs: readonly Planned[];
  readonly files: readonly Planned[];
  readonly links: readonly Planned[];
  readonly skipped: readonly Skipped[];
  readonly bytes: number;
}

/**
 * Sorts a subtree, relative to its own parent, into what is written and what is not: devices,
 * pipes and sockets are never created; a link is kept only when it stays inside what is
 * extracted; names with a newline cannot pass the readers' file lists and are named instead.
 */
export function planExtraction(entries: readonly Entry[], base: string, top: string): ExtractionPlan {
  const dirs: Planned[] = [];
  const files: Planned[] = [];
  const links: Planned[] = [];
  const skipped: Skipped[] = [];
  // The tree is written as `top` (base's last component, or a name for a whole file system).
  const cut = base === '' ? 0 : base.length + 1;
  const relative = (path: string) => (path === base ? top : `${top}/${path.slice(cut)}`);
  for (const e of entries) {
    const rel: Planned = { ...e, path: relative(e.path), source: e.path };
    if (e.path.includes('\n')) skipped.push({ path: e.path, why: 'its name contains a newline' });
    else if (e.kind === 'dir') dirs.push(rel);
    else if (e.kind === 'file') files.push(rel);
    else if (e.kind === 'symlink') {
      const to = linkInside(rel.path, e.target ?? '');
      if (to === null || (to !== top && !to.startsWith(`${top}/`)))
        skipped.push({ path: e.path, why: `a symbolic link to ${e.target} leads outside what is extracted` });
      else links.push(rel);
    } else skipped.push({ path: e.path, why: `a ${e.what ?? 'special file'} is never created` });
  }
  return { dirs, files, links, skipped, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** The permission bits written: setuid, setgid and sticky only when asked for. */
export function writtenMode(e: Entry, keepSpecialBits: boolean, fallback: number): number {
  const mode = e.mode ?? fallback;
  return mode & (keepSpecialBits ? 0o7777 : 0o777);
}
