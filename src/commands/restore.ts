import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { ExitCode } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { metadataDirOption } from '../metadata/store.ts';
import { parseStorageCfg, readPveState, zfsPools } from '../pve/index.ts';
import { findGuest, PVE } from '../restore/existing.ts';
import { type DiskOnlyPlan, describePlan, type GuestPlan } from '../restore/plan.ts';
import { prepareRestore } from '../restore/prepare.ts';
import { type Received, runRestore } from '../restore/run.ts';
import { tierFromOptions } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';
import { printableLines } from '../text/printable.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type RestoreOptions = CommandOptions<'restore'>;

function printResult(
  plan: GuestPlan | DiskOnlyPlan,
  received: readonly Received[],
  extra: Record<string, unknown>,
  opts: RestoreOptions,
): void {
  const out = writeOut;
  if (opts.json) {
    out(
      `${JSON.stringify({ fromVmid: plan.fromVmid, vmid: plan.vmid, snapshot: plan.snapshot, tier: plan.tier, config: `${PVE}/${plan.configPath}`, disks: received, ...extra, warnings: plan.warnings }, null, 2)}\n`,
    );
    return;
  }
  for (const r of received) {
    out(
      `${r.key} → ${r.volume} (${r.target}): ${formatBytes(r.bytes)}${r.resumed ? `, ${r.resumed}` : ''}\n`,
    );
  }
}

/**
 * Restores a guest (or one of its disks) from a backup tier onto this Proxmox node: the disks are
 * received under temporary names, and only when all of them arrived are they renamed into place
 * and the config written. Refuses to replace an existing guest or dataset unless forced and confirmed.
 */
export async function restore(opts: RestoreOptions, log: Logger): Promise<number> {
  const metadataDir = metadataDirOption(opts);
  const state = await readPveState(PVE, opts.node);
  const pools = zfsPools(parseStorageCfg(state.storageCfg));
  const targetVmid = opts.asVmid ?? opts.vmid;
  const existing = findGuest(targetVmid, state.vmlist, state.node);
  const tier = tierFromOptions({ remote: opts.remote, remoteZfsRoot: opts.remoteZfsRoot });
  const localHost = new LocalHost(state.node);
  const localZfs = new Zfs(localHost);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  try {
    const prepared = await prepareRestore(
      tier,
      { node: state.node, pools, existing, zfs: localZfs },
      metadataDir,
      opts,
      log,
    );
    if (!prepared) return ExitCode.failure;
    const { plan } = prepared;
    for (const w of plan.warnings) log.warn(w);
    if (opts.dryRun) {
      if (opts.json) {
        writeOut(`${JSON.stringify({ dryRun: true, plan }, null, 2)}\n`);
      } else {
        writeOut(`plan (dry run, nothing is changed):\n${describePlan(plan)}`);
        if (plan.kind === 'guest') writeOut(`config:\n${plan.configText.trimEnd().replace(/^/gm, '  | ')}\n`);
      }
      return ExitCode.ok;
    }
    const replacing = plan.kind === 'guest' && (plan.replaces !== null || plan.disks.some((d) => d.aside));
    if (replacing && !opts.yes) {
      const asked =
        process.stdin.isTTY === true &&
        (await confirm(
          printableLines(`${describePlan(plan)}Replace guest ${plan.vmid} and these datasets?`),
        ));
      if (!asked) {
        log.error(
          `restore over guest ${plan.vmid} not confirmed: nothing was changed (run with -y to confirm)`,
        );
        return ExitCode.failure;
      }
    }
    const restored = await runRestore(prepared, tier, localHost, localZfs, opts, progress, log);
    if (!restored) return ExitCode.failure;
    printResult(plan, restored.received, restored.extra, opts);
    return log.problems.errors > 0 ? ExitCode.failure : ExitCode.ok;
  } finally {
    progress.clear();
    await tier.host.close();
  }
}
