/**
 * zbm's own naming conventions, the one place that knows them: the time stamp in snapshot names,
 * the hold tags on bases, and where a disk lands below a target root.
 * Every tier reads what another tier wrote by these rules, so each is written once, here. Pure.
 * (ZFS's own rules, pools included, are in src/zfs/names.ts; Proxmox's names for volumes in
 * src/pve/volumes.ts.)
 */
import { daysInMonth } from '../time/civil.ts';
import { joinDataset } from '../zfs/names.ts';

/** The length of a stamp, `20261126T110503Z`. */
const STAMP_LENGTH = 16;

/** `20261126T110503Z`: a UTC time in names, sortable, free of characters tools dislike. */
export function formatStamp(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** `<prefix>20261126T110503Z`: the name of a snapshot backup-pve takes at that time. */
export function snapshotName(prefix: string, at: Date): string {
  return `${prefix}${formatStamp(at)}`;
}

/** The fields of a stamp as written, not checked for range (month 13 stays 13). */
interface StampFields {
  readonly y: number;
  readonly mo: number;
  readonly d: number;
  readonly h: number;
  readonly mi: number;
  readonly s: number;
}

/**
 * The fields of the stamp that fills text[from, from + 16), or null when that is no stamp. Read by
 * character codes: this runs once per snapshot and must stay cheap for long histories.
 */
function stampFieldsAt(text: string, from: number): StampFields | null {
  if (from < 0 || text.length < from + STAMP_LENGTH) return null;
  if (text.charCodeAt(from + 8) !== 84 /* T */ || text.charCodeAt(from + 15) !== 90 /* Z */) return null;
  const y = digits(text, from, 4);
  const mo = digits(text, from + 4, 2);
  const d = digits(text, from + 6, 2);
  const h = digits(text, from + 9, 2);
  const mi = digits(text, from + 11, 2);
  const s = digits(text, from + 13, 2);
  if ([y, mo, d, h, mi, s].some(Number.isNaN)) return null;
  return { y, mo, d, h, mi, s };
}

/** The decimal number in text[from, from + len), or NaN if any of it is not a digit. */
function digits(text: string, from: number, len: number): number {
  let n = 0;
  for (let i = from; i < from + len; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return Number.NaN;
    n = n * 10 + c;
  }
  return n;
}

/** `2026-11-26T11:05:03Z` when all of text is one stamp (`20261126T110503Z`), else null. Ranges unchecked. */
export function stampAsIso(text: string): string | null {
  if (text.length !== STAMP_LENGTH || stampFieldsAt(text, 0) === null) return null;
  return `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 8)}T${text.slice(9, 11)}:${text.slice(11, 13)}:${text.slice(13, 15)}Z`;
}

/**
 * The time a zbm snapshot stands for, in seconds: the UTC timestamp in its name
 * (`<prefix>YYYYMMDDTHHMMSSZ`, written by backup-pve at snapshot time), else its `creation`. The
 * name wins because it is the moment of the backup on the PVE node however late the copy arrived,
 * it survives send/receive unchanged, and it lets tests build year-long histories with past
 * timestamps in seconds.
 */
export function snapshotTime(short: string, prefix: string, creation: number): number {
  if (short.length !== prefix.length + STAMP_LENGTH || !short.startsWith(prefix)) return creation;
  const f = stampFieldsAt(short, prefix.length);
  // Out-of-range fields (Feb 30, 25h) would roll over in Date.UTC: such a name is not zbm's.
  if (
    f === null ||
    !(
      f.mo >= 1 &&
      f.mo <= 12 &&
      f.d >= 1 &&
      f.d <= daysInMonth(f.y, f.mo) &&
      f.h <= 23 &&
      f.mi <= 59 &&
      f.s <= 59
    )
  ) {
    return creation;
  }
  return Date.UTC(f.y, f.mo - 1, f.d, f.h, f.mi, f.s) / 1000;
}

/** The time in ms of the stamp a name ends with, whatever comes before it; null when it ends with none. */
export function trailingStampTime(name: string): number | null {
  const f = stampFieldsAt(name, name.length - STAMP_LENGTH);
  return f === null ? null : Date.UTC(f.y, f.mo - 1, f.d, f.h, f.mi, f.s);
}

/**
 * How far ahead of this host's clock a snapshot's time may be before it counts as "in the future":
 * zbm serve's default --clock-skew, and prune's and verify's margin for the same thing.
 */
export const DEFAULT_CLOCK_SKEW_SECONDS = 300;

const HOLD_TAG_PREFIX = 'zbm-base:';

/**
 * The hold `zbm drill` puts on a restore point while it reads it back, so that a prune meanwhile
 * keeps it (and names the hold). One drill of a tier at a time (a lock), so a drill hold found when
 * a drill starts was left by one that was killed.
 */
export const DRILL_HOLD_TAG = 'zbm-drill';

/** The hold tag of one source→target pair: a second target never releases the first one's base. */
export function holdTag(sourceHost: string, targetHost: string): string {
  return `${HOLD_TAG_PREFIX}${sourceHost}:${targetHost}`;
}

/** Any hold tag zbm puts on a base, whatever the pair. */
export function isHoldTag(tag: string): boolean {
  return tag.startsWith(HOLD_TAG_PREFIX);
}

/** The hold tags zbm put on bases sent from source (`zbm-base:<source>:…`), whatever the target. */
export function isHoldTagFrom(tag: string, source: string): boolean {
  return tag.startsWith(`${HOLD_TAG_PREFIX}${source}:`);
}

/** The hold tag backup-pve and replicate put on the base of a pair whose target is remote. */
export function isBaseTagFor(tag: string, remote: string): boolean {
  return (
    tag.startsWith(HOLD_TAG_PREFIX) &&
    tag.endsWith(`:${remote}`) &&
    tag.length > HOLD_TAG_PREFIX.length + remote.length + 1
  );
}

/** A hold tag as a user may name one (`zbm serve --hold-tag`): `zbm-base:<source>:<target>`. */
export const HOLD_TAG_SYNTAX = /^zbm-base:[A-Za-z0-9_.@-]+:[A-Za-z0-9_:.@-]+$/;

/**
 * Where a disk goes below a target root: `<root>/<last component of its dataset>` (the volume
 * name; linked clones: the clone's own name). The backup server and the replica use the same rule.
 */
export function targetDataset(root: string, dataset: string): string {
  return joinDataset(root, dataset.slice(dataset.lastIndexOf('/') + 1));
}

/**
 * A disk's later chain (docs/proxmox.md, "A disk's chains"): when the node's disk can no longer continue any backup
 * chain on the server (a rollback, a fresh zvol, zbm's snapshots destroyed by hand), its backups go
 * on in `<target>.<first snapshot of the new chain>` beside the older ones, which stay untouched.
 * The name is made of the snapshot's, so every tier derives the same one from what it holds.
 */
export function chainDataset(primary: string, firstSnapshot: string): string {
  return `${primary}.${firstSnapshot}`;
}

/**
 * The first chain of a disk a dataset belongs to: the dataset itself, or for a later chain
 * (`<primary>.<prefix>YYYYMMDDTHHMMSSZ`) its primary. A disk's backups are counted, aged and kept
 * over all its chains (its family), not per dataset.
 */
export function familyOf(dataset: string, prefix: string): string {
  const suffix = dataset.length - STAMP_LENGTH - prefix.length - 1;
  if (suffix < 1 || dataset.charCodeAt(suffix) !== 46 /* . */) return dataset;
  const short = dataset.slice(suffix + 1);
  if (!short.startsWith(prefix) || stampFieldsAt(short, prefix.length) === null) return dataset;
  const primary = dataset.slice(0, suffix);
  return primary.endsWith('/') ? dataset : primary;
}

/**
 * Datasets grouped by family (familyOf), each family's chains oldest first: the primary, then the
 * later chains in the order their names' stamps give.
 */
export function families<T extends { readonly name: string }>(
  datasets: readonly T[],
  prefix: string,
): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const d of datasets) {
    const key = familyOf(d.name, prefix);
    const members = out.get(key);
    if (members) members.push(d);
    else out.set(key, [d]);
  }
  for (const [key, members] of out)
    members.sort((a, b) =>
      a.name === key ? -1 : b.name === key ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  return out;
}
