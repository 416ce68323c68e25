/**
 * The run of verify: what it observes on this host, the next tier or the Proxmox node, judged by
 * checks.ts, with the gauges of each check. The command (commands/verify.ts) checks its flags,
 * gives the hosts and reports the checks; restore drills' records are read there (drill/ is above).
 */
import { families, familyOf, targetDataset } from '../conventions/names.ts';
import { errorMessage } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { newestManifests } from '../metadata/manifest.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { discover, readPveState } from '../pve/index.ts';
import { poolOf } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';
import {
  type Check,
  checkFamily,
  checkGuest,
  checkPool,
  checkPveGuest,
  diskChecks,
  type FreshnessRules,
  type PoolCreation,
  parseZpoolStatus,
  replicationChecks,
  showsNoScrub,
} from './checks.ts';

/** What a run checks, from verify's flags (the command's options are one). */
export interface VerifyScope {
  readonly localZfsRoot?: string;
  readonly remote?: string;
  readonly remoteZfsRoot?: string;
  readonly vmid?: number[];
  readonly exclude?: number[];
  readonly node?: string;
  readonly maxScrubAgeDays: number;
  readonly poolChecks?: boolean;
}

/** The hosts a run reaches, made when it reaches them; the command gives them. */
export interface VerifyHosts {
  /** This host, under the Proxmox node's name when one is given. */
  local(node?: string): Host;
  /** The next tier, or with --pve the backup server. */
  remote(destination: string): Host;
}

/** What a run reports besides its checks; the command's logger is one. */
export interface VerifyLog {
  warn(msg: string): void;
}

/** The guests whose restore drills are judged, under a root: the command reads their records. */
export type DrillChecks = (
  root: string,
  guests: readonly { vmid: number; name: string }[],
) => Promise<Check[]>;

/** What a run judges by and gathers into: its checks and, for a job, their gauges. */
export interface Context {
  readonly rules: FreshnessRules;
  readonly now: number;
  readonly checks: Check[];
  readonly metrics?: Metrics;
}

export const unknown = (subject: string, message: string): Check => ({
  state: 'UNKNOWN',
  subject,
  message,
  figures: {},
});

/** The gauges of a disk's check (diskChecks, checkFamily), under its primary's name. */
function diskGauges(ctx: Context, c: Check): Check {
  const name = c.subject;
  ctx.metrics?.set(
    'zbm_snapshots',
    'zbm snapshots of the disk, all its chains together.',
    { dataset: name },
    Number(c.figures.snapshots),
  );
  ctx.metrics?.set(
    'zbm_chains',
    'Chains of the disk: 1, more once a backup had to start a new chain beside the older ones.',
    { dataset: name },
    Number(c.figures.chains),
  );
  if (typeof c.figures.age_seconds === 'number') {
    ctx.metrics?.set(
      'zbm_newest_snapshot_age_seconds',
      'Age of the newest zbm snapshot of the disk, in any of its chains.',
      { dataset: name },
      c.figures.age_seconds,
    );
  }
  return c;
}

/**
 * When a pool was created: its root dataset's `creation`. ZFS sets it in the transaction group
 * that `zpool create` makes the pool in, nobody can set it, and it stays with the pool through
 * export and import; it is one property, in seconds since the epoch, and zbm serve allows it of
 * the root's pool. The other record, `zpool history`'s first entry, is as trustworthy, but it
 * comes only with the whole history log (megabytes on a backup server that receives every hour),
 * with dates printed in the host's time zone.
 */
async function poolCreation(host: Host, pool: string): Promise<PoolCreation> {
  try {
    return { at: await new Zfs(host).creation(pool) };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

/** Health and scrub age of the pool holding dataset, on host; its gauges say what the check says. */
async function poolCheck(ctx: Context, host: Host, dataset: string, maxScrubAgeDays: number): Promise<Check> {
  const pool = poolOf(dataset);
  try {
    const p = parseZpoolStatus(await new Zfs(host).poolStatus(pool));
    // Only a pool that shows no scrub is judged by its age: one more call for it alone.
    const created = showsNoScrub(p) ? await poolCreation(host, pool) : undefined;
    const c = checkPool(p, maxScrubAgeDays * 86400, ctx.now, created);
    const { scrub, scrub_age_seconds: scrubAge, pool_age_seconds: poolAge } = c.figures;
    ctx.metrics?.set(
      'zbm_pool_healthy',
      '1 when zpool status says ONLINE.',
      { pool },
      p.health === 'ONLINE' ? 1 : 0,
    );
    ctx.metrics?.set(
      'zbm_pool_never_scrubbed',
      '1 when zpool status shows no scrub, finished or under way: the pool is judged by its age.',
      { pool },
      scrub === 'never' ? 1 : 0,
    );
    if (typeof scrubAge === 'number') {
      ctx.metrics?.set(
        'zbm_pool_scrub_age_seconds',
        "Time since the pool's last scrub ended.",
        { pool },
        scrubAge,
      );
    }
    if (typeof poolAge === 'number') {
      ctx.metrics?.set(
        'zbm_pool_age_seconds',
        "Age of a pool never scrubbed (its root dataset's creation).",
        { pool },
        poolAge,
      );
    }
    return host.isLocal ? c : { ...c, subject: `${c.subject} on ${host.name}` };
  } catch (err) {
    return unknown(`pool ${pool}`, errorMessage(err));
  }
}

/**
 * On the backup server or a replica: the datasets under --local-zfs-root. drills: with
 * --max-drill-age-days, the checks of the guests' restore drills.
 */
export async function serverChecks(
  ctx: Context,
  opts: VerifyScope,
  root: string,
  metadataDir: string | undefined,
  hosts: VerifyHosts,
  drills?: DrillChecks,
): Promise<string> {
  const { checks } = ctx;
  const local = hosts.local();
  const zfs = new Zfs(local);
  const listing = await zfs
    .list({ roots: [root], userProps: [METADATA_DIR_PROPERTY] })
    .catch((err: unknown) => {
      checks.push(unknown(root, errorMessage(err)));
      return [] as Dataset[];
    });
  const rootDataset = listing.find((d) => d.name === root);
  if (!rootDataset && checks.length === 0) {
    checks.push({
      state: 'CRITICAL',
      subject: root,
      message: `${root} does not exist on ${local.name}`,
      figures: {},
    });
  }
  const datasets = listing.filter((d) => d.name !== root || d.snapshots.length > 0);
  if (rootDataset && datasets.length === 0) {
    checks.push({ state: 'CRITICAL', subject: root, message: 'no backup dataset under it', figures: {} });
  }
  // One check per disk: a later chain and the older ones it continues are judged together.
  for (const c of diskChecks(datasets, ctx.rules, ctx.now)) checks.push(diskGauges(ctx, c));

  const property = rootDataset?.props[METADATA_DIR_PROPERTY];
  const place = chooseMetadataDir(metadataDir, property, root, '--local-metadata-dir');
  if ('warning' in place && place.warning) checks.push(unknown(`metadata of ${root}`, place.warning));
  if ('error' in place && property !== undefined) checks.push(unknown(`metadata of ${root}`, place.error));
  if ('dir' in place) {
    const dir = place.dir;
    const here = new Set(listing.map((d) => familyOf(d.name, ctx.rules.prefix)));
    const { manifests, errors } = await newestManifests(dir);
    for (const e of errors) checks.push(unknown(`metadata ${dir}`, e));
    // Manifests name the dataset on the backup server; on another tier its name under this root counts.
    for (const m of manifests) {
      checks.push(checkGuest(m, here, (t) => targetDataset(root, t), ctx.rules.prefix));
    }
    if (drills) checks.push(...(await drills(root, manifests)));
  }

  if (opts.remote) {
    const remote = hosts.remote(opts.remote);
    const remoteRoot = opts.remoteZfsRoot ?? root;
    try {
      const there = await new Zfs(remote).list({ roots: [remoteRoot] });
      const roots = { local: root, remote: remoteRoot };
      const lags = replicationChecks(datasets, there, roots, remote.name, ctx.rules, ctx.now);
      for (const { disk, check: c } of lags) {
        if (typeof c.figures.lag_seconds === 'number') {
          ctx.metrics?.set(
            'zbm_replication_lag_seconds',
            'Age of the newest zbm snapshot the next tier also has.',
            { dataset: disk, remote: remote.name },
            c.figures.lag_seconds,
          );
        }
        checks.push(c);
      }
    } catch (err) {
      checks.push(
        unknown(`replication to ${remote.name}`, `cannot list ${remoteRoot}: ${errorMessage(err)}`),
      );
    } finally {
      await remote.close();
    }
  }
  if (opts.poolChecks !== false) checks.push(await poolCheck(ctx, local, root, opts.maxScrubAgeDays));
  return `${root} on ${local.name}`;
}

/**
 * On a Proxmox node: every disk of every guest that backup-pve would back up (the same discovery,
 * --local-zfs-root, --vmid and --exclude) has a fresh backup on the backup server.
 */
export async function pveChecks(
  ctx: Context,
  opts: VerifyScope,
  hosts: VerifyHosts,
  log: VerifyLog,
): Promise<string> {
  const { checks } = ctx;
  const remoteName = opts.remote ?? '';
  const remoteRoot = opts.remoteZfsRoot ?? '';
  const state = await readPveState('/etc/pve', opts.node);
  const found = discover(state, { localZfsRoot: opts.localZfsRoot, vmids: opts.vmid, exclude: opts.exclude });
  // Disks zbm cannot back up are on their guest's line; the other discovery warnings are printed.
  const perDisk = new Set(
    found.guests.flatMap((g) =>
      g.skipped
        .filter((s) => s.warn)
        .map((s) => `guest ${g.vmid}: ${s.key} ${JSON.stringify(s.value)} is not backed up: ${s.reason}`),
    ),
  );
  for (const w of found.warnings) if (!perDisk.has(w)) log.warn(w);
  for (const f of found.failed) {
    checks.push({
      state: 'CRITICAL',
      subject: `guest ${f.vmid}`,
      message: `backup-pve cannot back it up: ${f.error}`,
      figures: {},
    });
  }

  const local = hosts.local(state.node);
  const remote = hosts.remote(remoteName);
  try {
    const sources = found.guests.flatMap((g) => g.disks.map((d) => d.dataset));
    const [here, there] = await Promise.all([
      new Zfs(local).list({ roots: sources, depth: 0, withSnapshots: false }),
      new Zfs(remote).list({ roots: [remoteRoot] }),
    ]);
    const exists = new Set(here.map((d) => d.name));
    // A node's disk goes to its primary, <root>/<volume>; its later chains there count with it.
    const byFamily = families(there, ctx.rules.prefix);
    for (const g of found.guests) {
      // backup-pve warns about a disk whose dataset is missing and goes on: so does verify.
      const missing = g.disks.filter((d) => !exists.has(d.dataset));
      const c = checkPveGuest(
        {
          vmid: g.vmid,
          name: g.name,
          disks: g.disks
            .filter((d) => exists.has(d.dataset))
            .map((d) => ({ key: d.key, target: targetDataset(remoteRoot, d.dataset) })),
          unprotected: [
            ...g.skipped.filter((s) => s.warn).map((s) => ({ key: s.key, reason: s.reason })),
            ...missing.map((d) => ({
              key: d.key,
              reason: `dataset ${d.dataset} does not exist on ${local.name}`,
            })),
          ],
        },
        byFamily,
        remote.name,
        ctx.rules,
        ctx.now,
      );
      for (const d of g.disks) {
        const target = targetDataset(remoteRoot, d.dataset);
        const chains = byFamily.get(target);
        if (chains) diskGauges(ctx, checkFamily(target, chains, ctx.rules, ctx.now));
      }
      ctx.metrics?.set(
        'zbm_guest_disks_backed_up',
        'Disks of the guest with a zbm backup on the backup server.',
        { vmid: String(g.vmid), name: g.name },
        Number(c.figures.backed_up),
      );
      checks.push(c);
    }
    if (there.length === 0) {
      checks.push({
        state: 'CRITICAL',
        subject: `${remote.name}:${remoteRoot}`,
        message: `${remoteRoot} does not exist on ${remote.name}: nothing was ever backed up there`,
        figures: {},
      });
    }
    if (opts.poolChecks !== false)
      checks.push(await poolCheck(ctx, remote, remoteRoot, opts.maxScrubAgeDays));
  } catch (err) {
    checks.push(unknown(`backups on ${remote.name}`, `cannot list ${remoteRoot}: ${errorMessage(err)}`));
  } finally {
    await remote.close();
  }
  return `guests of ${state.node} on ${remote.name}:${remoteRoot}`;
}
