/**
 * What backup-pve prints on stdout: a dry run's plan (each disk's chain and send, with the size an
 * increment would carry), and the table of a run's guests.
 */
import { families, snapshotName, targetDataset } from '../conventions/names.ts';
import type { Guest } from '../pve/index.ts';
import { planLocks } from '../pve/locks.ts';
import { TEMPLATE_SNAPSHOT } from '../pve/volumes.ts';
import { formatBytes } from '../text/human.ts';
import type { Dataset, Snapshot } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import type { GuestResult } from './context.ts';
import { planDisk, snapshotsByGuid } from './send.ts';

/** What a dry run's plan is for, from backup-pve's flags. */
export interface PlanScope {
  readonly prefix: string;
  readonly remote: string;
  readonly remoteZfsRoot: string;
}

/**
 * A dry run's plan, line by line: per guest, each disk's target and what would be sent. It asks the
 * node's zfs what each increment would carry (`written@<base>`), nothing more.
 */
export async function planLines(
  guests: readonly Guest[],
  opts: PlanScope,
  local: Zfs,
  source: ReadonlyMap<string, Dataset>,
  target: ReadonlyMap<string, Dataset>,
): Promise<string[]> {
  const lines: string[] = [];
  const out = (s: string) => lines.push(s);
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
  return lines;
}

/** The table of a run's guests, line by line. */
export function summaryLines(results: readonly GuestResult[]): string[] {
  const lines: string[] = [];
  const out = (s: string) => lines.push(s);
  out('\nvmid  type  name              disks  mode         sent        time    result\n');
  for (const r of results) {
    const modes = [...new Set(r.disks.map((d) => d.mode))].join(',') || '-';
    out(
      `${String(r.vmid).padEnd(6)}${r.type.padEnd(6)}${(r.name || '-').slice(0, 16).padEnd(18)}${String(r.disks.length).padEnd(7)}` +
        `${modes.padEnd(13)}${formatBytes(r.bytes).padEnd(12)}${`${(r.durationMs / 1000).toFixed(1)}s`.padEnd(8)}` +
        `${r.result}${r.error ? `: ${r.error}` : ''}\n`,
    );
  }
  return lines;
}
