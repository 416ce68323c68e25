import { readFile } from 'node:fs/promises';
import { backupGuests } from '../backup/backup.ts';
import type { BackupContext, GuestResult } from '../backup/context.ts';
import { planDisk, snapshotsByGuid } from '../backup/send.ts';
import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { families, snapshotName, targetDataset } from '../conventions/names.ts';
import { ExitCode } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { RateLimiter } from '../host/rate.ts';
import { SshHost } from '../host/ssh.ts';
import { METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { configPath, discover, type Guest, guestLock, parseGuestConfig, readPveState } from '../pve/index.ts';
import { planLocks } from '../pve/locks.ts';
import { TEMPLATE_SNAPSHOT } from '../pve/volumes.ts';
import { formatBytes } from '../text/human.ts';
import { splitSnapshot } from '../zfs/names.ts';
import type { Dataset, Snapshot } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type BackupPveOptions = CommandOptions<'backup-pve'>;

function byName(list: readonly Dataset[]): Map<string, Dataset> {
  return new Map(list.map((d) => [d.name, d]));
}

async function printPlan(
  guests: readonly Guest[],
  opts: BackupPveOptions,
  local: Zfs,
  source: ReadonlyMap<string, Dataset>,
  target: ReadonlyMap<string, Dataset>,
  out: (s: string) => void,
): Promise<void> {
  out(
    `plan (dry run, nothing is changed): back up ${guests.length} guest(s) to ${opts.remote}:${opts.remoteZfsRoot}\n`,
  );
  // The snapshot the run would take, newer than everything: the plan is computed as if it existed.
  const pending = (dataset: string): Snapshot => ({
    name: `${dataset}@${opts.prefix}<now>`,
    dataset,
    short: `${opts.prefix}<now>`,
    guid: 'pending',
    createtxg: Number.MAX_SAFE_INTEGER,
    creation: 0,
    used: 0,
    referenced: 0,
    userrefs: 0,
    props: {},
  });
  const locked = new Map(planLocks(guests).skipped.map((s) => [s.guest, s.message]));
  const chains = families([...target.values()], opts.prefix);
  const onServer = snapshotsByGuid(target.values());
  const plans = guests.map((g) => ({
    guest: g,
    disks: g.disks.map((d) => {
      const src = source.get(d.dataset);
      const primary = targetDataset(opts.remoteZfsRoot, d.dataset);
      if (!src) return { disk: d, dst: primary, src, plan: null, chain: null };
      // A template sends its @__base__ (named for when it was made); other disks the pending snapshot.
      const base = g.template ? src.snapshots.find((s) => s.short === TEMPLATE_SNAPSHOT) : undefined;
      const withPending: Dataset = base ? src : { ...src, snapshots: [...src.snapshots, pending(src.name)] };
      const { chain } = planDisk({
        prefix: opts.prefix,
        where: { node: local.host.name, dataset: d.dataset, server: opts.remote },
        primary,
        listed: withPending,
        family: chains.get(primary) ?? [],
        templateName: base ? snapshotName(opts.prefix, new Date(base.creation * 1000)) : null,
        sourceListing: source,
        onServer,
      });
      if (chain.kind === 'continue') return { disk: d, dst: chain.target, src, plan: chain.diff, chain };
      const dst = chain.kind === 'new' ? chain.target : primary;
      return { disk: d, dst, src, plan: null, chain };
    }),
  }));
  // What each increment would carry (`written@<base>`), in one zfs get per base snapshot name.
  const written = new Map<string, number>();
  const bases = new Map<string, string[]>();
  for (const { disk, plan } of plans.flatMap((p) => p.disks)) {
    if (plan?.kind !== 'incremental' || plan.steps[0]?.from?.bookmark) continue;
    bases.set(plan.common.short, [...(bases.get(plan.common.short) ?? []), disk.dataset]);
  }
  for (const [short, datasets] of bases) {
    const values = await local.get([`written@${short}`], datasets).catch(() => []);
    for (const v of values) if (v.value) written.set(`${v.name}@${short}`, Number(v.value));
  }

  for (const { guest: g, disks } of plans) {
    out(`guest ${g.vmid} ${g.type} ${g.name || '-'}${g.freeze ? ' (freeze through the agent)' : ''}\n`);
    const lockMessage = locked.get(g);
    if (lockMessage !== undefined) {
      out(`  ${lockMessage}\n`);
      continue;
    }
    for (const { disk: d, dst, src, plan, chain } of disks) {
      if (!src || !chain) {
        out(`  ${d.key} ${d.dataset}: dataset missing, skipped\n`);
        continue;
      }
      let what: string;
      if (chain.kind === 'refused') {
        what = `refused: ${chain.reason}`;
      } else if (chain.kind === 'new') {
        what = chain.first
          ? `its first backup, a clone of ${chain.origin} and an increment (${chain.why})`
          : `a new chain, ${chain.origin ? `a clone of ${chain.origin} and an increment` : `a full copy, about ${formatBytes(src.referenced)}`} (${chain.why}); the older chain stays`;
      } else if (!plan) {
        what = 'nothing to send';
      } else if (plan.kind === 'full') {
        what = `full send, about ${formatBytes(src.referenced)}`;
      } else if (plan.kind === 'incremental') {
        const base = `${d.dataset}${plan.steps[0]?.from?.bookmark ? '#' : '@'}${plan.common.short}`;
        const w = written.get(`${d.dataset}@${plan.common.short}`);
        const est = w ? `, about ${formatBytes(w)}` : '';
        what = `incremental from ${base}${plan.steps.length > 1 ? ` (${plan.steps.length} steps)` : ''}${est}`;
      } else {
        what = `refused: ${plan.kind}`;
      }
      const token = target.get(dst)?.resumeToken ? ' (first resumes an interrupted transfer)' : '';
      out(`  ${d.key} ${d.dataset} → ${dst}: ${what}${token}\n`);
    }
  }
}

function printSummary(results: readonly GuestResult[], out: (s: string) => void): void {
  out('\nvmid  type  name              disks  mode         sent        time    result\n');
  for (const r of results) {
    const modes = [...new Set(r.disks.map((d) => d.mode))].join(',') || '-';
    out(
      `${String(r.vmid).padEnd(6)}${r.type.padEnd(6)}${(r.name || '-').slice(0, 16).padEnd(18)}${String(r.disks.length).padEnd(7)}` +
        `${modes.padEnd(13)}${formatBytes(r.bytes).padEnd(12)}${`${(r.durationMs / 1000).toFixed(1)}s`.padEnd(8)}` +
        `${r.result}${r.error ? `: ${r.error}` : ''}\n`,
    );
  }
}

export async function backupPve(opts: BackupPveOptions, log: Logger, metrics?: Metrics): Promise<number> {
  const out = writeOut;
  const remote = new SshHost(opts.remote);
  const remoteZfs = new Zfs(remote);
  // The remote listing needs nothing from /etc/pve: it starts first, so that the ssh connection
  // opens while the guests are read. Its own listing says whether the root exists and where its
  // metadata directory is.
  const targetListing = remoteZfs
    .list({ roots: [opts.remoteZfsRoot], userProps: [METADATA_DIR_PROPERTY] })
    .then(byName);
  // Awaited below; when reading /etc/pve fails first, that error is the one reported.
  targetListing.catch(() => {});
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  try {
    const state = await readPveState('/etc/pve', opts.node);
    const found = discover(state, {
      localZfsRoot: opts.localZfsRoot,
      vmids: opts.vmid,
      exclude: opts.exclude,
    });
    for (const w of found.warnings) log.warn(w);
    for (const f of found.failed) log.error(`guest ${f.vmid}: ${f.error}`);

    const local = new LocalHost(state.node);
    const localZfs = new Zfs(local);
    const [source, target] = await Promise.all([
      localZfs.list({ roots: [opts.localZfsRoot], withOrigin: true }).then(byName),
      targetListing,
    ]);
    const remoteRoot = target.get(opts.remoteZfsRoot);

    if (opts.dryRun) {
      await printPlan(found.guests, opts, localZfs, source, target, out);
      return found.failed.length > 0 ? ExitCode.failure : ExitCode.ok;
    }
    if (!remoteRoot) {
      log.info(`creating ${remote.name}:${opts.remoteZfsRoot}`);
      await remoteZfs.create(opts.remoteZfsRoot);
    }
    // prune and replicate on the backup server find the guests' configs through this property.
    if (remoteRoot?.props[METADATA_DIR_PROPERTY] !== opts.remoteMetadataDir) {
      await remoteZfs.setUserProperties(opts.remoteZfsRoot, {
        [METADATA_DIR_PROPERTY]: opts.remoteMetadataDir,
      });
    }

    const ctx: BackupContext = {
      node: state.node,
      local,
      remote,
      localZfs,
      remoteZfs,
      prefix: opts.prefix,
      remoteZfsRoot: opts.remoteZfsRoot,
      metadataDir: opts.remoteMetadataDir,
      keepSource: opts.keepSource,
      lockWaitMs: opts.lockWait * 1000,
      jobs: opts.jobs,
      limiter: opts.bwlimit ? new RateLimiter(opts.bwlimit) : undefined,
      log: {
        error: (m) => {
          progress.clear();
          log.error(m);
        },
        warn: (m) => {
          progress.clear();
          log.warn(m);
        },
        info: (m) => {
          progress.clear();
          log.info(m);
        },
        debug: (m) => log.debug(m),
      },
      now: () => new Date(),
      onProgress: (label, bytes) => progress.update(label, bytes),
      currentLock: async (g) =>
        guestLock(
          parseGuestConfig(await readFile(`/etc/pve/${configPath(state.node, g.type, g.vmid)}`, 'utf8'))
            .current,
        ),
    };

    // The guests' disks are sent one at a time (the node's disks and the link are shared); the
    // snapshots, holds and metadata are done once for the run. One failure never stops the rest.
    const results = await backupGuests(ctx, found.guests, source, target);
    progress.clear();
    for (const r of results) if (r.result === 'skipped') log.warn(`guest ${r.vmid}: ${r.error}`);

    await cleanupSource(localZfs, results, opts.yes === true, log);
    recordMetrics(metrics, results, found.failed.length);

    if (opts.json) {
      out(
        `${JSON.stringify({ node: state.node, remote: opts.remote, guests: results, failedGuests: found.failed }, null, 2)}\n`,
      );
    } else {
      printSummary(results, out);
    }
    const bad = results.some((r) => r.result !== 'ok') || found.failed.length > 0 || log.problems.errors > 0;
    return bad ? ExitCode.failure : ExitCode.ok;
  } finally {
    progress.clear();
    await remote.close();
  }
}

/** Gauges for --prometheus-textfile: what the run sent, and how many guests ended how. */
function recordMetrics(
  metrics: Metrics | undefined,
  results: readonly GuestResult[],
  unreadable: number,
): void {
  if (!metrics) return;
  metrics.set(
    'zbm_bytes_sent',
    'Bytes sent by the last run.',
    {},
    results.reduce((n, r) => n + r.bytes, 0),
  );
  for (const result of ['ok', 'failed', 'skipped'] as const) {
    const n = results.filter((r) => r.result === result).length + (result === 'failed' ? unreadable : 0);
    metrics.set('zbm_guests', 'Guests of the last run, by result.', { result }, n);
  }
}

/**
 * Destroys the zbm snapshots on this node that the run made obsolete, in one channel program per
 * pool. Needs -y, or a yes on the terminal; a held snapshot is kept and reported, never a failure.
 */
async function cleanupSource(
  zfs: Zfs,
  results: readonly GuestResult[],
  yes: boolean,
  log: Logger,
): Promise<void> {
  const names = results.flatMap((r) => r.obsolete);
  if (names.length === 0) return;
  if (!yes) {
    const asked =
      process.stdin.isTTY === true &&
      (await confirm(`Destroy ${names.length} old zbm snapshot(s) on this node?\n  ${names.join('\n  ')}\n`));
    if (!asked) {
      log.warn(
        `${names.length} old zbm snapshot(s) kept on this node: run with -y to destroy them (${names.join(', ')})`,
      );
      return;
    }
  }
  const outcomes = await zfs.batch(
    names.map((snapshot) => ({ kind: 'destroy-snapshot', snapshot })),
    (message) => log.info(message),
  );
  const destroyed = new Map<string, string[]>();
  for (const [i, n] of names.entries()) {
    const outcome = outcomes[i];
    if (outcome?.ok) {
      const { dataset, snapshot } = splitSnapshot(n);
      destroyed.set(dataset, [...(destroyed.get(dataset) ?? []), snapshot]);
    } else if (outcome?.busy) log.info(`kept ${n}: it is held (zfs holds ${n})`);
    else log.error(`destroying old snapshot ${n}: ${outcome?.error ?? 'no result'}`);
  }
  for (const [ds, shorts] of destroyed) {
    log.info(`destroyed ${shorts.length} old snapshot(s) of ${ds}: ${shorts.join(', ')}`);
  }
}
