/**
 * What a prune shows: the plan as a table per dataset (local times, action, why), the result of a
 * destroying run, and the --json report of either.
 */
import { formatWallClock } from '../time/civil.ts';
import type { TimeZone } from '../time/zone.ts';
import { chainNotes, type Kept } from './plan.ts';
import { type KeepRules, RULE_ORDER } from './retention.ts';
import type { DatasetOutcome, MetadataOutcome } from './run.ts';

function describeRules(rules: KeepRules): string {
  const set = RULE_ORDER.filter((r) => (rules[r] ?? 0) > 0).map((r) => `keep-${r} ${rules[r]}`);
  return set.length > 0 ? set.join(', ') : 'no keep rule (everything is kept)';
}

/** The plan's first line: where, by which rules, in which zone, against which next tier. */
export function planHeader(
  localName: string,
  where: { readonly localZfsRoot: string; readonly remote?: string; readonly remoteZfsRoot?: string },
  rules: KeepRules,
  zone: TimeZone,
): string {
  const next = where.remote === undefined ? '' : `; next tier ${where.remote}:${where.remoteZfsRoot ?? ''}`;
  return `prune plan for ${localName}:${where.localZfsRoot} (${describeRules(rules)}; periods in ${zone.name}${next})`;
}

function keptOnlyForSafety(k: Kept): boolean {
  return !k.reasons.some((r) => r.kind === 'rule');
}

/** A snapshot's time as the periods see it: local wall-clock time and the zone's abbreviation. */
function localTime(zone: TimeZone, t: number): string {
  const l = zone.at(t);
  return `${formatWallClock(t + l.offset)} ${l.abbr}`;
}

export function printPlan(
  header: string,
  outcomes: readonly DatasetOutcome[],
  zone: TimeZone,
  out: (s: string) => void,
): void {
  out(`${header}\n`);
  for (const o of outcomes) {
    const p = o.plan;
    if (p.verdicts.length === 0) continue;
    const foreign = p.foreign.length > 0 ? `, ${p.foreign.length} foreign untouched` : '';
    out(`${p.dataset}: keep ${p.keep.length}, destroy ${p.destroy.length}${foreign}\n`);
    for (const n of p.notes) out(`  (${n})\n`);
    const width = p.verdicts.reduce((w, v) => Math.max(w, v.short.length), 0);
    const times = p.verdicts.map((v) => localTime(zone, v.time));
    const timeWidth = times.reduce((w, t) => Math.max(w, t.length), 0);
    p.verdicts.forEach((v, i) => {
      out(
        `  ${v.short.padEnd(width)}  ${(times[i] ?? '').padEnd(timeWidth)}  ${v.action.padEnd(7)}  ${v.why}\n`,
      );
    });
  }
}

export function printResult(outcomes: readonly DatasetOutcome[], out: (s: string) => void): void {
  for (const o of outcomes) {
    const p = o.plan;
    if (p.keep.length + p.destroy.length === 0) continue;
    const kept = p.keep.length + o.heldLate.length;
    const what =
      o.destroyed.length > 0
        ? `destroyed ${o.destroyed.length}: ${o.destroyed.join(', ')}`
        : 'destroyed nothing';
    out(`${p.dataset}: ${what}; kept ${kept}${o.error ? `; FAILED: ${o.error}` : ''}\n`);
    if (p.family !== undefined) {
      const emptied = kept === 0 && o.destroyed.length > 0;
      for (const n of chainNotes(p.dataset, p.family, emptied)) out(`  (${n})\n`);
    }
    // Only what the rules alone would have removed needs a word: grouped, one line per reason.
    const byWhy = new Map<string, string[]>();
    for (const k of [...p.keep.filter(keptOnlyForSafety), ...o.heldLate]) {
      byWhy.set(k.why, [...(byWhy.get(k.why) ?? []), k.short]);
    }
    for (const [why, shorts] of byWhy) out(`  kept ${shorts.join(', ')}: ${why}\n`);
  }
}

function keptJson(k: Kept) {
  return { snapshot: k.short, why: k.why, reasons: k.reasons };
}

/** The --json report of a run, dry or destroying. */
export function pruneJson(run: {
  readonly localZfsRoot: string;
  readonly prefix: string;
  readonly rules: KeepRules;
  readonly zone: TimeZone;
  readonly remote: string | undefined;
  readonly remoteZfsRoot: string | undefined;
  readonly unreachable: string | null;
  readonly destroying: boolean;
  readonly outcomes: readonly DatasetOutcome[];
  readonly metadata: MetadataOutcome | null;
}) {
  const { rules, zone } = run;
  return {
    localZfsRoot: run.localZfsRoot,
    prefix: run.prefix,
    rules: Object.fromEntries(RULE_ORDER.filter((r) => rules[r] !== undefined).map((r) => [r, rules[r]])),
    timeZone: zone.name,
    remote:
      run.remote === undefined
        ? null
        : {
            host: run.remote,
            zfsRoot: run.remoteZfsRoot,
            reachable: run.unreachable === null,
            error: run.unreachable,
          },
    mode: run.destroying ? 'destroy' : 'dry-run',
    datasets: run.outcomes
      .filter((o) => o.plan.verdicts.length > 0)
      .map((o) => ({
        dataset: o.plan.dataset,
        remoteDataset: o.remoteDataset,
        notes: o.plan.notes,
        snapshots: o.plan.verdicts.map((v) => ({
          snapshot: v.short,
          localTime: localTime(zone, v.time),
          action: v.action,
          why: v.why,
        })),
        kept: [...o.plan.keep.map(keptJson), ...o.heldLate.map(keptJson)],
        destroy: o.plan.destroy.filter((s) => !o.heldLate.some((k) => k.short === s)),
        destroyed: o.destroyed,
        foreign: o.plan.foreign,
        anomalies: o.plan.anomalies.map((a) => ({ snapshot: a.short, why: a.why })),
        family:
          o.plan.family === undefined
            ? null
            : {
                primary: o.plan.family.primary,
                chain: o.plan.family.chain,
                chains: o.plan.family.chains,
                datasets: o.plan.family.datasets,
              },
        error: o.error,
      })),
    metadata: run.metadata,
  };
}
