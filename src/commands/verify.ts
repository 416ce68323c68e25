import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { checkDrillAge } from '../drill/plan.ts';
import { readDrillRecords } from '../drill/state.ts';
import { errorMessage, UsageError } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { metadataDirOption } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { type Check, perfData } from '../verify/checks.ts';
import {
  type Context,
  type DrillChecks,
  pveChecks,
  serverChecks,
  unknown,
  type VerifyHosts,
} from '../verify/run.ts';
import { reportChecks, reportUnknown } from './monitoring.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type VerifyOptions = CommandOptions<'verify'>;

const hosts: VerifyHosts = {
  local: (node) => new LocalHost(node),
  remote: (destination) => new SshHost(destination),
};

/** --max-drill-age-days: when each guest last passed a restore drill, as this host's drills recorded it. */
async function drillAgeChecks(
  now: number,
  opts: VerifyOptions,
  root: string,
  guests: readonly { vmid: number; name: string }[],
): Promise<Check[]> {
  const checks: Check[] = [];
  const maxAge = (opts.maxDrillAgeDays ?? 0) * 86400;
  try {
    const records = await readDrillRecords(opts.stateDir, root);
    for (const g of guests) checks.push(checkDrillAge(g, records.get(g.vmid), maxAge, now));
  } catch (err) {
    checks.push(unknown(`drills of ${root}`, errorMessage(err)));
  }
  return checks;
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
    const drills: DrillChecks | undefined =
      opts.maxDrillAgeDays === undefined
        ? undefined
        : (root, guests) => drillAgeChecks(ctx.now, opts, root, guests);
    what = opts.pve
      ? await pveChecks(ctx, opts, hosts, log)
      : await serverChecks(ctx, opts, opts.localZfsRoot ?? '', metadataDir, hosts, drills);
  } catch (err) {
    return reportUnknown(err, opts.json, log);
  }
  const perfdata = perfData(ctx.checks, ctx.rules, opts.maxScrubAgeDays * 86400);
  return reportChecks(what, ctx.checks, perfdata, opts.json, log, metrics);
}
