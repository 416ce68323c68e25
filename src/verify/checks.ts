/**
 * verify's checks as pure functions from listings to monitoring states, so that every threshold can
 * be tested without ZFS. States and exit codes follow the monitoring-plugin convention
 * (Nagios, Icinga, Checkmk): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */

import { DEFAULT_CLOCK_SKEW_SECONDS, families, familyOf } from '../conventions/names.ts';
import type { ManifestSummary } from '../metadata/manifest.ts';
import { orderAnomalies } from '../prune/plan.ts';
import { parseVolname } from '../pve/volumes.ts';
import { formatAge } from '../text/human.ts';
import { fromWallClock, processZone, type TimeZone } from '../time/zone.ts';
import { joinDataset, relativeTo } from '../zfs/names.ts';
import type { Dataset, Snapshot } from '../zfs/types.ts';

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

const hours = formatAge;
const TEMPLATE_KINDS = new Set(['base', 'basevol']);

/**
 * One disk, its family of chains (conventions/names.ts families: the primary, then the later chains
 * a new start left beside it), judged as a whole: its newest zbm snapshot in any chain is young
 * enough, and together they hold enough (distinct by guid). An older chain gets nothing more once
 * a later one starts, so it is never stale on its own. A snapshot whose name disagrees with its
 * pool's order or lies in the future (prune/plan.ts orderAnomalies, per chain) is CRITICAL, and is
 * not the newest backup whose age counts. subject is the family's name (its primary's).
 */
export function checkFamily(
  subject: string,
  chains: readonly Dataset[],
  rules: FreshnessRules,
  now: number,
): Check {
  const several = chains.length > 1;
  const where = (d: Dataset) => (several ? `${d.name}@` : '');
  const problems: string[] = [];
  const anomalies: string[] = [];
  const counted = new Set<string>();
  let newest: { short: string; creation: number; chain: string } | null = null;
  for (const d of chains) {
    const odd = orderAnomalies(d, rules.prefix, now, DEFAULT_CLOCK_SKEW_SECONDS);
    for (const a of odd) anomalies.push(`${where(d)}${a.short} ${a.why}`);
    const skip = new Set(odd.map((a) => a.short));
    const ours = d.snapshots.filter((s) => s.short.startsWith(rules.prefix) && !skip.has(s.short));
    for (const s of ours) counted.add(s.guid);
    // Within a chain the pool's order says which is newest; between chains, the creation times.
    const last = ours.at(-1);
    if (last && (newest === null || last.creation >= newest.creation))
      newest = { short: last.short, creation: last.creation, chain: d.name };
  }
  const count = counted.size;
  const figures = {
    snapshots: count,
    newest: newest?.short ?? null,
    age_seconds: newest ? now - newest.creation : null,
    chains: chains.length,
    newest_chain: newest?.chain ?? null,
  };
  const inChains = several ? ` in ${chains.length} chains` : '';
  let state: State = 'OK';
  if (anomalies.length > 0) {
    state = 'CRITICAL';
    problems.push(
      `${anomalies.length} snapshot(s) not to be trusted (prune keeps them and counts them for no rule; check and destroy them by hand): ` +
        anomalies.join('; '),
    );
  }
  if (!newest) {
    problems.push(`no ${rules.prefix}* snapshot at all${inChains}`);
    return { state: 'CRITICAL', subject, message: problems.join('; '), figures };
  }
  const age = now - newest.creation;
  // A template's disk (Proxmox names it base-<id>-… or basevol-<id>-…) never changes: backup-pve
  // sends its @__base__ once and keeps it, so neither its age nor its count says anything.
  const template = TEMPLATE_KINDS.has(parseVolname(subject.slice(subject.lastIndexOf('/') + 1))?.kind ?? '');
  if (template) {
    return {
      state,
      subject,
      message: `${problems.length ? `${problems.join('; ')} (` : ''}a template's disk, backed up once: ${newest.short}${
        newest.chain === subject ? '' : ` in ${newest.chain}`
      }${problems.length ? ')' : ''}`,
      figures,
    };
  }
  if (age > rules.maxAgeSeconds) {
    state = 'CRITICAL';
    problems.push(
      `newest backup is ${hours(age)} old, limit ${hours(rules.maxAgeSeconds)}: the job that sends it stopped or fails, see its log`,
    );
  }
  if (count < rules.minSnapshots) {
    state = worst([state, 'WARNING']);
    problems.push(`${count} snapshots, fewer than ${rules.minSnapshots}`);
  }
  const resuming = chains.filter((d) => d.resumeToken);
  if (resuming.length > 0) {
    state = worst([state, 'WARNING']);
    problems.push(
      `an interrupted transfer${several ? ` into ${resuming.map((d) => d.name).join(', ')}` : ''} is waiting to resume: the next run continues it`,
    );
  }
  // Where the newest is, when it is not the dataset named in the subject (a later chain).
  const within = newest.chain === subject ? '' : ` in ${newest.chain}`;
  const summary = `newest ${newest.short} ${hours(age)} old${within}, ${count} snapshots${inChains}`;
  return {
    state,
    subject,
    message: problems.length ? `${problems.join('; ')} (${summary})` : summary,
    figures,
  };
}

/**
 * Replication lag of one disk's family: the newest zbm snapshot of any of its chains here that the
 * remote has in any chain of the same family (by guid) is young enough. remote is the family there
 * (empty when it has none); a later chain not there yet is named, its lag already counts.
 */
export function checkReplication(
  subjectName: string,
  local: readonly Dataset[],
  remote: readonly Dataset[],
  remoteName: string,
  rules: FreshnessRules,
  now: number,
): Check {
  const subject = `${subjectName} → ${remoteName}`;
  const chains = local.length;
  if (remote.length === 0)
    return {
      state: 'CRITICAL',
      subject,
      message: `not replicated to ${remoteName} at all: run zbm replicate`,
      figures: { lag_seconds: null, chains },
    };
  const there = new Set(remote.flatMap((d) => d.snapshots.map((s) => s.guid)));
  let common: Snapshot | null = null;
  const lacking: string[] = [];
  for (const d of local) {
    const ours = d.snapshots.filter((s) => s.short.startsWith(rules.prefix));
    const shared = ours.filter((s) => there.has(s.guid)).at(-1);
    if (ours.length > 0 && !shared) lacking.push(d.name);
    if (shared && (common === null || shared.creation >= common.creation)) common = shared;
  }
  const notYet = chains > 1 && lacking.length > 0 ? `; not on ${remoteName} yet: ${lacking.join(', ')}` : '';
  if (!common)
    return {
      state: 'CRITICAL',
      subject,
      message: `no snapshot in common with ${remoteName}`,
      figures: { lag_seconds: null, chains },
    };
  const lag = now - common.creation;
  const figures = { lag_seconds: lag, common: common.short, chains };
  if (lag > rules.maxAgeSeconds) {
    return {
      state: 'CRITICAL',
      subject,
      message: `newest copy on ${remoteName} is ${hours(lag)} old (${common.short}), limit ${hours(rules.maxAgeSeconds)}: is zbm replicate running? see its log${notYet}`,
      figures,
    };
  }
  return {
    state: 'OK',
    subject,
    message: `newest copy on ${remoteName}: ${common.short}, ${hours(lag)} old${notYet}`,
    figures,
  };
}

/** Freshness and count of every disk among datasets: one check per family, under its primary's name. */
export function diskChecks(datasets: readonly Dataset[], rules: FreshnessRules, now: number): Check[] {
  return [...families(datasets, rules.prefix)].map(([name, chains]) => checkFamily(name, chains, rules, now));
}

/**
 * Replication lag of every disk among local (the datasets under localRoot) to the next tier, whose
 * listing under remoteRoot mirrors each chain 1:1 under the same name: one check per family.
 */
export function replicationChecks(
  local: readonly Dataset[],
  remote: readonly Dataset[],
  roots: { readonly local: string; readonly remote: string },
  remoteName: string,
  rules: FreshnessRules,
  now: number,
): { readonly disk: string; readonly check: Check }[] {
  const there = families(remote, rules.prefix);
  return [...families(local, rules.prefix)].map(([disk, chains]) => {
    const mirror = joinDataset(roots.remote, relativeTo(roots.local, disk) ?? '');
    return { disk, check: checkReplication(disk, chains, there.get(mirror) ?? [], remoteName, rules, now) };
  });
}

export interface PoolStatus {
  readonly pool: string;
  readonly health: string;
  /** zpool's own `status:` and `action:` text, when it has something to say. */
  readonly status?: string;
  readonly action?: string;
  /** Seconds since the epoch of the last finished scrub; null when zpool status shows none. */
  readonly lastScrub: number | null;
  /**
   * Start of the scrub under way, else null. zpool status shows only the current scan: while a
   * scrub runs, the end of the one before is not known.
   */
  readonly scrubRunningSince?: number | null;
}

/** Whether zpool status shows no scrub at all, finished or under way: the pool's age then counts. */
export function showsNoScrub(p: PoolStatus): boolean {
  return p.lastScrub === null && (p.scrubRunningSince ?? null) === null;
}

/**
 * When a pool that shows no scrub was created (seconds since the epoch), or why that could not be
 * read: such a pool is judged by its age.
 */
export type PoolCreation = { readonly at: number } | { readonly error: string };

/**
 * Health, then scrub age: the time since the last scrub ended, or for a pool never scrubbed its
 * age, against the same limit, so that a new pool is OK until a scrub is due. A scrub under way is
 * OK unless it started longer ago than the limit. The figures say which case applies: `scrub` is
 * `finished`, `running` or `never`; `scrub_age_seconds` is set for a finished scrub,
 * `pool_age_seconds` for a pool never scrubbed.
 */
export function checkPool(
  p: PoolStatus,
  maxScrubAgeSeconds: number,
  now: number,
  created?: PoolCreation,
): Check {
  const subject = `pool ${p.pool}`;
  const running = p.scrubRunningSince ?? null;
  const scrub = showsNoScrub(p) ? 'never' : p.lastScrub !== null ? 'finished' : 'running';
  const poolAge = scrub === 'never' && created && 'at' in created ? now - created.at : null;
  const figures = {
    health: p.health,
    scrub,
    scrub_age_seconds: p.lastScrub === null ? null : now - p.lastScrub,
    pool_age_seconds: poolAge,
  };
  if (p.health !== 'ONLINE') {
    // DEGRADED is critical too: the backups survive, but one more failed disk loses them.
    const why = [p.status, p.action ? `action: ${p.action}` : undefined].filter(Boolean).join('; ');
    return {
      state: 'CRITICAL',
      subject,
      message: `pool is ${p.health}${why ? `: ${why}` : ''} (zpool status -v ${p.pool})`,
      figures,
    };
  }
  const limit = `--max-scrub-age-days (${hours(maxScrubAgeSeconds)})`;
  const fix = `run zpool scrub ${p.pool}`;
  const result = (state: State, message: string): Check => ({ state, subject, message, figures });
  if (p.lastScrub !== null) {
    const days = `${((now - p.lastScrub) / 86400).toFixed(0)} days ago`;
    return now - p.lastScrub > maxScrubAgeSeconds
      ? result('WARNING', `last scrub ${days}, longer ago than ${limit}: ${fix}`)
      : result('OK', `ONLINE, last scrub ${days}`);
  }
  if (running !== null) {
    const since = hours(now - running);
    return now - running > maxScrubAgeSeconds
      ? result(
          'WARNING',
          `a scrub has been running for ${since}, longer than ${limit}: see zpool status ${p.pool}`,
        )
      : result('OK', `ONLINE, a scrub is running, started ${since} ago`);
  }
  if (poolAge === null) {
    const why = created && 'error' in created ? created.error : 'not read';
    return result('WARNING', `never scrubbed, and the age of the pool is unknown (${why}): ${fix}`);
  }
  return poolAge > maxScrubAgeSeconds
    ? result('WARNING', `never scrubbed, and the pool is ${hours(poolAge)} old, older than ${limit}: ${fix}`)
    : result('OK', `ONLINE, never scrubbed: the pool is ${hours(poolAge)} old, younger than ${limit}`);
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

/** A date as zpool status prints it (C's ctime): `Thu Nov 26 11:05:03 2026`, `Sun Nov  8 ...`. */
const CTIME = String.raw`\w{3} (\w{3})\s+(\d+) (\d+):(\d+):(\d+) (\d{4})`;

/** The instant a ctime date captured by CTIME names, in zone; null if there is none. */
function ctimeAt(m: RegExpExecArray | null, zone: TimeZone): number | null {
  if (!m) return null;
  const [, mon = '', day, hh, mm, ss, year] = m;
  const month = MONTHS[mon];
  if (month === undefined) return null;
  const wall = Date.UTC(Number(year), month, Number(day), Number(hh), Number(mm), Number(ss)) / 1000;
  return fromWallClock(zone, wall);
}

/**
 * Reads health, the end of the last scrub ("scan: scrub repaired 0B in 00:00:01 with 0 errors on
 * Thu Nov 26 11:05:03 2026") and the start of a scrub under way ("scan: scrub in progress since
 * ...") from `zpool status` text. The dates are in the host's local time zone (TZ as libc reads
 * it), as zpool prints them.
 */
export function parseZpoolStatus(text: string, zone: TimeZone = processZone()): PoolStatus {
  const pool = /^\s*pool:\s*(\S+)/m.exec(text)?.[1] ?? '';
  const health = /^\s*state:\s*(\S+)/m.exec(text)?.[1] ?? 'UNKNOWN';
  const lastScrub = ctimeAt(new RegExp(`scan:\\s*scrub repaired .* on ${CTIME}`).exec(text), zone);
  const scrubRunningSince = ctimeAt(new RegExp(`scan:\\s*scrub in progress since ${CTIME}`).exec(text), zone);
  return {
    pool,
    health,
    lastScrub,
    scrubRunningSince,
    status: section(text, 'status'),
    action: section(text, 'action'),
  };
}

/** A `key:` paragraph of zpool status (its continuation lines are indented), on one line. */
function section(text: string, key: string): string | undefined {
  const m = new RegExp(`^\\s*${key}:[ \\t]*(.*(?:\\n[ \\t]+(?![a-z]+:)\\S.*)*)`, 'm').exec(text);
  const v = m?.[1]?.replace(/\s+/g, ' ').trim();
  return v ? v : undefined;
}

/**
 * Coverage of one guest from its newest manifest: every disk it had must be in that backup, and
 * each backed-up disk must still exist here, in any chain of its family: families holds the family
 * (familyOf) of every dataset here, and a manifest may name the primary or a later chain
 * (freshness of each disk is checked per family).
 */
export function checkGuest(
  m: ManifestSummary,
  families: ReadonlySet<string>,
  relocate: (target: string) => string,
  prefix: string,
): Check {
  const subject = `guest ${m.vmid}${m.name ? ` (${m.name})` : ''}`;
  const figures = { newest: m.snapshot, disks: m.disks.length, missing: m.missing.length };
  const gone = m.disks.filter((d) => !families.has(familyOf(relocate(d.target), prefix)));
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

/** What verify --pve needs of a guest that backup-pve would back up (src/pve discovery). */
export interface PveGuest {
  readonly vmid: number;
  readonly name: string;
  /** Disks backup-pve would send, with their dataset on the backup server (the family's primary). */
  readonly disks: readonly { key: string; target: string }[];
  /** Disks backup-pve cannot back up and warns about (not on zfspool storage, ...). */
  readonly unprotected: readonly { key: string; reason: string }[];
}

/**
 * Coverage of one guest seen from its Proxmox node: every disk backup-pve would back up has a
 * fresh backup on the backup server, in any chain of its family (remote: the families there, by
 * their primary's name). A guest never backed up has no target at all.
 */
export function checkPveGuest(
  g: PveGuest,
  remote: ReadonlyMap<string, readonly Dataset[]>,
  remoteName: string,
  rules: FreshnessRules,
  now: number,
): Check {
  const subject = `guest ${g.vmid}${g.name ? ` (${g.name})` : ''}`;
  const per = g.disks.map((d) => {
    const chains = remote.get(d.target);
    return { ...d, check: chains ? checkFamily(d.target, chains, rules, now) : null };
  });
  const absent = per.filter((d) => d.check === null || d.check.figures.snapshots === 0);
  const ages = per.map((d) => d.check?.figures.age_seconds).filter((a): a is number => typeof a === 'number');
  const figures = {
    disks: g.disks.length,
    backed_up: g.disks.length - absent.length,
    oldest_newest_age_seconds: ages.length ? Math.max(...ages) : null,
    unprotected: g.unprotected.length,
  };
  if (g.disks.length === 0) {
    return {
      state: 'WARNING',
      subject,
      message: `no disk that zbm can back up${g.unprotected.length ? `: ${g.unprotected.map((u) => `${u.key} (${u.reason})`).join('; ')}` : ''}`,
      figures,
    };
  }
  if (absent.length === g.disks.length) {
    return {
      state: 'CRITICAL',
      subject,
      message: `never backed up: no ${rules.prefix}* snapshot of ${absent.map((d) => `${d.key} (${d.target})`).join(', ')} on ${remoteName}; run zbm backup-pve`,
      figures,
    };
  }
  const problems: string[] = [];
  let state: State = 'OK';
  if (absent.length > 0) {
    state = 'CRITICAL';
    problems.push(
      `no backup of ${absent.map((d) => `${d.key} (${d.target})`).join(', ')} on ${remoteName}: a disk added since the last backup, or its backups stopped`,
    );
  }
  for (const d of per) {
    if (!d.check || d.check.state === 'OK' || d.check.figures.snapshots === 0) continue;
    state = worst([state, d.check.state]);
    problems.push(`${d.key} ${remoteName}:${d.check.message}`);
  }
  if (g.unprotected.length > 0) {
    // The same rule as the manifests' missing disks: set backup=0 on a disk to leave it out on purpose.
    state = worst([state, 'WARNING']);
    problems.push(
      `not backed up by zbm: ${g.unprotected.map((u) => `${u.key} (${u.reason})`).join('; ')}; move it to zfspool storage or set backup=0 on it`,
    );
  }
  const newest = per
    .map((d) => d.check?.figures.newest)
    .filter((n): n is string => typeof n === 'string')
    .sort()
    .at(-1);
  const summary = `${figures.backed_up} of ${g.disks.length} disk(s) backed up on ${remoteName}, newest ${newest ?? '-'}, oldest disk backup ${figures.oldest_newest_age_seconds === null ? '-' : hours(figures.oldest_newest_age_seconds)} old`;
  return {
    state,
    subject,
    message: problems.length ? `${problems.join('; ')} (${summary})` : summary,
    figures,
  };
}

/** One performance-data item in the monitoring-plugin format: `label=value[uom];warn;crit;min`. */
export function perfItem(label: string, value: number, uom = '', warn = '', crit = ''): string {
  return `${label}=${Math.round(value)}${uom};${warn};${crit};0`;
}

/**
 * The figures an administrator graphs, for the part after `|` of the status line: how many disks
 * were checked (`datasets`, one per family of chains, so a new chain does not change it), the age
 * of the stalest newest backup (critical above the age limit), the fewest snapshots of any disk
 * (warning below the minimum), the largest replication lag, the oldest scrub (or, for a pool
 * never scrubbed, its age); with --pve the guests and their disks. Pure.
 */
export function perfData(
  checks: readonly Check[],
  rules: FreshnessRules,
  maxScrubAgeSeconds: number,
): string {
  const figure = (key: string) =>
    checks.map((c) => c.figures[key]).filter((v): v is number => typeof v === 'number');
  const max = (xs: number[]) => (xs.length > 0 ? Math.max(...xs) : null);
  const min = (xs: number[]) => (xs.length > 0 ? Math.min(...xs) : null);
  const datasets = checks.filter((c) => 'age_seconds' in c.figures);
  const guests = checks.filter((c) => 'backed_up' in c.figures);
  const items: string[] = [];
  const limit = String(Math.round(rules.maxAgeSeconds));
  if (datasets.length > 0) {
    items.push(perfItem('datasets', datasets.length));
    const age = max(figure('age_seconds'));
    if (age !== null) items.push(perfItem('backup_age', age, 's', '', limit));
    const fewest = min(figure('snapshots'));
    if (fewest !== null) items.push(perfItem('snapshots', fewest, '', `${rules.minSnapshots}:`));
  }
  if (guests.length > 0) {
    items.push(perfItem('guests', guests.length));
    items.push(
      perfItem(
        'disks',
        figure('disks').reduce((a, b) => a + b, 0),
      ),
    );
    items.push(
      perfItem(
        'disks_backed_up',
        figure('backed_up').reduce((a, b) => a + b, 0),
      ),
    );
    const age = max(figure('oldest_newest_age_seconds'));
    if (age !== null) items.push(perfItem('backup_age', age, 's', '', limit));
  }
  const lag = max(figure('lag_seconds'));
  if (lag !== null) items.push(perfItem('replication_lag', lag, 's', '', limit));
  const scrubLimit = String(Math.round(maxScrubAgeSeconds));
  const scrub = max(figure('scrub_age_seconds'));
  if (scrub !== null) items.push(perfItem('scrub_age', scrub, 's', scrubLimit));
  // A pool never scrubbed is judged by its age, against the same limit.
  const poolAge = max(figure('pool_age_seconds'));
  if (poolAge !== null) items.push(perfItem('pool_age', poolAge, 's', scrubLimit));
  return items.join(' ');
}
