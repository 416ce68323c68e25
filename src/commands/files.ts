import { lstat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { ExitCode, UsageError } from '../errors.ts';
import type { Entry } from '../files/entries.ts';
import { type Layout, refusal } from '../files/layout.ts';
import { type ExtractionSummary, type FilesView, readFiles } from '../files/run.ts';
import { metadataDirOption } from '../metadata/store.ts';
import type { RestorePoint } from '../restore/points.ts';
import { tierFromOptions } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type FilesOptions = CommandOptions<'files'>;

/** `0755`, `4755`; null for file systems without modes. */
const octal = (mode: number | null) => (mode === null ? null : mode.toString(8).padStart(4, '0'));

function modeText(e: Entry): string {
  const kind = { dir: 'd', file: '-', symlink: 'l', other: '?' }[e.kind];
  return `${kind} ${octal(e.mode) ?? '   -'}`;
}

function entryJson(e: Entry) {
  return {
    name: basename(e.path),
    path: `/${e.path}`,
    kind: e.kind,
    size: e.size,
    mtime: e.mtime === null ? null : new Date(e.mtime * 1000).toISOString(),
    mode: octal(e.mode),
    ...(e.target !== undefined ? { target: e.target } : {}),
    ...(e.what !== undefined ? { what: e.what } : {}),
  };
}

function printTable(layout: Layout, json: boolean | undefined, head: object): void {
  const rows = layout.partitions.map((p) => ({
    number: p.number,
    fstype: p.fstype,
    size: p.size,
    label: p.label,
    readable: refusal(p.fstype) === null,
  }));
  if (json) {
    writeOut(`${JSON.stringify({ ...head, table: layout.table, partitions: rows }, null, 2)}\n`);
    return;
  }
  writeOut(`partition table: ${layout.table ?? 'none'}; give --path /<number>/... to read a partition\n`);
  for (const r of rows) {
    writeOut(
      `${String(r.number).padEnd(4)}${(r.fstype ?? '-').padEnd(12)}${formatBytes(r.size).padEnd(12)}${(r.label ?? '').padEnd(20)}${r.readable ? '' : 'not readable'}\n`,
    );
  }
}

function printEntries(entries: readonly Entry[], json: boolean | undefined, head: object): void {
  if (json) {
    writeOut(`${JSON.stringify({ ...head, entries: entries.map(entryJson) }, null, 2)}\n`);
    return;
  }
  for (const e of entries) {
    const when = e.mtime === null ? '-' : new Date(e.mtime * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    const size = e.kind === 'file' ? String(e.size) : '-';
    writeOut(
      `${modeText(e)} ${size.padStart(12)} ${when.padEnd(20)} ${basename(e.path)}${e.kind === 'symlink' ? ` -> ${e.target}` : ''}${e.what ? ` (${e.what})` : ''}\n`,
    );
  }
}

function printDisks(point: RestorePoint, json: boolean | undefined, head: object): void {
  const disks = point.disks.map((d) => ({
    key: d.key,
    volume: d.volume,
    present: d.present,
    size: d.referenced,
  }));
  if (json) {
    writeOut(`${JSON.stringify({ ...head, disks }, null, 2)}\n`);
    return;
  }
  writeOut(`guest ${point.vmid} at ${point.snapshot}; give --disk <key> to read one:\n`);
  for (const d of disks)
    writeOut(
      `  ${d.key.padEnd(10)}${d.volume.padEnd(40)}${d.present ? formatBytes(d.size) : 'not on this tier'}\n`,
    );
}

/** An extraction's closing line on stderr, or with --json (and no --tar) its summary on stdout. */
function printExtracted(s: ExtractionSummary, at: string, opts: FilesOptions, log: Logger): void {
  if (opts.json && !opts.tar) writeOut(`${JSON.stringify(s, null, 2)}\n`);
  else
    log.info(
      `${opts.path} of ${at}: ${s.files} file(s) (${formatBytes(s.bytes)}), ${s.directories} directories, ${s.links} link(s)${opts.tar ? ' written as tar to stdout' : ` extracted into ${s.into}`}${s.skipped.length > 0 ? `; ${s.skipped.length} left out (see above)` : ''}`,
    );
}

/**
 * Lists or extracts files of one disk of a restore point on the tier that holds it. The point is
 * held and cloned read-only while it is read; a VM's file systems are read by 7-Zip as nobody,
 * a container's subvol from the clone's read-only mount. Never the guest's live disks.
 */
export async function files(opts: FilesOptions, log: Logger): Promise<number> {
  if (opts.extract !== undefined && opts.tar)
    throw new UsageError('--extract and --tar both say where the files go: give one of them');
  if (opts.snapshot !== undefined && opts.time !== undefined)
    throw new UsageError('--snapshot and --time both choose the restore point: give one of them');
  if ((opts.extract !== undefined || opts.tar) && opts.disk === undefined)
    throw new UsageError('--extract and --tar need --disk: the disk the files are on');
  if (opts.extract !== undefined && !(await lstat(opts.extract).catch(() => null))?.isDirectory())
    throw new UsageError(`--extract ${opts.extract}: not an existing directory`);
  const metadataDir = metadataDirOption(opts);
  const tier = tierFromOptions(opts);
  const view: FilesView = {
    disks: (point, head) => printDisks(point, opts.json, head),
    table: (layout, head) => printTable(layout, opts.json, head),
    entries: (entries, head) => printEntries(entries, opts.json, head),
    extracted: (summary, at) => printExtracted(summary, at, opts, log),
  };
  try {
    await readFiles(tier, metadataDir, opts, view, log, new Progress(process.stderr.isTTY === true));
    return ExitCode.ok;
  } finally {
    await tier.host.close();
  }
}
