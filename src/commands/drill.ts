import { hostname } from 'node:os';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { DRILL_HOLD_TAG } from '../conventions/names.ts';
import {
  type ConfigRead,
  drillPerfData,
  type FileSystemsSurvey,
  type GuestDrill,
  holdsFileSystems,
  judgeDrill,
  planDrills,
  type ReadOutcome,
  updateRecords,
} from '../drill/plan.ts';
import { type DrillRecord, readDrillRecords, writeDrillRecords } from '../drill/state.ts';
import { ExitCode, errorMessage, UsageError, ZbmError } from '../errors.ts';
import { runName } from '../files/argv.ts';
import { type DiskSurvey, surveyDisk } from '../files/read.ts';
import { removeLeftovers, withOpenDisk } from '../files/session.ts';
import { onInterrupt } from '../host/children.ts';
import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import { acquire, describeHolder, type Lock } from '../lock/lock.ts';
import { readConfigArgv } from '../metadata/manifest.ts';
import { metadataDirOption } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { loadTier, type Tier, tierFromOptions } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';
import type { Check } from '../verify/checks.ts';
import { readBackArgv } from '../zfs/argv.ts';
import type { Dataset } from '../zfs/types.ts';
import { reportChecks, reportUnknown } from './monitoring.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type DrillOptions = CommandOptions<'drill'>;

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
async function readBack(tier: Tier, g: GuestDrill, log: Logger): Promise<ReadOutcome[]> {
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
  log: Logger,
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
async function releaseLeftoverHolds(tier: Tier, datasets: readonly Dataset[], log: Logger): Promise<void> {
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

function printPlan(drills: readonly GuestDrill[], fullRead: boolean, json: boolean | undefined): void {
  const rows = drills.map((g) => ({
    vmid: g.vmid,
    subject: g.subject,
    snapshot: g.point?.snapshot ?? null,
    error: g.error,
    disks: g.disks.map((d) => ({ key: d.key, snapshot: d.snapshot, problem: d.problem })),
    fullRead: g.reads.map((d) => d.snapshot),
  }));
  if (json) {
    writeOut(`${JSON.stringify({ dryRun: true, drills: rows }, null, 2)}\n`);
    return;
  }
  writeOut(`plan (dry run, nothing is read):\n`);
  for (const r of rows) {
    writeOut(`  ${r.subject}: ${r.snapshot ?? r.error}\n`);
    for (const d of r.disks) writeOut(`    ${d.key} ${d.snapshot}${d.problem ? `: ${d.problem}` : ''}\n`);
    if (r.snapshot !== null) {
      writeOut(
        `    ${fullRead ? `read back: ${r.fullRead.length} disk(s)` : 'blocks not read (no --full-read)'}\n`,
      );
    }
  }
}

/**
 * Restore drills on the tier that holds the backups: for each guest (or --vmid, or a --sample),
 * one restore point is checked as a restore would need it (every disk there with its recorded
 * guid, the saved config parses and names those disks, with --full-read every block readable).
 * Reports like verify: the status line first, monitoring-plugin exit codes. Each result is
 * recorded on this host for --sample and verify --max-drill-age-days.
 */
export async function drill(opts: DrillOptions, log: Logger, metrics?: Metrics): Promise<number> {
  const checks: Check[] = [];
  let what: string;
  let lock: Lock | undefined;
  try {
    if (opts.snapshot !== undefined && opts.time !== undefined)
      throw new UsageError('--snapshot and --time both choose the restore point: give one of them');
    const metadataDir = metadataDirOption(opts);
    const tier = tierFromOptions({ localZfsRoot: opts.localZfsRoot });
    const where = `${tier.host.name}:${tier.root}`;
    const vmid = opts.vmid?.length === 1 ? opts.vmid[0] : undefined;
    if (!opts.dryRun) lock = await drillLock(where, tier.root);
    const state = await loadTier(tier, { metadataDir, vmid }, log);
    if (lock) await releaseLeftoverHolds(tier, state.datasets, log);
    const surveying = opts.fileSystems === true || opts.expect !== undefined;
    if (surveying && lock) await removeLeftovers(tier, state.datasets, hostname(), log);
    let records: Map<number, DrillRecord>;
    try {
      records = await readDrillRecords(opts.stateDir, tier.root);
    } catch (err) {
      // Starting over costs one round of --sample and shows in verify; refusing would stop the drills.
      log.warn(`${errorMessage(err)}: the drills start a new record`);
      records = new Map();
    }
    const points = state.points.filter((p) => p.snapshot.startsWith(opts.prefix));
    const drills = planDrills({
      points,
      datasets: state.datasets,
      host: tier.host.name,
      root: tier.root,
      vmids: opts.vmid,
      sample: opts.sample,
      selection: { snapshot: opts.snapshot, time: opts.time },
      fullRead: opts.fullRead === true,
      records,
    });
    if (opts.dryRun) {
      printPlan(drills, opts.fullRead === true, opts.json);
      return ExitCode.ok;
    }
    what = `restore drill of ${drills.length} guest(s) on ${where}`;
    if (drills.length === 0)
      checks.push({ state: 'CRITICAL', subject: where, message: 'no restore point to drill', figures: {} });
    const drilled: { vmid: number; snapshot: string; state: Check['state'] }[] = [];
    for (const g of drills) {
      const config = g.point ? await readConfig(tier.host, state.metadataDir, g) : null;
      const reads = opts.fullRead && g.point ? await readBack(tier, g, log) : null;
      const surveys =
        surveying && g.point ? await surveyGuest(tier, g, state.datasets, opts.expect ?? null, log) : null;
      const c = judgeDrill(g, config, reads, surveys);
      checks.push(c);
      drilled.push({ vmid: g.vmid, snapshot: g.point?.snapshot ?? '', state: c.state });
    }
    const now = Math.floor(Date.now() / 1000);
    const next = updateRecords(records, drilled, now);
    try {
      await writeDrillRecords(opts.stateDir, tier.root, next);
    } catch (err) {
      checks.push({
        state: 'UNKNOWN',
        subject: `records of ${where}`,
        message: `cannot record the drills in ${opts.stateDir}: ${errorMessage(err)}; --sample and verify --max-drill-age-days will not see them`,
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
  } catch (err) {
    return reportUnknown(err, opts.json, log);
  } finally {
    lock?.release();
  }
  return reportChecks(what, checks, drillPerfData(checks), opts.json, log, metrics);
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
