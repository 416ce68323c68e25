import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { drillPerfData, type GuestDrill } from '../drill/plan.ts';
import { runDrills } from '../drill/run.ts';
import { ExitCode, UsageError } from '../errors.ts';
import { metadataDirOption } from '../metadata/store.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { tierFromOptions } from '../restore/tier.ts';
import type { Check } from '../verify/checks.ts';
import { reportChecks, reportUnknown } from './monitoring.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type DrillOptions = CommandOptions<'drill'>;

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
  let drilled: { readonly what: string; readonly checks: readonly Check[] };
  try {
    if (opts.snapshot !== undefined && opts.time !== undefined)
      throw new UsageError('--snapshot and --time both choose the restore point: give one of them');
    const metadataDir = metadataDirOption(opts);
    const tier = tierFromOptions({ localZfsRoot: opts.localZfsRoot });
    const outcome = await runDrills(tier, metadataDir, opts, log, metrics);
    if (outcome.kind === 'plan') {
      printPlan(outcome.drills, opts.fullRead === true, opts.json);
      return ExitCode.ok;
    }
    drilled = outcome;
  } catch (err) {
    return reportUnknown(err, opts.json, log);
  }
  return reportChecks(drilled.what, drilled.checks, drillPerfData(drilled.checks), opts.json, log, metrics);
}
