/**
 * The restore plan: which backup dataset goes into which dataset of this node, under which
 * temporary name, what is moved aside, and the config the guest gets. Pure; the executor in
 * run.ts only runs it.
 */

import { formatStamp } from '../conventions/names.ts';
import { configPath, parseGuestConfig } from '../pve/index.ts';
import type { ZfsPool } from '../pve/storage.ts';
import type { GuestType } from '../pve/vmlist.ts';
import { formatBytes } from '../text/human.ts';
import { nameProblem } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import {
  nextDiskName,
  optionOf,
  referencedVolnames,
  renameVolname,
  rewriteConfig,
  storageOf,
  volumeKind,
  volumeOf,
} from './config.ts';
import type { PointDisk, RestorePoint } from './points.ts';

/** Prefix of the dataset a disk is received into until every disk of the guest has arrived. */
export const TEMP_PREFIX = 'zbm-restore-';
/** Prefix of the name an existing dataset is moved to when a forced restore replaces it. */
export const REPLACED_PREFIX = 'zbm-replaced-';

export interface ExistingGuest {
  readonly node: string;
  readonly type: GuestType;
  /** Its config text, when it is on this node. */
  readonly configText?: string;
  readonly running: boolean;
}

export interface LocalState {
  readonly node: string;
  /** This node's zfspool storages (storage.cfg). */
  readonly pools: ReadonlyMap<string, ZfsPool>;
  /** The datasets of the target pools, with their snapshots. */
  readonly datasets: ReadonlyMap<string, Dataset>;
  /** The guest that has the target VMID now (.vmlist or a config file on any node), or null. */
  readonly existing: ExistingGuest | null;
}

export interface RestoreRequest {
  readonly point: RestorePoint;
  /** The guest's config as it was backed up. */
  readonly configText: string;
  /** The tier restored from, as `host:root`, for messages. */
  readonly tier: string;
  readonly asVmid?: number;
  readonly targetStorage?: string;
  readonly force: boolean;
  readonly newMac?: () => string;
  readonly newUuid: () => string;
  readonly now: Date;
  /** Restore hookscript:, QEMU args: and lxc.* keys (config.ts isHostKey); default: shown, left out. */
  readonly keepHostKeys?: boolean;
  /**
   * The backup datasets on the tier that are clones (a linked clone's copy, received as a clone of
   * its template's): their origin snapshot there and its guid, as the tier's listing shows them.
   */
  readonly origins?: ReadonlyMap<string, OriginOnTier>;
}

export interface OriginOnTier {
  readonly snapshot: string;
  readonly guid: string;
}

export type TempState = 'absent' | 'partial' | 'complete';

export interface DiskPlan {
  readonly key: string;
  /** The backup dataset on the tier, and its snapshot. */
  readonly source: string;
  readonly snapshot: string;
  readonly guid: string;
  readonly referenced: number;
  readonly storage: string;
  /** The restored disk's volume id, `storage:volname`. */
  readonly volume: string;
  readonly target: string;
  /** Receives the stream; renamed to target once every disk has arrived. */
  readonly temp: string;
  readonly tempState: TempState;
  /** Where the dataset now at target is moved (forced restore over an existing one), or null. */
  readonly aside: string | null;
  /** CT file systems get PVE's properties back (the stream carries none): refquota from `size=`. */
  readonly subvol: { readonly refquota: string | null } | null;
  /**
   * A linked clone restored as a linked clone: received as a clone of origin (the template's
   * `@__base__` on this node) from the increment that starts at from (its copy on the tier).
   */
  readonly linked: { readonly origin: string; readonly from: string } | null;
}

export interface GuestPlan {
  readonly kind: 'guest';
  readonly fromVmid: number;
  readonly vmid: number;
  readonly type: GuestType;
  readonly name: string;
  readonly snapshot: string;
  readonly time: string;
  readonly tier: string;
  /** The existing guest that is replaced (forced), or null for a new guest. */
  readonly replaces: ExistingGuest | null;
  readonly disks: readonly DiskPlan[];
  /** Relative to /etc/pve. */
  readonly configPath: string;
  readonly configText: string;
  /** Keep the received snapshot: the next backup of the guest goes on from it (in a new chain when it is older). */
  readonly keepSnapshot: boolean;
  readonly warnings: readonly string[];
}

export interface DiskOnlyPlan {
  readonly kind: 'disk';
  readonly fromVmid: number;
  readonly vmid: number;
  readonly type: GuestType;
  readonly snapshot: string;
  readonly time: string;
  readonly tier: string;
  readonly disk: DiskPlan;
  readonly configPath: string;
  readonly warnings: readonly string[];
}

export type Planned<T> = { readonly plan: T } | { readonly refused: readonly string[] };

const SIZE = /^\d+(?:\.\d+)?[KMGTP]?$/;

function tempStateOf(listing: Dataset | undefined, d: PointDisk, snapshot: string): TempState | null {
  if (!listing) return 'absent';
  if (listing.resumeToken) return 'partial';
  const snap = listing.snapshots.find((s) => s.short === snapshot);
  if (snap && snap.guid === d.guid && listing.written === 0) return 'complete';
  return null;
}

function tempProblem(temp: string, listing: Dataset | undefined, snapshot: string): string {
  const has = listing?.snapshots.map((s) => s.short).join(', ') || 'no snapshot';
  return (
    `${temp} exists from another restore and does not hold ${snapshot} (it has ${has}): ` +
    `finish that restore (--snapshot of the one it holds) or destroy it with \`zfs destroy -r ${temp}\``
  );
}

interface Placed {
  readonly storage: string;
  readonly volname: string;
  readonly target: string;
  readonly temp: string;
}

/** Where one disk goes on this node, or why it cannot. */
function place(
  storage: string | null,
  volname: string,
  local: LocalState,
  key: string,
): Placed | { error: string } {
  if (storage === null) return { error: `${key}: its volume names no storage` };
  const pool = local.pools.get(storage);
  if (!pool) {
    return {
      error: `${key}: storage ${JSON.stringify(storage)} is not a zfspool storage in this node's /etc/pve/storage.cfg; choose one with --target-storage`,
    };
  }
  if (pool.disabled) return { error: `${key}: zfspool storage ${storage} is disabled in storage.cfg` };
  if (pool.nodes !== null && !pool.nodes.includes(local.node)) {
    return { error: `${key}: zfspool storage ${storage} is not enabled on node ${local.node}` };
  }
  if (pool.pool === '') return { error: `${key}: zfspool storage ${storage} has no pool in storage.cfg` };
  const target = `${pool.pool}/${volname}`;
  const temp = `${pool.pool}/${TEMP_PREFIX}${volname}`;
  for (const n of [target, temp]) {
    const p = nameProblem(n, 'dataset');
    if (p) return { error: `${key}: ${JSON.stringify(n)} is not a valid dataset name: ${p}` };
  }
  return { storage, volname, target, temp };
}

/** The refusals common to both kinds of restore. */
function diskProblems(point: RestorePoint, d: PointDisk, tier: string): string[] {
  const out: string[] = [];
  if (!d.present) out.push(`${d.key}: ${d.dataset}@${point.snapshot} is not on ${tier}`);
  if (d.encrypted) {
    out.push(
      `${d.key}: ${d.dataset} on ${tier} is encrypted (its backups are raw sends); zbm cannot restore encrypted backups yet: ` +
        `send it yourself with \`zfs send -w ${d.dataset}@${point.snapshot}\` into a dataset of this node and load its key`,
    );
  }
  return out;
}

/** The config value of a disk in the backed-up config (authoritative over the manifest's copy). */
function configValue(current: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(current, key) ? current[key] : undefined;
}

/** A disk's config value in the backed-up config, and its volume id (the manifest's when the config lacks it). */
function backedUpVolume(
  type: RestorePoint['type'],
  current: ReturnType<typeof parseGuestConfig>['current'],
  d: PointDisk,
): { value: string | undefined; volume: string } {
  const value = configValue(current, d.key);
  return { value, volume: value === undefined ? d.volume : (volumeOf(type, value) ?? d.volume) };
}

function diskPlan(
  d: PointDisk,
  snapshot: string,
  placed: Placed,
  value: string | undefined,
  tempState: TempState,
  aside: string | null,
  link: Link | null = null,
): DiskPlan {
  const size = value === undefined ? undefined : optionOf(value, 'size');
  return {
    key: d.key,
    source: d.dataset,
    snapshot,
    guid: d.guid,
    referenced: d.referenced,
    storage: placed.storage,
    volume: `${placed.storage}:${link ? `${link.base}/` : ''}${placed.volname}`,
    target: placed.target,
    temp: placed.temp,
    tempState,
    aside,
    subvol:
      volumeKind(placed.volname) === 'subvol' ? { refquota: size && SIZE.test(size) ? size : null } : null,
    linked: link ? { origin: link.origin, from: link.from } : null,
  };
}

interface Link {
  /** The template's volume name, `base-102-disk-0`. */
  readonly base: string;
  readonly origin: string;
  readonly from: string;
}

/**
 * Whether a linked clone's disk can come back as a linked clone on this node: its volume names a
 * template (`base-102-disk-0/vm-105-disk-0`), its copy on the tier is a clone, and the template's
 * `@__base__` here is that copy's origin by guid. Otherwise it comes back as a full copy, and the
 * second value says why.
 */
function linkOf(
  volume: string,
  d: PointDisk,
  placed: Placed,
  req: RestoreRequest,
  local: LocalState,
): { link: Link | null; why: string | null } {
  const volname = volume.slice(volume.indexOf(':') + 1);
  const slash = volname.lastIndexOf('/');
  if (slash <= 0) return { link: null, why: null };
  const base = volname.slice(0, slash);
  const pool = placed.target.slice(0, placed.target.lastIndexOf('/'));
  const origin = req.origins?.get(d.dataset);
  if (!origin) return { link: null, why: `its copy on ${req.tier} is no clone of its template's` };
  const here = local.datasets.get(`${pool}/${base}`)?.snapshots.find((s) => s.short === '__base__');
  if (!here) return { link: null, why: `${pool}/${base}@__base__ is not on this node` };
  if (here.guid !== origin.guid)
    return {
      link: null,
      why: `${pool}/${base}@__base__ (guid ${here.guid}) is not the origin of its copy on ${req.tier} (${origin.snapshot}, guid ${origin.guid})`,
    };
  return { link: { base, origin: here.name, from: origin.snapshot }, why: null };
}

/**
 * Plans the restore of a whole guest: every disk of the backup under its (renamed) volume name on
 * its storage, the config rewritten to match. Refuses an existing guest or dataset unless forced,
 * and a running or foreign guest even then.
 */
export function planGuestRestore(req: RestoreRequest, local: LocalState): Planned<GuestPlan> {
  const { point } = req;
  const vmid = req.asVmid ?? point.vmid;
  const refused: string[] = [];
  const warnings: string[] = [];
  const current = parseGuestConfig(req.configText).current;
  const ex = local.existing;
  if (ex) {
    const where = `guest ${vmid} exists (${ex.type} on node ${ex.node})`;
    if (ex.node !== local.node) {
      refused.push(
        `${where}: zbm restores over a guest only on its own node; restore as a new guest with --as-vmid`,
      );
    } else if (ex.type !== point.type) {
      refused.push(`${where}, the backup is a ${point.type}: restore as a new guest with --as-vmid`);
    } else if (!req.force) {
      refused.push(
        `${where}: restore as a new guest with --as-vmid <free id>, or replace it with --force (its disks are moved aside, not destroyed)`,
      );
    } else if (ex.running) {
      refused.push(`${where} and is running: stop it first`);
    }
  }
  if (point.disks.length === 0) refused.push(`backup ${point.snapshot} of guest ${point.vmid} has no disk`);

  const when = formatStamp(req.now);
  const disks: DiskPlan[] = [];
  for (const d of point.disks) {
    refused.push(...diskProblems(point, d, req.tier));
    const { value, volume } = backedUpVolume(point.type, current, d);
    const from = storageOf(volume);
    let volname: string;
    try {
      volname = renameVolname(from === null ? volume : volume.slice(from.length + 1), vmid);
    } catch (err) {
      refused.push(`${d.key}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const placed = place(req.targetStorage ?? from, volname, local, d.key);
    if ('error' in placed) {
      refused.push(placed.error);
      continue;
    }
    const tempListing = local.datasets.get(placed.temp);
    const tempState = tempStateOf(tempListing, d, point.snapshot);
    if (tempState === null) refused.push(tempProblem(placed.temp, tempListing, point.snapshot));
    const exists = local.datasets.has(placed.target);
    if (exists && !req.force) {
      refused.push(
        `${d.key}: ${placed.target} exists on this node; zbm does not overwrite it (--force moves it aside)`,
      );
    }
    const { link, why } = linkOf(volume, d, placed, req, local);
    if (why !== null) warnings.push(`${d.key} is restored as a full copy, not as a linked clone: ${why}`);
    disks.push(
      diskPlan(
        d,
        point.snapshot,
        placed,
        value,
        tempState ?? 'absent',
        exists
          ? `${placed.target.slice(0, placed.target.lastIndexOf('/'))}/${REPLACED_PREFIX}${when}-${placed.volname}`
          : null,
        link,
      ),
    );
  }
  const targets = disks.map((d) => d.target);
  for (const t of new Set(targets)) {
    if (targets.filter((x) => x === t).length > 1) refused.push(`two disks would be restored to ${t}`);
  }
  if (refused.length > 0) return { refused };

  const rewritten = rewriteConfig({
    text: req.configText,
    type: point.type,
    fromVmid: point.vmid,
    toVmid: vmid,
    volumes: new Map(disks.map((d) => [d.key, d.volume])),
    newMac: req.newMac,
    newUuid: req.newUuid,
    keepHostKeys: req.keepHostKeys,
  });
  for (const x of rewritten.dropped) warnings.push(`${x.key} left out of the restored config: ${x.reason}`);
  for (const x of rewritten.untouched) {
    warnings.push(
      `${x.key} (${x.volume}) is not in the backup: the restored config still names it as it was`,
    );
  }
  // Kept in place: the next backup goes on from it, in the same chain when it is the newest backup,
  // else in a new chain beside the old one, cloned from it (plan/chain.ts): no full copy either way.
  const keepSnapshot = vmid === point.vmid;
  if (keepSnapshot && !point.disks.every((d) => d.newest)) {
    warnings.push(
      `${point.snapshot} is not the newest backup of guest ${vmid} on ${req.tier}: the next backup of guest ${vmid} starts a new chain ` +
        `beside its old backups, as a clone of ${point.snapshot}; the newer backups stay where they are`,
    );
  }
  return {
    plan: {
      kind: 'guest',
      fromVmid: point.vmid,
      vmid,
      type: point.type,
      name: point.name,
      snapshot: point.snapshot,
      time: point.time,
      tier: req.tier,
      replaces: ex,
      disks,
      configPath: configPath(local.node, point.type, vmid),
      configText: rewritten.text,
      keepSnapshot,
      warnings,
    },
  };
}

/**
 * Plans the restore of one disk as a new detached volume of an existing guest of this node: the
 * next free `vm-<vmid>-disk-N` (or `subvol-`) on the storage, `unusedN` in the config.
 */
export function planDiskRestore(
  req: RestoreRequest & { disk: string },
  local: LocalState,
): Planned<DiskOnlyPlan> {
  const { point } = req;
  const vmid = req.asVmid ?? point.vmid;
  const d = point.disks.find((x) => x.key === req.disk);
  if (!d) {
    return {
      refused: [
        `backup ${point.snapshot} of guest ${point.vmid} has no disk ${req.disk} (it has ${point.disks.map((x) => x.key).join(', ') || 'none'})`,
      ],
    };
  }
  const ex = local.existing;
  const refused: string[] = diskProblems(point, d, req.tier);
  if (!ex || ex.node !== local.node || ex.configText === undefined) {
    refused.push(
      `guest ${vmid} does not exist on this node (${local.node}): a single disk is restored into an existing guest; restore the whole guest instead`,
    );
  } else if (ex.type !== point.type) {
    refused.push(`guest ${vmid} is a ${ex.type}, the backup is a ${point.type}`);
  }
  const { value, volume } = backedUpVolume(point.type, parseGuestConfig(req.configText).current, d);
  const from = storageOf(volume);
  const storage = req.targetStorage ?? from;
  const pool = storage === null ? undefined : local.pools.get(storage)?.pool;
  const inPool = new Set(
    [...local.datasets.keys()]
      .filter((n) => pool !== undefined && n.startsWith(`${pool}/`))
      .map((n) => n.slice(n.lastIndexOf('/') + 1)),
  );
  const taken = new Set([
    ...inPool,
    ...(ex?.configText === undefined ? [] : referencedVolnames(point.type, ex.configText)),
  ]);
  const volname = nextDiskName(volumeKind(volume), vmid, taken);
  const placed = place(storage, volname, local, d.key);
  if ('error' in placed) refused.push(placed.error);
  if (refused.length > 0 || 'error' in placed) return { refused };
  const tempListing = local.datasets.get(placed.temp);
  const tempState = tempStateOf(tempListing, d, point.snapshot);
  if (tempState === null) return { refused: [tempProblem(placed.temp, tempListing, point.snapshot)] };
  return {
    plan: {
      kind: 'disk',
      fromVmid: point.vmid,
      vmid,
      type: point.type,
      snapshot: point.snapshot,
      time: point.time,
      tier: req.tier,
      disk: diskPlan(d, point.snapshot, placed, value, tempState, null),
      configPath: configPath(local.node, point.type, vmid),
      warnings: [],
    },
  };
}

function diskLine(d: DiskPlan, tierHost: string): string {
  const resume =
    d.tempState === 'partial'
      ? ' (resumes the interrupted transfer)'
      : d.tempState === 'complete'
        ? ' (already received)'
        : '';
  const aside = d.aside ? `; the existing ${d.target} is moved to ${d.aside}` : '';
  const linked = d.linked ? `, a linked clone of ${d.linked.origin}` : '';
  return `  ${d.key} ${tierHost}:${d.source}@${d.snapshot} (${formatBytes(d.referenced)}) → ${d.target} as ${d.volume}${linked}${resume}${aside}\n`;
}

/** What --dry-run prints, and what a forced restore asks to confirm. */
export function describePlan(plan: GuestPlan | DiskOnlyPlan): string {
  const host = plan.tier.slice(0, plan.tier.indexOf(':'));
  if (plan.kind === 'disk') {
    return (
      `restore disk ${plan.disk.key} of guest ${plan.fromVmid} from backup ${plan.snapshot} (${plan.time}) on ${plan.tier}\n` +
      diskLine(plan.disk, host) +
      `  added to /etc/pve/${plan.configPath} as the next free unusedN\n`
    );
  }
  const as = plan.vmid === plan.fromVmid ? '' : ` as new guest ${plan.vmid}`;
  const head =
    `restore ${plan.type} guest ${plan.fromVmid}${plan.name ? ` (${plan.name})` : ''}${as} from backup ${plan.snapshot} (${plan.time}) on ${plan.tier}\n` +
    (plan.replaces
      ? `  REPLACES the existing guest ${plan.vmid}: its config is overwritten, its disks moved aside (kept, not destroyed)\n`
      : '');
  const total = plan.disks.reduce((n, d) => n + d.referenced, 0);
  return (
    head +
    plan.disks.map((d) => diskLine(d, host)).join('') +
    `  ${plan.disks.length} disk(s), about ${formatBytes(total)}; config /etc/pve/${plan.configPath}\n` +
    `  the received snapshot is ${plan.keepSnapshot ? 'kept (the next backup goes on from it)' : 'destroyed (the restored disks start a new chain)'}\n`
  );
}
