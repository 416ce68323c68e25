/**
 * The lab tests' own model of Proxmox's retention rules, to compute what a prune must leave. Kept
 * apart from zbm's implementation on purpose: a test compares the two.
 */

export type Rules = Partial<Record<'last' | 'hourly' | 'daily' | 'monthly', number>>;

/**
 * The tests' own model of Proxmox's retention (PBS's algorithm, as docs/prune.md states it), over
 * a test's few backups: what the rules alone keep. Periods in UTC, the lab's time zone, read
 * from the names (bak-zbm-YYYYMMDDTHHMMSSZ).
 */
export function keptByRules(backups: readonly string[], rules: Rules): Set<string> {
  const period = {
    last: (n: string) => n,
    hourly: (n: string) => n.slice(8, 19),
    daily: (n: string) => n.slice(8, 16),
    monthly: (n: string) => n.slice(8, 14),
  };
  const newestFirst = [...backups].sort().reverse();
  const mark = new Map<string, 'keep' | 'remove'>();
  for (const rule of ['last', 'hourly', 'daily', 'monthly'] as const) {
    const keep = rules[rule] ?? 0;
    if (keep === 0) continue;
    const of = period[rule];
    const kept = new Set(newestFirst.filter((n) => mark.get(n) === 'keep').map(of));
    const taken = new Set<string>();
    for (const n of newestFirst) {
      if (mark.has(n) || kept.has(of(n))) continue;
      if (taken.has(of(n))) mark.set(n, 'remove');
      else if (taken.size >= keep) break;
      else {
        taken.add(of(n));
        mark.set(n, 'keep');
      }
    }
  }
  return new Set(newestFirst.filter((n) => mark.get(n) === 'keep'));
}
