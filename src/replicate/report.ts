/**
 * What a replication shows: the plan of a dry run (what each pair would send), and the result of
 * a run, as text or --json.
 */
import { describeConflict } from '../plan/diff.ts';
import { formatBytes } from '../text/human.ts';
import { planSync } from '../transfer/sync.ts';
import { planCloneStart } from './clones.ts';
import type { MirrorPair } from './pairs.ts';
import type { DatasetResult, ReplicateFacts, ReplicationEnd } from './run.ts';

/** --dry-run: each pair as it would go (full, incremental, a clone, up to date or refused), and the orphans kept. */
export function printPlan(
  facts: ReplicateFacts,
  source: ReplicationEnd,
  target: ReplicationEnd,
  select: (short: string) => boolean,
  out: (s: string) => void,
): void {
  const { pairs, orphans, sources, targets } = facts;
  const at = (side: ReplicationEnd, dataset: string) => ({ host: side.host.name, dataset });
  const cloneStart = (pair: MirrorPair) =>
    planCloneStart(pair, source.root, sources, target.root, targets, select);
  out(
    `plan (dry run, nothing is changed): replicate ${source.host.name}:${source.root} to ${target.host.name}:${target.root}\n`,
  );
  for (const { source: d, target: t } of pairs) {
    const plan = planSync(
      { zfs: source.zfs, dataset: d.name, listing: d },
      { zfs: target.zfs, dataset: t, listing: targets.get(t) ?? null },
      select,
    );
    const clone = cloneStart({ source: d, target: t });
    const what = clone
      ? `a clone of ${clone.origin}, ${clone.steps.length} snapshot(s): ${clone.steps.map((s) => s.to.short).join(', ')}`
      : plan.kind === 'full' || plan.kind === 'incremental'
        ? `${plan.kind}, ${plan.steps.length} snapshot(s): ${plan.steps.map((s) => s.to.short).join(', ')}`
        : plan.kind === 'up-to-date'
          ? 'up to date'
          : `refused: ${describeConflict(plan, at(source, d.name), at(target, t), '--force-rollback -y')}`;
    out(
      `${d.name} → ${t}: ${what}${targets.get(t)?.resumeToken ? ' (first resumes an interrupted transfer)' : ''}\n`,
    );
  }
  for (const o of orphans) out(`${o}: kept (no longer on ${source.host.name})\n`);
}

/** The result of a run: one line for the whole, one per pair that did not go and per orphan; or all of it as JSON. */
export function printResult(
  source: ReplicationEnd,
  target: ReplicationEnd,
  results: readonly DatasetResult[],
  orphans: readonly string[],
  json: boolean | undefined,
  out: (s: string) => void,
): void {
  if (json) {
    out(
      `${JSON.stringify({ source: source.host.name, target: target.host.name, datasets: results, kept: orphans }, null, 2)}\n`,
    );
  } else {
    const ok = results.filter((r) => r.result === 'ok');
    out(
      `replicated ${ok.length} of ${results.length} dataset(s) from ${source.host.name}:${source.root} to ${target.host.name}:${target.root}, ` +
        `${ok.reduce((n, r) => n + r.sent.length, 0)} snapshot(s), ${formatBytes(results.reduce((n, r) => n + r.bytes, 0))}\n`,
    );
    for (const r of results.filter((x) => x.result !== 'ok')) out(`  ${r.source}: ${r.result}: ${r.error}\n`);
    for (const o of orphans) out(`  ${o}: kept, no longer on ${source.host.name}\n`);
  }
}
