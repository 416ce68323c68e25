/**
 * The run of a restore onto this Proxmox node, once prepare.ts planned it: under the guest's lock,
 * the disks received under temporary names, renamed into place only once all of them arrived, and
 * the config written.
 */
import { readFileSync } from 'node:fs';
import { formatStamp } from '../conventions/names.ts';
import { errorMessage, ZbmError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import { RateLimiter } from '../host/rate.ts';
import { acquire, describeHolder } from '../lock/lock.ts';
import { writeFileAtomic } from '../metadata/write.ts';
import type { Step } from '../plan/diff.ts';
import { formatBytes } from '../text/human.ts';
import { syncDataset } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import { subvolProperties, waitForZvolsArgv } from './argv.ts';
import { addUnused } from './config.ts';
import { PVE } from './existing.ts';
import type { DiskPlan } from './plan.ts';
import type { Prepared, RestoreChoice } from './prepare.ts';
import type { Tier } from './tier.ts';

/** Where the config of a guest replaced by a forced restore is kept (pmxcfs is no place for extra files). */
const REPLACED_CONFIGS = '/var/lib/zbm/replaced';

/** One disk received and in place, as the result reports it. */
export interface Received {
  readonly key: string;
  readonly target: string;
  readonly volume: string;
  readonly bytes: number;
  readonly resumed: string | null;
}

/** What a restore reports as it goes; the command's logger is one. */
export interface RestoreLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
}

/** The progress line of the disk under way; the command's terminal line is one. */
export interface RestoreProgress {
  update(label: string, bytes: number): void;
  clear(): void;
}

/** What to restore and how, from restore's flags (the command's options are one). */
export interface RestoreWhat extends RestoreChoice {
  readonly bwlimit?: number;
  readonly lockWait: number;
}

/**
 * A linked clone's one step: the increment from its template's copy on the tier to the point,
 * received as a clone of the template's `@__base__` here (the same snapshot, by guid).
 */
function linkedChain(
  linked: NonNullable<DiskPlan['linked']>,
  source: Dataset | null,
  snapshot: string,
): { origin: string; steps: Step[] } {
  const to = source?.snapshots.find((s) => s.short === snapshot);
  if (!to) throw new ZbmError(`${source?.name ?? 'the backup'}@${snapshot} is gone from the tier`);
  const [dataset = '', short = ''] = linked.from.split('@');
  return { origin: linked.origin, steps: [{ from: { short, bookmark: false, dataset }, to }] };
}

/** Receives every disk into its temporary dataset (resuming, or skipping those already there). */
async function receiveAll(
  disks: readonly DiskPlan[],
  tier: Tier,
  tierDatasets: ReadonlyMap<string, Dataset>,
  local: Zfs,
  localDatasets: ReadonlyMap<string, Dataset>,
  opts: RestoreWhat,
  progress: RestoreProgress,
  log: RestoreLog,
  vmid: number,
): Promise<Received[]> {
  const limiter = opts.bwlimit ? new RateLimiter(opts.bwlimit) : undefined;
  const received: Received[] = [];
  for (const d of disks) {
    if (d.tempState === 'complete') {
      log.info(`${d.key}: ${d.temp} already holds ${d.snapshot} from an interrupted restore`);
      received.push({
        key: d.key,
        target: d.target,
        volume: d.volume,
        bytes: 0,
        resumed: 'already received',
      });
      continue;
    }
    const label = `guest ${vmid} ${d.key}`;
    log.info(
      `${d.key}: ${tier.host.name}:${d.source}@${d.snapshot} → ${d.temp} (${formatBytes(d.referenced)})`,
    );
    const source = tierDatasets.get(d.source) ?? null;
    const r = await syncDataset(
      { zfs: tier.zfs, dataset: d.source, listing: source },
      { zfs: local, dataset: d.temp, listing: localDatasets.get(d.temp) ?? null },
      {
        select: (s) => s === d.snapshot,
        newChain: d.linked ? linkedChain(d.linked, source, d.snapshot) : undefined,
        limiter,
        onProgress: (b) => progress.update(label, b),
        onMessage: (m) => {
          progress.clear();
          log.info(m);
        },
      },
    );
    progress.clear();
    if (r.common.guid !== d.guid) {
      throw new ZbmError(
        `${d.temp} holds ${r.common.short} with guid ${r.common.guid}, not the backup's ${d.guid}`,
      );
    }
    received.push({ key: d.key, target: d.target, volume: d.volume, bytes: r.bytes, resumed: r.resumed });
  }
  return received;
}

/** Renames the temporary datasets into place, moving what is there aside first (forced restores). */
async function moveIntoPlace(disks: readonly DiskPlan[], local: Zfs, log: RestoreLog): Promise<void> {
  const now = new Set(
    (await local.list({ roots: disks.map((d) => d.target), depth: 0, withSnapshots: false })).map(
      (d) => d.name,
    ),
  );
  const appeared = disks.filter((d) => now.has(d.target) && d.aside === null);
  if (appeared.length > 0) {
    throw new ZbmError(
      `${appeared.map((d) => d.target).join(', ')} appeared on this node during the restore; nothing was renamed, ` +
        `the restored data waits in ${appeared.map((d) => d.temp).join(', ')}: run the restore again`,
    );
  }
  for (const d of disks) {
    if (d.aside && now.has(d.target)) {
      await local.rename(d.target, d.aside);
      log.warn(
        `${d.target} was moved aside to ${d.aside} (destroy it with \`zfs destroy -r ${d.aside}\` once the restore is checked)`,
      );
    }
    await local.rename(d.temp, d.target);
  }
}

/** After the rename: the snapshot goes (unless the chain continues from it), file systems mount, zvol links appear. */
async function finish(
  disks: readonly DiskPlan[],
  keepSnapshot: boolean,
  local: Zfs,
  log: RestoreLog,
): Promise<void> {
  if (!keepSnapshot) {
    for (const d of disks) {
      await local.destroySnapshots(d.target, [d.snapshot]).catch((err: unknown) => {
        log.warn(`could not destroy ${d.target}@${d.snapshot}: ${errorMessage(err)}; destroy it yourself`);
      });
    }
  }
  for (const d of disks.filter((x) => x.subvol)) {
    await local.mount(d.target).catch((err: unknown) => {
      log.warn(`could not mount ${d.target}: ${errorMessage(err)}`);
    });
  }
  const zvols = disks.filter((x) => !x.subvol);
  if (zvols.length > 0) {
    await run(local.host, waitForZvolsArgv(zvols)).catch((err: unknown) => {
      log.warn(errorMessage(err));
    });
  }
}

async function setSubvolProperties(disks: readonly DiskPlan[], local: Zfs): Promise<void> {
  for (const d of disks) {
    if (d.subvol) await local.setProperties(d.temp, subvolProperties(d.subvol.refquota));
  }
}

/** What a restore did: each disk received, and what the result adds (the kept config, the unused key). */
export interface Restored {
  readonly received: readonly Received[];
  readonly extra: Record<string, unknown>;
}

/**
 * Under the guest's lock: receives every disk, renames them into place and writes the config.
 * null when another zbm run holds the guest: said on the log.
 */
export async function runRestore(
  prepared: Prepared,
  tier: Tier,
  localHost: Host,
  localZfs: Zfs,
  opts: RestoreWhat,
  progress: RestoreProgress,
  log: RestoreLog,
): Promise<Restored | null> {
  const { plan, tierState, localDatasets } = prepared;
  const acquired = await acquire(`guest-${plan.vmid}`, `restore of guest ${plan.vmid}`, opts.lockWait * 1000);
  if ('heldBy' in acquired) {
    log.error(`${describeHolder(acquired.heldBy)} is working on guest ${plan.vmid}; try again later`);
    return null;
  }
  try {
    const tierDatasets = new Map(tierState.datasets.map((d) => [d.name, d]));
    const disks = plan.kind === 'guest' ? plan.disks : [plan.disk];
    const received = await receiveAll(
      disks,
      tier,
      tierDatasets,
      localZfs,
      localDatasets,
      opts,
      progress,
      log,
      plan.vmid,
    ).catch((err: unknown) => {
      throw new ZbmError(
        `${errorMessage(err)}\nnothing was renamed and no config written; what arrived waits under ${disks.map((d) => d.temp).join(', ')}: ` +
          'run the same restore again to resume',
      );
    });
    await setSubvolProperties(disks, localZfs);
    await moveIntoPlace(disks, localZfs, log);
    const configFile = `${PVE}/${plan.configPath}`;
    let extra: Record<string, unknown> = {};
    if (plan.kind === 'guest') {
      if (plan.replaces?.configText !== undefined) {
        const saved = `${REPLACED_CONFIGS}/${plan.vmid}-${formatStamp(new Date())}.conf`;
        await writeFileAtomic(localHost, saved, plan.replaces.configText);
        log.warn(`the replaced config of guest ${plan.vmid} is kept as ${saved}`);
        extra = { replacedConfig: saved };
      }
      await writeFileAtomic(localHost, configFile, plan.configText);
      log.info(`guest ${plan.vmid}: config written to ${configFile}`);
      await finish(disks, plan.keepSnapshot, localZfs, log);
    } else {
      // Read again just before writing: the guest may have been edited while the disk arrived.
      const fresh = addUnused(readFileSync(configFile, 'utf8'), plan.disk.volume);
      await writeFileAtomic(localHost, configFile, fresh.text);
      log.info(`guest ${plan.vmid}: ${plan.disk.volume} added to ${configFile} as ${fresh.key}`);
      extra = { unusedKey: fresh.key };
      await finish(disks, false, localZfs, log);
    }
    return { received, extra };
  } finally {
    acquired.lock.release();
  }
}
