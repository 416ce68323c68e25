import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { ExitCode } from '../errors.ts';
import { metadataDirOption } from '../metadata/store.ts';
import type { RestorePoint } from '../restore/points.ts';
import { loadTier, tierFromOptions } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ListBackupsOptions = CommandOptions<'list-backups'>;

function row(p: RestorePoint, host: string) {
  return {
    vmid: p.vmid,
    name: p.name,
    type: p.type,
    snapshot: p.snapshot,
    time: p.time,
    disks: p.disks.length,
    present: p.disks.filter((d) => d.present).map((d) => d.key),
    absent: p.disks.filter((d) => !d.present).map((d) => d.key),
    complete: p.complete,
    referenced: p.referenced,
    host,
  };
}

/** Lists the restore points of every guest (or of --vmid) on one tier. */
export async function listBackups(opts: ListBackupsOptions, log: Logger): Promise<number> {
  const metadataDir = metadataDirOption(opts);
  const tier = tierFromOptions(opts);
  const out = writeOut;
  try {
    const vmid = opts.vmid?.length === 1 ? opts.vmid[0] : undefined;
    const state = await loadTier(tier, { metadataDir, vmid }, log);
    const wanted = opts.vmid && opts.vmid.length > 0 ? new Set(opts.vmid) : null;
    const points = state.points.filter(
      (p) => p.snapshot.startsWith(opts.prefix) && (wanted === null || wanted.has(p.vmid)),
    );
    const rows = points.map((p) => row(p, tier.host.name));
    if (opts.json) {
      out(
        `${JSON.stringify({ host: tier.host.name, root: tier.root, metadataDir: state.metadataDir, backups: rows }, null, 2)}\n`,
      );
      return ExitCode.ok;
    }
    if (rows.length === 0) {
      log.info(
        `no backups${wanted ? ` of guest ${[...wanted].join(', ')}` : ''} on ${tier.host.name}:${tier.root}`,
      );
      return ExitCode.ok;
    }
    out(
      'vmid  type  name              snapshot                  time                  disks       size      host\n',
    );
    for (const r of rows) {
      const disks = `${r.present.length}/${r.disks}${r.complete ? '' : ` (missing ${r.absent.join(',')})`}`;
      out(
        `${String(r.vmid).padEnd(6)}${r.type.padEnd(6)}${(r.name || '-').slice(0, 16).padEnd(18)}${r.snapshot.padEnd(26)}` +
          `${r.time.replace(/\.\d+Z$/, 'Z').padEnd(22)}${disks.padEnd(12)}${formatBytes(r.referenced).padEnd(10)}${r.host}\n`,
      );
    }
    return ExitCode.ok;
  } finally {
    await tier.host.close();
  }
}
