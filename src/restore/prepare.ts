/**
 * A restore planned onto this Proxmox node: the point chosen on the tier, its saved config read
 * there, this node's pools listed, and the plan (plan.ts) made against them and the guest that has
 * the VMID now (existing.ts). Nothing is changed; run.ts carries the plan out.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../host/process.ts';
import { readConfigArgv } from '../metadata/manifest.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import { generateMac, macPrefix } from './config.ts';
import { PVE } from './existing.ts';
import {
  type DiskOnlyPlan,
  type GuestPlan,
  type LocalState,
  planDiskRestore,
  planGuestRestore,
} from './plan.ts';
import { choosePoint, type RestorePoint } from './points.ts';
import { loadTier, originsOf, type Tier, type TierState } from './tier.ts';

/** What to restore, from restore's flags (the command's options are one). */
export interface RestoreChoice {
  readonly vmid: number;
  readonly asVmid?: number;
  readonly disk?: string;
  readonly snapshot?: string;
  readonly time?: Date;
  readonly targetStorage?: string;
  readonly force?: boolean;
  readonly newMacs?: boolean;
  readonly keepHostKeys?: boolean;
}

/** What planning reports: why there is nothing to restore, and what it passed over. */
export interface PrepareLog {
  error(msg: string): void;
  warn(msg: string): void;
}

async function readOptional(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}

/** A restore planned: what the tier and this node held when it was planned, and its plan. */
export interface Prepared {
  readonly tierState: TierState;
  /** The datasets of this node's pools, as planned against. */
  readonly localDatasets: ReadonlyMap<string, Dataset>;
  readonly plan: GuestPlan | DiskOnlyPlan;
}

/**
 * Reads the tier, chooses the point, reads its config there and this node's pools, and plans the
 * restore. null when there is nothing to restore or the plan is refused: said on the log.
 */
export async function prepareRestore(
  tier: Tier,
  here: Omit<LocalState, 'datasets'> & { readonly zfs: Zfs },
  metadataDir: string | undefined,
  opts: RestoreChoice,
  log: PrepareLog,
): Promise<Prepared | null> {
  const { pools, zfs: localZfs } = here;
  const where = `${tier.host.name}:${tier.root}`;
  const tierState = await loadTier(tier, { metadataDir, vmid: opts.vmid }, log);
  const points = tierState.points.filter((p) => p.vmid === opts.vmid);
  const usable = (p: RestorePoint) =>
    opts.disk === undefined ? p.complete : p.disks.some((d) => d.key === opts.disk && d.present);
  const choice = choosePoint(points, { snapshot: opts.snapshot, time: opts.time }, usable, where);
  if ('error' in choice) {
    log.error(choice.error);
    return null;
  }
  const { point } = choice;
  if (choice.skipped.length > 0) {
    log.warn(
      `newer backups are incomplete on ${where} and were passed over: ${choice.skipped.map((p) => p.snapshot).join(', ')}`,
    );
  }
  const { stdout: configText } = await run(
    tier.host,
    readConfigArgv(tierState.metadataDir, point.vmid, point.snapshot),
  );

  const poolRoots = [
    ...new Set([...pools.values()].filter((p) => p.pool !== '' && !p.disabled).map((p) => p.pool)),
  ];
  const localDatasets = new Map(
    (await localZfs.list({ roots: poolRoots, depth: 2 })).map((d) => [d.name, d]),
  );
  const local: LocalState = { node: here.node, pools, datasets: localDatasets, existing: here.existing };
  const prefix = macPrefix(await readOptional(path.join(PVE, 'datacenter.cfg')));
  const req = {
    point,
    configText,
    tier: where,
    asVmid: opts.asVmid,
    targetStorage: opts.targetStorage,
    force: opts.force === true,
    newMac: opts.newMacs ? () => generateMac(prefix, randomBytes(6)) : undefined,
    newUuid: randomUUID,
    now: new Date(),
    keepHostKeys: opts.keepHostKeys === true,
    origins: originsOf(tierState.datasets),
  };
  const planned =
    opts.disk === undefined
      ? planGuestRestore(req, local)
      : planDiskRestore({ ...req, disk: opts.disk }, local);
  if ('refused' in planned) {
    for (const r of planned.refused)
      log.error(`restore of guest ${opts.vmid} from ${point.snapshot} refused: ${r}`);
    return null;
  }
  return { tierState, localDatasets, plan: planned.plan };
}
