/**
 * Reading an opened restore point on its tier: a disk's layout, a file system's entries (7-Zip in
 * the sandbox for a VM's partitions, find on a subvol's read-only clone), and for drills a survey
 * of every file system of a disk. `zbm files` and `zbm drill` both read through here.
 */
import { errorMessage, ZbmError } from '../errors.ts';
import { run } from '../host/process.ts';
import type { Tier } from '../restore/tier.ts';
import { deviceOf, existsArgv, findListArgv, layoutArgv, sevenZipListArgv } from './argv.ts';
import { type Entry, parseFindListing, parseSevenZipListing } from './entries.ts';
import { type Layout, locate, parseLayout, refusal, withoutFileSystem } from './layout.ts';
import type { OpenedDisk } from './session.ts';

/** A file system of the restore point, read: its entries and where the user's path is in it. */
export interface Reading {
  /** The entries (a subvol's: those at and under the path; a VM disk's: all of them). */
  readonly entries: readonly Entry[];
  /** The path inside the file system, `a/b` ('' for its root). */
  readonly base: string;
  /** The name the root gets when it is extracted as a whole. */
  readonly rootName: string;
  /** The partition's device on the tier for 7-Zip; null for a subvol (read at its mount point). */
  readonly device: string | null;
}

export type Read = { readonly reading: Reading } | { readonly table: Layout };

/** Reads the file system the path leads to (a VM disk's partitioned root: its table). */
export async function readFileSystem(
  tier: Tier,
  disk: OpenedDisk,
  key: string,
  components: readonly string[],
  recursive: boolean,
): Promise<Read> {
  if (!disk.volume) {
    const { stdout } = await run(
      tier.host,
      findListArgv(disk.mountpoint as string, components, recursive ? null : 1),
    );
    return {
      reading: { entries: parseFindListing(stdout), base: components.join('/'), rootName: key, device: null },
    };
  }
  const layout = parseLayout((await run(tier.host, layoutArgv(disk.clone))).stdout);
  const loc = locate(layout, components);
  if ('table' in loc) return { table: loc.table };
  if ('error' in loc) throw new ZbmError(`${key} of ${disk.snapshot} on ${tier.host.name}: ${loc.error}`);
  const device = deviceOf(disk.clone, loc.partition);
  return {
    reading: {
      entries: await sevenZipEntries(tier, device),
      base: loc.rest.join('/'),
      rootName: loc.partition === null ? key : `${key}-part${loc.partition}`,
      device,
    },
  };
}

/** One file system of a disk as a drill found it. */
export interface FileSystemFinding {
  /** `scsi0`, `scsi0 partition 2`. */
  readonly where: string;
  readonly fstype: string | null;
  /** Entries in its root directory; null when it was not listed. */
  readonly rootEntries: number | null;
  /** Why it was not listed: `unrecognised` fails a drill, `unreadable` (XFS, LVM, ...) does not. */
  readonly problem: {
    readonly kind: 'unrecognised' | 'unreadable' | 'failed';
    readonly message: string;
  } | null;
}

export interface DiskSurvey {
  readonly key: string;
  readonly fileSystems: readonly FileSystemFinding[];
  /** Whether the expected path exists on one of them (null: nothing was expected). */
  readonly expectFound: boolean | null;
}

async function sevenZipEntries(tier: Tier, device: string): Promise<Entry[]> {
  return parseSevenZipListing((await run(tier.host, sevenZipListArgv(device))).stdout).entries;
}

/**
 * Every file system of an opened disk: recognised, its root listed with the reader `zbm files`
 * uses, and whether `expect` (components of a path) is on one of them.
 */
export async function surveyDisk(
  tier: Tier,
  disk: OpenedDisk,
  key: string,
  expect: readonly string[] | null,
): Promise<DiskSurvey> {
  if (!disk.volume) {
    const { stdout } = await run(tier.host, findListArgv(disk.mountpoint as string, [], 1));
    const found =
      expect === null
        ? null
        : await run(tier.host, existsArgv(disk.mountpoint as string, expect)).then(
            () => true,
            () => false,
          );
    return {
      key,
      fileSystems: [
        { where: key, fstype: 'zfs', rootEntries: parseFindListing(stdout).length, problem: null },
      ],
      expectFound: found,
    };
  }
  const layout = parseLayout((await run(tier.host, layoutArgv(disk.clone))).stdout);
  const targets =
    layout.table === null && layout.partitions.length === 0
      ? [{ where: key, fstype: layout.fstype, number: null as number | null, skip: null as string | null }]
      : layout.partitions.map((p) => ({
          where: `${key} partition ${p.number}`,
          fstype: p.fstype,
          number: p.number as number | null,
          skip: p.fstype === null ? withoutFileSystem(p) : null,
        }));
  const wanted = expect?.join('/') ?? null;
  let found = false;
  const fileSystems: FileSystemFinding[] = [];
  for (const t of targets) {
    if (t.skip !== null) continue;
    const why = refusal(t.fstype);
    if (why !== null) {
      const kind = t.fstype === null ? 'unrecognised' : 'unreadable';
      fileSystems.push({
        where: t.where,
        fstype: t.fstype,
        rootEntries: null,
        problem: { kind, message: why },
      });
      continue;
    }
    try {
      const entries = await sevenZipEntries(tier, deviceOf(disk.clone, t.number));
      if (wanted !== null && entries.some((e) => e.path === wanted)) found = true;
      fileSystems.push({
        where: t.where,
        fstype: t.fstype,
        rootEntries: entries.filter((e) => !e.path.includes('/')).length,
        problem: null,
      });
    } catch (err) {
      const message = errorMessage(err);
      fileSystems.push({
        where: t.where,
        fstype: t.fstype,
        rootEntries: null,
        problem: { kind: 'failed', message },
      });
    }
  }
  return { key, fileSystems, expectFound: wanted === null ? null : found };
}
