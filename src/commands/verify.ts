import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { families, familyOf, targetDataset } from '../conventions/names.ts';
import { checkDrillAge } from '../drill/plan.ts';
import { readDrillRecords } from '../drill/state.ts';
import { errorMessage, UsageError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { newestManifests } from '../metadata/manifest.ts';
import { chooseMetadataDir, METADATA_DIR_PROPERTY, metadataDirOption } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { discover, readPveState } from '../pve/index.ts';
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
  perfData,
  replicationChecks,
  showsNoScrub,
} from '../verify/checks.ts';
import { poolOf } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';
import { reportChecks, reportUnknown } from './monitoring.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type VerifyOptions = CommandOptions<'verify'>;

interface Context {
  readonly rules: FreshnessRules;
  readonly now: number;
  readonly checks: Check[];
  readonly metrics?: Metrics;
}

const unknown = (subject: string, message: string): Check => ({
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

/** --max-drill-age-days: when each guest last passed a restore drill, as this host's drills recorded it. */
async function drillAgeChecks(
  ctx: Context,
  opts: VerifyOptions,
  root: string,
  guests: readonly { vmid: number; name: string }[],
): Promise<void> {
  const maxAge = (opts.maxDrillAgeDays ?? 0) * 86400;
  try {
    const records = await readDrillRecords(opts.stateDir, root);
    for (const g of guests) ctx.checks.push(checkDrillAge(g, records.get(g.vmid), maxAge, ctx.now));
  } catch (err) {
    ctx.checks.push(unknown(`drills of ${root}`, errorMessage(err)));
  }
}

/** On the backup server or a replica: the datasets under --local-zfs-root. */
async function serverChecks(
  ctx: Context,
  opts: VerifyOptions,
  root: string,
  metadataDir: string | undefined,
): Promise<string> {
  const { checks } = ctx;
  const local = new LocalHost();
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
    if (opts.maxDrillAgeDays !== undefined) await drillAgeChecks(ctx, opts, root, manifests);
  }

  if (opts.remote) {
    const remote = new SshHost(opts.remote);
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
async function pveChecks(ctx: Context, opts: VerifyOptions, log: Logger): Promise<string> {
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

  const local = new LocalHost(state.node);
  const remote = new SshHost(remoteName);
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

/** Refuses what does not go together; returns the metadata directory given for --local-zfs-root. */
function checkUsage(opts: VerifyOptions): string | undefined {
  const metadataDir = metadataDirOption({
    localMetadataDir: opts.localMetadataDir,
    metadataDir: opts.metadataDir,
  });
  if (opts.pve) {
    if (opts.maxDrillAgeDays !== undefined)
      throw new UsageError(
        '--max-drill-age-days goes with --local-zfs-root on the tier whose drills ran there, not with --pve',
      );
    if (!opts.remote || !opts.remoteZfsRoot) {
      throw new UsageError('verify --pve needs --remote (the backup server) and --remote-zfs-root');
    }
    if (metadataDir !== undefined)
      throw new UsageError(
        '--local-metadata-dir goes with --local-zfs-root on the backup server, not with --pve',
      );
    return undefined;
  }
  if (!opts.localZfsRoot) throw new UsageError('verify needs --local-zfs-root (or --pve on a Proxmox node)');
  for (const [flag, set] of [
    ['--vmid', opts.vmid],
    ['--exclude', opts.exclude],
    ['--node', opts.node],
  ] as const) {
    if (set !== undefined) throw new UsageError(`${flag} only goes with --pve`);
  }
  return metadataDir;
}

/**
 * Checks freshness and count per disk (all chains of its family together), coverage per guest (from the manifests, or with --pve
 * from the Proxmox node's own configs), replication lag (with --remote) and the pool's health and
 * scrub age (unless --no-pool-checks), and exits with the monitoring-plugin code of the worst
 * state. Whatever happens, the first line on stdout is the status (with performance data): a run
 * that cannot check anything is UNKNOWN (3), a usage error included, as the monitoring-plugin
 * guidelines ask.
 */
export async function verify(opts: VerifyOptions, log: Logger, metrics?: Metrics): Promise<number> {
  const ctx: Context = {
    rules: {
      prefix: opts.prefix,
      maxAgeSeconds: opts.maxAgeHours !== undefined ? opts.maxAgeHours * 3600 : opts.maxAgeDays * 86400,
      minSnapshots: opts.minSnapshots,
    },
    now: Math.floor(Date.now() / 1000),
    checks: [],
    metrics,
  };
  let what: string;
  try {
    const metadataDir = checkUsage(opts);
    what = opts.pve
      ? await pveChecks(ctx, opts, log)
      : await serverChecks(ctx, opts, opts.localZfsRoot ?? '', metadataDir);
  } catch (err) {
    return reportUnknown(err, opts.json, log);
  }
  const perfdata = perfData(ctx.checks, ctx.rules, opts.maxScrubAgeDays * 86400);
  return reportChecks(what, ctx.checks, perfdata, opts.json, log, metrics);
}
