import { chown, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { ExitCode, UsageError, ZbmError } from '../errors.ts';
import {
  runName,
  SANDBOX_ID,
  sevenZipExtractArgv,
  tarFilesArgv,
  untarArgv,
  writeListArgv,
} from '../files/argv.ts';
import { childrenOf, type Entry, type ExtractionPlan, planExtraction, subtree } from '../files/entries.ts';
import { type Layout, refusal } from '../files/layout.ts';
import { placeExtraction } from '../files/place.ts';
import { type Reading, readFileSystem } from '../files/read.ts';
import { type OpenedDisk, removeLeftovers, withOpenDisk } from '../files/session.ts';
import { CommandError } from '../host/failure.ts';
import { LocalHost } from '../host/local.ts';
import { pipe } from '../host/pipe.ts';
import { failureOf, run, start, TailBuffer, waitExit } from '../host/process.ts';
import { metadataDirOption } from '../metadata/store.ts';
import { choosePoint, type RestorePoint } from '../restore/points.ts';
import { loadTier, type Tier, tierFromOptions } from '../restore/tier.ts';
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

/** Which prefix of base is a link in the listing: a path through it is not followed. */
function throughLink(entries: readonly Entry[], base: string): Entry | undefined {
  const parts = base.split('/');
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    const e = entries.find((x) => x.path === prefix);
    if (e?.kind === 'symlink') return e;
  }
  return undefined;
}

function printTable(layout: Layout, json: boolean | undefined, head: Record<string, unknown>): void {
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

function printEntries(
  entries: readonly Entry[],
  json: boolean | undefined,
  head: Record<string, unknown>,
): void {
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

/** The entries a listing of base shows: a directory's children, or a file alone. */
function listed(reading: Reading, where: string): Entry[] {
  const { entries, base } = reading;
  const self = entries.find((e) => e.path === base);
  if (base !== '' && !self) throw new ZbmError(notFound(reading, where));
  if (self && self.kind !== 'dir') return [self];
  return childrenOf(entries, base);
}

function notFound(reading: Reading, where: string): string {
  const link = throughLink(reading.entries, reading.base);
  return link
    ? `/${reading.base} goes through the symbolic link /${link.path} -> ${link.target} in ${where}, which is not followed: give the path it points to`
    : `/${reading.base} does not exist in ${where}`;
}

/**
 * Brings the plan's files from the tier into dest: a tar stream of exactly those files, unpacked
 * here by the sandbox's user into a private directory, then put in place by placeExtraction.
 */
async function extractInto(
  tier: Tier,
  disk: OpenedDisk,
  reading: Reading,
  plan: ExtractionPlan,
  dest: string,
  opts: FilesOptions,
  log: Logger,
): Promise<void> {
  const top = plan.dirs[0]?.path.split('/')[0] ?? plan.files[0]?.path ?? plan.links[0]?.path ?? '';
  if (await lstat(join(dest, top)).catch(() => null))
    throw new ZbmError(`${join(dest, top)} exists already: extract into another directory, or move it away`);
  const staging = join(dest, `.${runName(hostname(), process.pid)}`);
  await mkdir(staging, { mode: 0o700 });
  try {
    if (plan.files.length > 0) {
      const list = `${plan.files.map((f) => f.source).join('\n')}\n`;
      if (reading.device !== null) {
        log.info(`reading ${plan.files.length} file(s) out of ${reading.device} on ${tier.host.name}`);
        await run(tier.host, sevenZipExtractArgv(reading.device, disk.staging), { input: list });
      } else await run(tier.host, writeListArgv(disk.staging), { input: list });
      const dir = reading.device !== null ? `${disk.staging}/t` : (disk.mountpoint as string);
      await chown(staging, SANDBOX_ID, SANDBOX_ID);
      const progress = new Progress(process.stderr.isTTY === true);
      try {
        await pipe(
          { host: tier.host, argv: tarFilesArgv(dir, disk.staging) },
          { host: new LocalHost(), argv: untarArgv(staging) },
          { onProgress: (bytes) => progress.update(`copying ${formatBytes(plan.bytes)}`, bytes) },
        );
      } finally {
        progress.clear();
      }
    }
    await placeExtraction(plan, { staging, dest, keepSpecialBits: opts.keepSetuid === true });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The extracted tree as a tar stream on this process's stdout. */
async function writeTar(dir: string, top: string): Promise<void> {
  const host = new LocalHost();
  const argv = ['tar', '-C', dir, '-c', '-f', '-', '--numeric-owner', '--', top];
  const child = start(host, argv, ['ignore', 'inherit', 'pipe']);
  const stderr = new TailBuffer();
  child.stderr?.on('data', (c: Buffer) => stderr.push(c));
  const exit = await waitExit(child);
  if (exit.code !== 0) throw new CommandError(failureOf(host, argv, exit, stderr.text));
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
  const where = `${tier.host.name}:${tier.root}`;
  try {
    const state = await loadTier(tier, { metadataDir, vmid: opts.vmid }, log);
    const points = state.points.filter((p) => p.vmid === opts.vmid && p.snapshot.startsWith(opts.prefix));
    const key = opts.disk;
    const usable = (p: RestorePoint) =>
      p.disks.some((d) => (key === undefined || d.key === key) && d.present);
    const choice = choosePoint(points, { snapshot: opts.snapshot, time: opts.time }, usable, where);
    if ('error' in choice) throw new ZbmError(key ? `${choice.error} (disk ${key})` : choice.error);
    const point = choice.point;
    const head = { host: tier.host.name, root: tier.root, vmid: point.vmid, snapshot: point.snapshot };
    if (key === undefined) {
      printDisks(point, opts.json, head);
      return ExitCode.ok;
    }
    const pd = point.disks.find((d) => d.key === key && d.present);
    if (!pd) {
      const have = point.disks.map((d) => d.key).join(', ');
      throw new ZbmError(
        `guest ${point.vmid} has no disk ${key} at ${point.snapshot} on ${where} (disks: ${have})`,
      );
    }
    const volume = state.datasets.find((d) => d.name === pd.dataset)?.type === 'volume';
    const me = hostname();
    await removeLeftovers(tier, state.datasets, me, log);
    const snapshot = `${pd.dataset}@${point.snapshot}`;
    return await withOpenDisk(tier, snapshot, volume, runName(me, process.pid), log, async (disk) => {
      const components = opts.path.split('/').filter((c) => c !== '');
      const extracting = opts.extract !== undefined || opts.tar === true;
      const read = await readFileSystem(tier, disk, key, components, extracting);
      const at = `${key} of guest ${point.vmid} at ${point.snapshot} on ${tier.host.name}`;
      if ('table' in read) {
        if (extracting)
          throw new UsageError(`${at} is partitioned: --path starts with the partition's number`);
        printTable(read.table, opts.json, { ...head, disk: key });
        return ExitCode.ok;
      }
      const { reading } = read;
      if (!extracting) {
        printEntries(listed(reading, at), opts.json, { ...head, disk: key, path: opts.path });
        return ExitCode.ok;
      }
      const sub = subtree(reading.entries, reading.base);
      if (reading.base !== '' && !sub.some((e) => e.path === reading.base))
        throw new ZbmError(notFound(reading, at));
      const top = reading.base === '' ? reading.rootName : basename(reading.base);
      const plan = planExtraction(sub, reading.base, top);
      for (const s of plan.skipped) log.warn(`not extracted: /${s.path}: ${s.why}`);
      const dest = opts.extract ?? (await mkdtemp('/var/tmp/zbm-files-tar-'));
      try {
        await extractInto(tier, disk, reading, plan, dest, opts, log);
        if (opts.tar) await writeTar(dest, top);
      } finally {
        if (opts.tar) await rm(dest, { recursive: true, force: true });
      }
      const summary = {
        ...head,
        disk: key,
        path: opts.path,
        into: opts.tar ? null : join(dest, top),
        files: plan.files.length,
        directories: plan.dirs.length,
        links: plan.links.length,
        bytes: plan.bytes,
        skipped: plan.skipped,
      };
      if (opts.json && !opts.tar) writeOut(`${JSON.stringify(summary, null, 2)}\n`);
      else
        log.info(
          `${opts.path} of ${at}: ${plan.files.length} file(s) (${formatBytes(plan.bytes)}), ${plan.dirs.length} directories, ${plan.links.length} link(s)${opts.tar ? ' written as tar to stdout' : ` extracted into ${join(dest, top)}`}${plan.skipped.length > 0 ? `; ${plan.skipped.length} left out (see above)` : ''}`,
        );
      return ExitCode.ok;
    });
  } finally {
    await tier.host.close();
  }
}

function printDisks(point: RestorePoint, json: boolean | undefined, head: Record<string, unknown>): void {
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
