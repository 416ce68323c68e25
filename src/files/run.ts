/**
 * The run of `zbm files`: the restore point chosen on the tier, one of its disks opened (held,
 * cloned read-only, closed again), and the path read: a disk's partition table, a directory's
 * listing, or files extracted here (or as tar on stdout). The command (commands/files.ts) checks
 * its flags, gives the tier and prints what the run shows, when it shows it (the disk still open).
 */
import { chown, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { UsageError, ZbmError } from '../errors.ts';
import { CommandError } from '../host/failure.ts';
import { LocalHost } from '../host/local.ts';
import { pipe } from '../host/pipe.ts';
import { failureOf, run, start, TailBuffer, waitExit } from '../host/process.ts';
import { choosePoint, type RestorePoint } from '../restore/points.ts';
import { loadTier, type Tier } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';
import { runName, SANDBOX_ID, sevenZipExtractArgv, tarFilesArgv, untarArgv, writeListArgv } from './argv.ts';
import { childrenOf, type Entry, type ExtractionPlan, planExtraction, subtree } from './entries.ts';
import type { Layout } from './layout.ts';
import { placeExtraction } from './place.ts';
import { type Reading, readFileSystem } from './read.ts';
import { type OpenedDisk, removeLeftovers, withOpenDisk } from './session.ts';

/** What a run reads, from its flags (the command's options are one). */
export interface FilesScope {
  readonly vmid: number;
  readonly prefix: string;
  readonly disk?: string;
  readonly snapshot?: string;
  readonly time?: Date;
  readonly path: string;
  readonly extract?: string;
  readonly tar?: boolean;
  readonly keepSetuid?: boolean;
}

/** What a run reports as it goes; the command's logger is one. */
export interface FilesLog {
  info(msg: string): void;
  warn(msg: string): void;
}

/** The progress line of the copy; the command's terminal line is one. */
export interface FilesProgress {
  update(label: string, bytes: number): void;
  clear(): void;
}

/** Which restore point was read, on which tier: the head of every answer. */
export interface PointHead {
  readonly host: string;
  readonly root: string;
  readonly vmid: number;
  readonly snapshot: string;
}

/** What an extraction brought, for its closing line or JSON. */
export interface ExtractionSummary extends PointHead {
  readonly disk: string;
  readonly path: string;
  /** Where the tree is now; null when it went to stdout as tar. */
  readonly into: string | null;
  readonly files: number;
  readonly directories: number;
  readonly links: number;
  readonly bytes: number;
  readonly skipped: ExtractionPlan['skipped'];
}

/**
 * What a run shows; the command prints it. Each is called while the disk is still open, so that
 * the answer comes before the close's own messages, as it always did.
 */
export interface FilesView {
  /** No --disk: the point's disks. */
  disks(point: RestorePoint, head: PointHead): void;
  /** A partitioned disk's root: its table. */
  table(layout: Layout, head: PointHead & { readonly disk: string }): void;
  /** A listing of the path: a directory's children, or a file alone. */
  entries(
    entries: readonly Entry[],
    head: PointHead & { readonly disk: string; readonly path: string },
  ): void;
  /** An extraction done; at names the disk and point for the closing line. */
  extracted(summary: ExtractionSummary, at: string): void;
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
  keepSpecialBits: boolean,
  log: FilesLog,
  progress: FilesProgress,
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
    await placeExtraction(plan, { staging, dest, keepSpecialBits });
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
 * Chooses the guest's restore point, and without --disk shows its disks; with one, opens that disk
 * (a killed run's leftovers removed first) and lists or extracts the path. What stops it throws.
 */
export async function readFiles(
  tier: Tier,
  metadataDir: string | undefined,
  scope: FilesScope,
  view: FilesView,
  log: FilesLog,
  progress: FilesProgress,
): Promise<void> {
  const where = `${tier.host.name}:${tier.root}`;
  const state = await loadTier(tier, { metadataDir, vmid: scope.vmid }, log);
  const points = state.points.filter((p) => p.vmid === scope.vmid && p.snapshot.startsWith(scope.prefix));
  const key = scope.disk;
  const usable = (p: RestorePoint) => p.disks.some((d) => (key === undefined || d.key === key) && d.present);
  const choice = choosePoint(points, { snapshot: scope.snapshot, time: scope.time }, usable, where);
  if ('error' in choice) throw new ZbmError(key ? `${choice.error} (disk ${key})` : choice.error);
  const point = choice.point;
  const head = { host: tier.host.name, root: tier.root, vmid: point.vmid, snapshot: point.snapshot };
  if (key === undefined) {
    view.disks(point, head);
    return;
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
  await withOpenDisk(tier, snapshot, volume, runName(me, process.pid), log, async (disk) => {
    const components = scope.path.split('/').filter((c) => c !== '');
    const extracting = scope.extract !== undefined || scope.tar === true;
    const read = await readFileSystem(tier, disk, key, components, extracting);
    const at = `${key} of guest ${point.vmid} at ${point.snapshot} on ${tier.host.name}`;
    if ('table' in read) {
      if (extracting) throw new UsageError(`${at} is partitioned: --path starts with the partition's number`);
      view.table(read.table, { ...head, disk: key });
      return;
    }
    const { reading } = read;
    if (!extracting) {
      view.entries(listed(reading, at), { ...head, disk: key, path: scope.path });
      return;
    }
    const sub = subtree(reading.entries, reading.base);
    if (reading.base !== '' && !sub.some((e) => e.path === reading.base))
      throw new ZbmError(notFound(reading, at));
    const top = reading.base === '' ? reading.rootName : basename(reading.base);
    const plan = planExtraction(sub, reading.base, top);
    for (const s of plan.skipped) log.warn(`not extracted: /${s.path}: ${s.why}`);
    const dest = scope.extract ?? (await mkdtemp('/var/tmp/zbm-files-tar-'));
    try {
      await extractInto(tier, disk, reading, plan, dest, scope.keepSetuid === true, log, progress);
      if (scope.tar) await writeTar(dest, top);
    } finally {
      if (scope.tar) await rm(dest, { recursive: true, force: true });
    }
    view.extracted(
      {
        ...head,
        disk: key,
        path: scope.path,
        into: scope.tar ? null : join(dest, top),
        files: plan.files.length,
        directories: plan.dirs.length,
        links: plan.links.length,
        bytes: plan.bytes,
        skipped: plan.skipped,
      },
      at,
    );
  });
}
