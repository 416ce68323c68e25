/**
 * The run of a restore drill on the tier that holds the backups: under the tier's drill lock, each
 * chosen guest's restore point checked (config, disks, with --full-read every block, with
 * --file-systems what zbm files would read), judged by plan.ts and recorded in state.ts. The
 * command (commands/drill.ts) checks its flags, gives the tier, prints a dry run's plan and reports
 * the checks.
 */
import { hostname } from 'node:os';
import { DRILL_HOLD_TAG } from '../conventions/names.ts';
import { errorMessage, ZbmError } from '../errors.ts';
import { runName } from '../files/argv.ts';
import { type DiskSurvey, surveyDisk } from '../files/read.ts';
import { removeLeftovers, withOpenDisk } from '../files/session.ts';
import { onInterrupt } from '../host/children.ts';
import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import { acquire, describeHolder, type Lock } from '../lock/lock.ts';
import { readConfigArgv } from '../metadata/manifest.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { loadTier, type Tier } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';
import type { Check } from '../verify/checks.ts';
import { readBackArgv } from '../zfs/argv.ts';
import type { Dataset } from '../zfs/types.ts';
import {
  type ConfigRead,
  type FileSystemsSurvey,
  type GuestDrill,
  holdsFileSystems,
  judgeDrill,
  planDrills,
  type ReadOutcome,
  updateRecords,
} from './plan.ts';
import { type DrillRecord, readDrillRecords, writeDrillRecords } from './state.ts';

/** What a drill does, from its flags (the command's options are one). */
export interface DrillScope {
  readonly prefix: string;
  readonly vmid?: number[];
  readonly sample?: number;
  readonly snapshot?: string;
  readonly time?: Date;
  readonly fullRead?: boolean;
  readonly fileSystems?: boolean;
  readonly expect?: string;
  readonly stateDir: string;
  readonly dryRun?: boolean;
}

/** What a drill reports besides its checks; the command's logger is one. */
export interface DrillLog {
  info(msg: string): void;
  warn(msg: string): void;
}

/** A dry run's plan, or what was drilled and its checks. */
export type DrillOutcome =
  | { readonly kind: 'plan'; readonly drills: readonly GuestDrill[] }
  | { readonly kind: 'checks'; readonly what: string; readonly checks: readonly Check[] };

async function readConfig(host: Host, metadataDir: string, g: GuestDrill): Promise<ConfigRead> {
  if (!g.point) return { error: 'no restore point' };
  try {
    return { text: (await run(host, readConfigArgv(metadataDir, g.vmid, g.point.snapshot))).stdout };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/**
 * Reads each present disk back, one after the other (the pool's bandwidth is the limit anyway),
 * with the restore point held meanwhile: a full read can take hours, and a prune in that time
 * would otherwise destroy what is being read, failing the drill for nothing.
 */
async function readBack(tier: Tier, g: GuestDrill, log: DrillLog): Promise<ReadOutcome[]> {
  const snapshots = g.reads.map((d) => d.snapshot);
  try {
    await tier.zfs.hold(DRILL_HOLD_TAG, snapshots);
  } catch (err) {
    const error = `cannot hold the restore point for the read: ${errorMessage(err)}`;
    return g.reads.map((d) => ({ key: d.key, error }));
  }
  const release = () => tier.zfs.release(DRILL_HOLD_TAG, snapshots);
  const unregister = onInterrupt(release);
  const out: ReadOutcome[] = [];
  try {
    for (const d of g.reads) {
      log.info(`${g.subject}: reading ${d.snapshot} back (${formatBytes(d.referenced)})`);
      try {
        await run(tier.host, readBackArgv(d.snapshot, d.encrypted));
        out.push({ key: d.key, error: null });
      } catch (err) {
        out.push({ key: d.key, error: errorMessage(err) });
      }
    }
  } finally {
    unregister();
    await release().catch((err: unknown) =>
      log.warn(
        `${g.subject}: cannot release the drill's hold (${DRILL_HOLD_TAG}) on ${snapshots.join(', ')}: ${errorMessage(err)}; the next drill releases it`,
      ),
    );
  }
  return out;
}

/**
 * Each present disk opened as `zbm files` opens it (held, cloned read-only, closed again) and its
 * file systems recognised and listed with the same reader; one disk after the other.
 */
async function surveyGuest(
  tier: Tier,
  g: GuestDrill,
  datasets: readonly Dataset[],
  expect: string | null,
  log: DrillLog,
): Promise<FileSystemsSurvey> {
  const components = expect === null ? null : expect.split('/').filter((c) => c !== '');
  const disks: DiskSurvey[] = [];
  for (const d of g.disks.filter((x) => x.problem === null && holdsFileSystems(x.key))) {
    const dataset = d.snapshot.slice(0, d.snapshot.indexOf('@'));
    const volume = datasets.find((x) => x.name === dataset)?.type === 'volume';
    log.info(`${g.subject}: recognising the file systems of ${d.key} (${d.snapshot})`);
    try {
      const name = runName(hostname(), process.pid);
      disks.push(
        await withOpenDisk(tier, d.snapshot, volume, name, log, (disk) =>
          surveyDisk(tier, disk, d.key, components),
        ),
      );
    } catch (err) {
      const message = `cannot open it for reading: ${errorMessage(err)}`;
      disks.push({
        key: d.key,
        fileSystems: [
          { where: d.key, fstype: null, rootEntries: null, problem: { kind: 'failed', message } },
        ],
        expectFound: null,
      });
    }
  }
  return { disks, expect };
}

/**
 * Releases the holds a killed drill left (the lock says no other drill runs). A failure only warns:
 * a leftover hold makes prune keep a snapshot longer, and prune says why.
 */
async function releaseLeftoverHolds(tier: Tier, datasets: readonly Dataset[], log: DrillLog): Promise<void> {
  const held = datasets.flatMap((d) => d.snapshots.filter((s) => s.userrefs > 0).map((s) => s.name));
  try {
    const left = (await tier.zfs.holds(held)).filter((h) => h.tag === DRILL_HOLD_TAG).map((h) => h.snapshot);
    if (left.length === 0) return;
    await tier.zfs.release(DRILL_HOLD_TAG, left);
    log.info(`released the hold (${DRILL_HOLD_TAG}) an interrupted drill left on ${left.join(', ')}`);
  } catch (err) {
    log.warn(`cannot release the holds (${DRILL_HOLD_TAG}) an interrupted drill left: ${errorMessage(err)}`);
  }
}

/**
 * Drills the tier: under its drill lock (none for a dry run), the leftovers of a killed drill
 * removed, the guests chosen by plan.ts, each one's restore point checked and judged, the results
 * recorded for --sample and verify --max-drill-age-days, and each guest's last success set as a
 * gauge. A problem of one guest is its check; what stops the whole drill throws.
 */
export async function runDrills(
  tier: Tier,
  metadataDir: string | undefined,
  scope: DrillScope,
  log: DrillLog,
  metrics?: Metrics,
): Promise<DrillOutcome> {
  const where = `${tier.host.name}:${tier.root}`;
  const vmid = scope.vmid?.length === 1 ? scope.vmid[0] : undefined;
  let lock: Lock | undefined;
  try {
    if (!scope.dryRun) lock = await drillLock(where, tier.root);
    const state = await loadTier(tier, { metadataDir, vmid }, log);
    if (lock) await releaseLeftoverHolds(tier, state.datasets, log);
    const surveying = scope.fileSystems === true || scope.expect !== undefined;
    if (surveying && lock) await removeLeftovers(tier, state.datasets, hostname(), log);
    let records: Map<number, DrillRecord>;
    try {
      records = await readDrillRecords(scope.stateDir, tier.root);
    } catch (err) {
      // Starting over costs one round of --sample and shows in verify; refusing would stop the drills.
      log.warn(`${errorMessage(err)}: the drills start a new record`);
      records = new Map();
    }
    const points = state.points.filter((p) => p.snapshot.startsWith(scope.prefix));
    const drills = planDrills({
      points,
      datasets: state.datasets,
      host: tier.host.name,
      root: tier.root,
      vmids: scope.vmid,
      sample: scope.sample,
      selection: { snapshot: scope.snapshot, time: scope.time },
      fullRead: scope.fullRead === true,
      records,
    });
    if (scope.dryRun) return { kind: 'plan', drills };
    const checks: Check[] = [];
    if (drills.length === 0)
      checks.push({ state: 'CRITICAL', subject: where, message: 'no restore point to drill', figures: {} });
    const drilled: { vmid: number; snapshot: string; state: Check['state'] }[] = [];
    for (const g of drills) {
      const config = g.point ? await readConfig(tier.host, state.metadataDir, g) : null;
      const reads = scope.fullRead && g.point ? await readBack(tier, g, log) : null;
      const surveys =
        surveying && g.point ? await surveyGuest(tier, g, state.datasets, scope.expect ?? null, log) : null;
      const c = judgeDrill(g, config, reads, surveys);
      checks.push(c);
      drilled.push({ vmid: g.vmid, snapshot: g.point?.snapshot ?? '', state: c.state });
    }
    const now = Math.floor(Date.now() / 1000);
    const next = updateRecords(records, drilled, now);
    try {
      await writeDrillRecords(scope.stateDir, tier.root, next);
    } catch (err) {
      checks.push({
        state: 'UNKNOWN',
        subject: `records of ${where}`,
        message: `cannot record the drills in ${scope.stateDir}: ${errorMessage(err)}; --sample and verify --max-drill-age-days will not see them`,
        figures: {},
      });
    }
    // Every guest of the tier with a drill that passed, not only this run's: one run of --sample
    // must not hide the others from monitoring.
    for (const v of new Set(points.map((p) => p.vmid))) {
      const last = next.get(v)?.lastSuccess;
      if (last === null || last === undefined) continue;
      metrics?.set(
        'zbm_drill_last_success_timestamp_seconds',
        'When the guest last passed a restore drill on this host (Unix time).',
        { vmid: String(v) },
        last,
      );
    }
    return { kind: 'checks', what: `restore drill of ${drills.length} guest(s) on ${where}`, checks };
  } finally {
    lock?.release();
  }
}

/** One drill of a tier at a time: its holds are then its own, and a leftover one is a killed drill's. */
async function drillLock(where: string, root: string): Promise<Lock> {
  const r = await acquire(`drill-${root}`, `drill of ${root}`, 0);
  if ('heldBy' in r)
    throw new ZbmError(
      `another restore drill of ${where} is running: ${describeHolder(r.heldBy)}; this one did nothing`,
    );
  return r.lock;
}
