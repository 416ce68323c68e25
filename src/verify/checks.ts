/**
 * verify's checks as pure functions from listings to monitoring states, so that every threshold can
 * be tested without ZFS. States and exit codes follow the monitoring-plugin convention
 * (Nagios, Icinga, Checkmk): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */
import type { Dataset } from '../zfs/types.ts';

export type State = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';

export const STATE_CODE: Record<State, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

const RANK: Record<State, number> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };

export function worst(states: readonly State[]): State {
  return states.reduce<State>((a, b) => (RANK[b] > RANK[a] ? b : a), 'OK');
}

export interface Check {
  readonly state: State;
  /** What was checked: a dataset, a pool, a guest. */
  readonly subject: string;
  readonly message: string;
  readonly figures: Readonly<Record<string, number | string | null>>;
}

export interface FreshnessRules {
  readonly prefix: string;
  readonly maxAgeSeconds: number;
  readonly minSnapshots: number;
}

function hours(seconds: number): string {
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** One dataset: its newest zbm snapshot is young enough, and there are enough of them. */
export function checkDataset(d: Dataset, rules: FreshnessRules, now: number): Check {
  const ours = d.snapshots.filter((s) => s.short.startsWith(rules.prefix));
  const newest = ours.at(-1);
  const figures = {
    snapshots: ours.length,
    newest: newest?.short ?? null,
    age_seconds: newest ? now - newest.creation : null,
  };
  if (!newest) {
    return { state: 'CRITICAL', subject: d.name, message: `no ${rules.prefix}* snapshot at all`, figures };
  }
  const age = now - newest.creation;
  const problems: string[] = [];
  let state: State = 'OK';
  if (age > rules.maxAgeSeconds) {
    state = 'CRITICAL';
    problems.push(`newest backup is ${hours(age)} old, limit ${hours(rules.maxAgeSeconds)}`);
  }
  if (ours.length < rules.minSnapshots) {
    state = worst([state, 'WARNING']);
    problems.push(`${ours.length} snapshots, fewer than ${rules.minSnapshots}`);
  }
  if (d.resumeToken) {
    state = worst([state, 'WARNING']);
    problems.push('an interrupted transfer is waiting to resume');
  }
  const summary = `newest ${newest.short} ${hours(age)} old, ${ours.length} snapshots`;
  return {
    state,
    subject: d.name,
    message: problems.length ? `${problems.join('; ')} (${summary})` : summary,
    figures,
  };
}

/** Replication lag: the newest snapshot the remote has of this dataset (by guid) is young enough. */
export function checkReplication(
  local: Dataset,
  remote: Dataset | null,
  remoteName: string,
  rules: FreshnessRules,
  now: number,
): Check {
  const subject = `${local.name} → ${remoteName}`;
  if (!remote)
    return {
      state: 'CRITICAL',
      subject,
      message: `not replicated to ${remoteName} at all`,
      figures: { lag_seconds: null },
    };
  const there = new Set(remote.snapshots.map((s) => s.guid));
  const common = local.snapshots.filter((s) => s.short.startsWith(rules.prefix) && there.has(s.guid)).at(-1);
  if (!common)
    return {
      state: 'CRITICAL',
      subject,
      message: `no snapshot in common with ${remoteName}`,
      figures: { lag_seconds: null },
    };
  const lag = now - common.creation;
  const figures = { lag_seconds: lag, common: common.short };
  if (lag > rules.maxAgeSeconds) {
    return {
      state: 'CRITICAL',
      subject,
      message: `newest copy on ${remoteName} is ${hours(lag)} old (${common.short}), limit ${hours(rules.maxAgeSeconds)}`,
      figures,
    };
  }
  return {
    state: 'OK',
    subject,
    message: `newest copy on ${remoteName}: ${common.short}, ${hours(lag)} old`,
    figures,
  };
}

export interface PoolStatus {
  readonly pool: string;
  readonly health: string;
  /** Seconds since the epoch of the last finished scrub; null when it never ran. */
  readonly lastScrub: number | null;
}

export function checkPool(p: PoolStatus, maxScrubAgeSeconds: number, now: number): Check {
  const figures = { health: p.health, scrub_age_seconds: p.lastScrub === null ? null : now - p.lastScrub };
  if (p.health !== 'ONLINE') {
    return {
      state: p.health === 'DEGRADED' ? 'WARNING' : 'CRITICAL',
      subject: `pool ${p.pool}`,
      message: `pool is ${p.health}: see zpool status ${p.pool}`,
      figures,
    };
  }
  if (p.lastScrub === null || now - p.lastScrub > maxScrubAgeSeconds) {
    const when =
      p.lastScrub === null
        ? 'never scrubbed'
        : `last scrub ${((now - p.lastScrub) / 86400).toFixed(0)} days ago`;
    return {
      state: 'WARNING',
      subject: `pool ${p.pool}`,
      message: `${when}: run zpool scrub ${p.pool}`,
      figures,
    };
  }
  return {
    state: 'OK',
    subject: `pool ${p.pool}`,
    message: `ONLINE, last scrub ${((now - p.lastScrub) / 86400).toFixed(0)} days ago`,
    figures,
  };
}

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

/**
 * Reads health and the end of the last scrub from `zpool status` text
 * ("scan: scrub repaired 0B in 00:00:01 with 0 errors on Thu Nov 26 11:05:03 2026").
 * The date is in the host's local time zone, as zpool prints it.
 */
export function parseZpoolStatus(text: string): PoolStatus {
  const pool = /^\s*pool:\s*(\S+)/m.exec(text)?.[1] ?? '';
  const health = /^\s*state:\s*(\S+)/m.exec(text)?.[1] ?? 'UNKNOWN';
  const m = /scan:\s*scrub repaired .* on \w{3} (\w{3})\s+(\d+) (\d+):(\d+):(\d+) (\d{4})/.exec(text);
  let lastScrub: number | null = null;
  if (m) {
    const [, mon = '', day, hh, mm, ss, year] = m;
    const month = MONTHS[mon];
    if (month !== undefined) {
      lastScrub = Math.floor(
        new Date(Number(year), month, Number(day), Number(hh), Number(mm), Number(ss)).getTime() / 1000,
      );
    }
  }
  return { pool, health, lastScrub };
}

/** The part of a backup manifest (docs/metadata.md) that coverage needs. */
export interface ManifestSummary {
  readonly vmid: number;
  readonly name: string;
  readonly snapshot: string;
  readonly disks: readonly { key: string; target: string }[];
  readonly missing: readonly { key: string; reason: string }[];
}

/**
 * Coverage of one guest from its newest manifest: every disk it had must be in that backup, and
 * each backed-up disk must still exist here (freshness of each disk is checked per dataset).
 */
export function checkGuest(
  m: ManifestSummary,
  datasets: ReadonlySet<string>,
  relocate: (target: string) => string,
): Check {
  const subject = `guest ${m.vmid}${m.name ? ` (${m.name})` : ''}`;
  const figures = { newest: m.snapshot, disks: m.disks.length, missing: m.missing.length };
  const gone = m.disks.filter((d) => !datasets.has(relocate(d.target)));
  if (gone.length > 0) {
    return {
      state: 'CRITICAL',
      subject,
      message: `disk(s) of the newest backup ${m.snapshot} are gone here: ${gone.map((d) => `${d.key} ${relocate(d.target)}`).join(', ')}`,
      figures,
    };
  }
  if (m.missing.length > 0) {
    return {
      state: 'WARNING',
      subject,
      message: `the newest backup ${m.snapshot} lacks disk(s): ${m.missing.map((d) => `${d.key} (${d.reason})`).join('; ')}`,
      figures,
    };
  }
  return {
    state: 'OK',
    subject,
    message: `newest backup ${m.snapshot} has all ${m.disks.length} disk(s)`,
    figures,
  };
}
