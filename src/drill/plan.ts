/**
 * Restore drills, planned and judged: which guests are drilled (all, --vmid, or the --sample whose
 * last successful drill is oldest), which restore point of each (restore's own chooser), what the
 * tier's listing shows of each disk, and, given what the executor read (the saved config, and with
 * --full-read every block), the verdict per guest in verify's monitoring states. Pure; the
 * executor in src/commands/drill.ts only reads.
 */

import type { DiskSurvey } from '../files/read.ts';
import { type GuestConfig, parseGuestConfig, selectDisks } from '../pve/index.ts';
import { volumeOf } from '../restore/config.ts';
import { choosePoint, type RestorePoint, type Selection } from '../restore/points.ts';
import { formatBytes } from '../text/human.ts';
import { type Check, perfItem, type State } from '../verify/checks.ts';
import type { Dataset } from '../zfs/types.ts';
import type { DrillRecord, DrillRecords } from './state.ts';

export interface DrillRequest {
  /** The restore points of the tier (restore/points.ts), zbm's own (--prefix). */
  readonly points: readonly RestorePoint[];
  /** The tier's listing, with every snapshot and its guid, as observed now. */
  readonly datasets: readonly Dataset[];
  /** The tier's host name and root, for messages. */
  readonly host: string;
  readonly root: string;
  readonly vmids?: readonly number[];
  readonly sample?: number;
  readonly selection: Selection;
  readonly fullRead: boolean;
  readonly records: DrillRecords;
}

/** One disk of the drilled point as the listing shows it. */
export interface DiskFinding {
  readonly key: string;
  /** `dataset@snapshot` on the tier. */
  readonly snapshot: string;
  /** Why the disk cannot be restored from this point, or null. */
  readonly problem: string | null;
  readonly encrypted: boolean;
  readonly referenced: number;
}

export interface GuestDrill {
  readonly vmid: number;
  /** `guest 100 (web)`, as verify names a guest. */
  readonly subject: string;
  /** The point drilled; null when none could be chosen (error says why). */
  readonly point: RestorePoint | null;
  readonly error: string | null;
  readonly disks: readonly DiskFinding[];
  /** The disks whose every block is read (--full-read): those present. */
  readonly reads: readonly DiskFinding[];
}

/** What the executor got when it read the saved config: its text, or why not. */
export type ConfigRead = { readonly text: string } | { readonly error: string };

/** The outcome of reading one disk's snapshot back (`zfs send` to nowhere): null when it read. */
export interface ReadOutcome {
  readonly key: string;
  readonly error: string | null;
}

const subjectOf = (vmid: number, name: string) => `guest ${vmid}${name ? ` (${name})` : ''}`;

/**
 * The n guests whose last successful drill is the oldest (never drilled first; then the oldest
 * attempt, then the lowest VMID), so that runs with --sample go round the whole cluster.
 */
export function sampleGuests(vmids: readonly number[], records: DrillRecords, n: number): number[] {
  const key = (r: DrillRecord | undefined) => [
    r?.lastSuccess ?? Number.NEGATIVE_INFINITY,
    r?.lastAttempt ?? Number.NEGATIVE_INFINITY,
  ];
  return [...vmids]
    .sort((a, b) => {
      const [sa = 0, ta = 0] = key(records.get(a));
      const [sb = 0, tb = 0] = key(records.get(b));
      return sa - sb || ta - tb || a - b;
    })
    .slice(0, n)
    .sort((a, b) => a - b);
}

/** Why one disk of the point cannot be restored from the tier, from the listing alone; null if it can. */
function diskProblem(
  d: RestorePoint['disks'][number],
  snapshot: string,
  listing: Dataset | undefined,
  host: string,
): string | null {
  if (d.present) return null;
  const full = `${d.dataset}@${snapshot}`;
  if (d.guid === '') return `the manifest records no guid for ${full}: it names no backup`;
  if (!listing) return `${d.dataset} does not exist on ${host}`;
  const snap = listing.snapshots.find((s) => s.short === snapshot);
  if (!snap) return `${full} does not exist on ${host}`;
  if (snap.guid !== d.guid)
    return `${full} has guid ${snap.guid}, the manifest recorded ${d.guid}: it is another backup of the same name`;
  if (listing.resumeToken) return `an interrupted receive into ${d.dataset} waits to be resumed or aborted`;
  return `${full} is not usable on ${host}`;
}

/** The guests to drill and, for each, the point and what the listing shows of its disks. */
export function planDrills(req: DrillRequest): GuestDrill[] {
  const byGuest = new Map<number, RestorePoint[]>();
  for (const p of req.points) byGuest.set(p.vmid, [...(byGuest.get(p.vmid) ?? []), p]);
  const asked = req.vmids && req.vmids.length > 0 ? [...new Set(req.vmids)] : [...byGuest.keys()];
  const sorted = asked.sort((a, b) => a - b);
  const vmids = req.sample === undefined ? sorted : sampleGuests(sorted, req.records, req.sample);
  const listing = new Map(req.datasets.map((d) => [d.name, d]));
  const { host } = req;
  const where = `${host}:${req.root}`;
  return vmids.map((vmid): GuestDrill => {
    const points = byGuest.get(vmid) ?? [];
    const name = points.at(-1)?.name ?? '';
    const none = (error: string): GuestDrill => ({
      vmid,
      subject: subjectOf(vmid, name),
      point: null,
      error,
      disks: [],
      reads: [],
    });
    if (points.length === 0) return none(`no backup of guest ${vmid} on ${where}`);
    // Every point counts, complete or not: a newest backup that lacks a disk is what a drill is for.
    const choice = choosePoint(points, req.selection, () => true, where);
    if ('error' in choice) return none(choice.error);
    const { point } = choice;
    const disks = point.disks.map(
      (d): DiskFinding => ({
        key: d.key,
        snapshot: `${d.dataset}@${point.snapshot}`,
        problem: diskProblem(d, point.snapshot, listing.get(d.dataset), host),
        encrypted: d.encrypted,
        referenced: d.referenced,
      }),
    );
    return {
      vmid,
      subject: subjectOf(vmid, point.name),
      point,
      error: null,
      disks,
      reads: req.fullRead ? disks.filter((d) => d.problem === null) : [],
    };
  });
}

/**
 * What is wrong with the saved config of a point: it must parse, name each disk of the manifest
 * under its key with the volume the manifest recorded, and name no other disk that backup-pve would
 * have backed up unless the manifest lists it as missing.
 */
export function configProblems(point: RestorePoint, text: string): string[] {
  let config: GuestConfig;
  try {
    config = parseGuestConfig(text);
  } catch (err) {
    return [`the saved config does not parse: ${err instanceof Error ? err.message : String(err)}`];
  }
  const { current } = config;
  const problems: string[] = [];
  for (const d of point.disks) {
    const value = Object.hasOwn(current, d.key) ? current[d.key] : undefined;
    if (value === undefined) {
      problems.push(`the saved config has no ${d.key} (the manifest has ${d.volume})`);
      continue;
    }
    const volume = volumeOf(point.type, value);
    if (volume !== d.volume)
      problems.push(`${d.key} is ${volume ?? value} in the saved config, ${d.volume} in the manifest`);
  }
  // Without the node's storages every volume comes out "not on zfspool storage" (warn): what is
  // left out quietly is what vzdump's rules leave out (CD-ROMs, backup=0, bind mounts, unused).
  const known = new Set([...point.disks.map((d) => d.key), ...point.missing.map((m) => m.key)]);
  const candidates = selectDisks(point.type, current, new Map()).skipped.filter((s) => s.warn);
  for (const s of candidates.filter((c) => !known.has(c.key)))
    problems.push(
      `the saved config names ${s.key} (${s.value}), which the backup neither holds nor lists as missing`,
    );
  return problems;
}

/** The verdict on one guest: CRITICAL with every reason, else OK saying what was proved. */
export function judgeDrill(
  g: GuestDrill,
  config: ConfigRead | null,
  reads: readonly ReadOutcome[] | null,
  surveys: FileSystemsSurvey | null = null,
): Check {
  const { point } = g;
  const base = { snapshot: point?.snapshot ?? null, disks: g.disks.length };
  if (!point || g.error !== null) {
    return {
      state: 'CRITICAL',
      subject: g.subject,
      message: g.error ?? 'no restore point',
      figures: { ...base, failed: 1 },
    };
  }
  const problems: string[] = [];
  if (g.disks.length === 0) problems.push('the backup has no disk');
  for (const d of g.disks) if (d.problem !== null) problems.push(`${d.key}: ${d.problem}`);
  if (config === null) problems.push('the saved config was not read');
  else if ('error' in config) problems.push(`cannot read the saved config: ${config.error}`);
  else problems.push(...configProblems(point, config.text));
  for (const r of reads ?? []) {
    if (r.error === null) continue;
    const snap = g.reads.find((d) => d.key === r.key)?.snapshot ?? r.key;
    problems.push(`${r.key}: ${snap} does not read back: ${r.error}`);
  }
  const found = surveys === null ? null : judgeFileSystems(surveys);
  if (found) problems.push(...found.problems);
  const read = reads === null ? null : g.reads.filter((d) => reads.some((r) => r.key === d.key && !r.error));
  const bytes = (read ?? []).reduce((n, d) => n + d.referenced, 0);
  const figures = {
    ...base,
    failed: problems.length > 0 ? 1 : 0,
    full_read: reads === null ? 0 : 1,
    bytes_read: reads === null ? null : bytes,
    ...(found ? { file_systems: found.listed } : {}),
  };
  if (problems.length > 0) {
    return {
      state: 'CRITICAL',
      subject: g.subject,
      message: `${point.snapshot}: ${problems.join('; ')}`,
      figures,
    };
  }
  const blocks =
    reads === null
      ? 'blocks not read (no --full-read)'
      : `every block read back without a checksum error (${formatBytes(bytes)})`;
  return {
    state: 'OK',
    subject: g.subject,
    message: `${point.snapshot}: ${g.disks.length} disk(s) present with their recorded guids, the saved config names them, ${blocks}${found ? `, ${found.summary}` : ''}`,
    figures,
  };
}

/** Disks Proxmox gives a VM for its firmware: UEFI variables and TPM state, never a file system. */
export function holdsFileSystems(key: string): boolean {
  return !/^(efidisk|tpmstate)\d+$/.test(key);
}

/** What a drill's file-system check found on a guest's disks, and the path it expected. */
export interface FileSystemsSurvey {
  readonly disks: readonly DiskSurvey[];
  /** `/etc/hostname`; null when nothing was expected. */
  readonly expect: string | null;
}

/**
 * A file system that cannot be recognised, or fails to list, fails the drill; one recognised that
 * zbm cannot read (XFS, LVM) is said, not failed: the disk restores all the same.
 */
export function judgeFileSystems(s: FileSystemsSurvey): {
  problems: string[];
  summary: string;
  listed: number;
} {
  const problems: string[] = [];
  const notes: string[] = [];
  let listed = 0;
  for (const d of s.disks) {
    for (const f of d.fileSystems) {
      if (f.problem === null) listed++;
      else if (f.problem.kind === 'unreadable') notes.push(`${f.where} (${f.fstype}) not listed`);
      else problems.push(`${f.where}: ${f.problem.message}`);
    }
  }
  if (s.expect !== null && !s.disks.some((d) => d.expectFound === true))
    problems.push(`${s.expect} is on none of its file systems`);
  const expected = s.expect === null ? '' : `, ${s.expect} found`;
  const unread = notes.length > 0 ? ` (${notes.join(', ')})` : '';
  return { problems, summary: `${listed} file system(s) recognised and listed${unread}${expected}`, listed };
}

/** The records after this run: each drilled guest's attempt, and its success if it passed. Pure. */
export function updateRecords(
  previous: DrillRecords,
  drilled: readonly { readonly vmid: number; readonly snapshot: string; readonly state: State }[],
  now: number,
): Map<number, DrillRecord> {
  const next = new Map(previous);
  for (const d of drilled) {
    next.set(d.vmid, {
      lastSuccess: d.state === 'OK' ? now : (previous.get(d.vmid)?.lastSuccess ?? null),
      lastAttempt: now,
      state: d.state,
      snapshot: d.snapshot,
    });
  }
  return next;
}

/** Performance data: guests drilled, those that failed (critical above 0), bytes read. */
export function drillPerfData(checks: readonly Check[]): string {
  const guests = checks.filter((c) => 'failed' in c.figures);
  if (guests.length === 0) return '';
  const sum = (key: string) =>
    guests.reduce((n, c) => n + (typeof c.figures[key] === 'number' ? (c.figures[key] as number) : 0), 0);
  const items = [perfItem('guests', guests.length), perfItem('failed', sum('failed'), '', '', '0')];
  if (guests.some((c) => c.figures.full_read === 1))
    items.push(perfItem('bytes_read', sum('bytes_read'), 'B'));
  return items.join(' ');
}

/** The verdict on how long ago a guest's last successful drill was (verify --max-drill-age-days). */
export function checkDrillAge(
  guest: { readonly vmid: number; readonly name: string },
  record: DrillRecord | undefined,
  maxAgeSeconds: number,
  now: number,
): Check {
  const subject = `drill of ${subjectOf(guest.vmid, guest.name)}`;
  const last = record?.lastSuccess ?? null;
  const figures = { drill_age_seconds: last === null ? null : now - last };
  const days = (s: number) => `${(s / 86400).toFixed(1)} d`;
  if (last === null) {
    const tried = record ? ` (last drill ${record.state}, ${record.snapshot || 'no restore point'})` : '';
    return {
      state: 'WARNING',
      subject,
      message: `never passed a restore drill on this host${tried}: run zbm drill`,
      figures,
    };
  }
  const age = now - last;
  if (age > maxAgeSeconds) {
    return {
      state: 'WARNING',
      subject,
      message: `last successful restore drill ${days(age)} ago, longer than --max-drill-age-days (${days(maxAgeSeconds)}): is the drill job running? see its log`,
      figures,
    };
  }
  return { state: 'OK', subject, message: `last successful restore drill ${days(age)} ago`, figures };
}
