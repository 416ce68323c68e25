import { confirm as askOnTerminal } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS } from '../conventions/names.ts';
import { ExitCode, errorMessage, UsageError } from '../errors.ts';
import type { Host } from '../host/host.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { acquireAll, datasetLockName, describeHolder, describeWait, receiveLockName } from '../lock/lock.ts';
import { type GuestSnapshots, pruneMetadata } from '../metadata/remove.ts';
import {
  chooseMetadataDir,
  datasetsByGuest,
  METADATA_DIR_PROPERTY,
  metadataDirOption,
} from '../metadata/store.ts';
import {
  type DatasetPlan,
  type Kept,
  orderAnomalies,
  planDataset,
  type RemoteFacts,
  retentionFor,
} from '../prune/plan.ts';
import { hasRules, type KeepRules, RULE_ORDER } from '../prune/retention.ts';
import { formatWallClock } from '../time/civil.ts';
import { processZone, type TimeZone, zoneNamed } from '../time/zone.ts';
import { joinDataset, relativeTo, splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type PruneOptions = CommandOptions<'prune'>;

/** What the command touches outside zfs; tests replace it. */
export interface PruneIO {
  readonly out?: (s: string) => void;
  readonly local?: Host;
  readonly remote?: (destination: string) => Host;
  /** Asks on the terminal; undefined when there is no terminal to ask on. */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
  /** A TZ value, read as libc reads it (default: this process's TZ). */
  readonly timeZone?: string;
  /** This host's clock, seconds since the epoch: a snapshot named later is an anomaly. */
  readonly now?: () => number;
}

/**
 * The whole of one argument handed to exec (`zfs destroy ds@a,b,...`) may not exceed
 * MAX_ARG_STRLEN (128 KiB on Linux), and all of them together ARG_MAX: long histories are split,
 * which a normal run never needs.
 */
const MAX_DESTROY_ARG = 100_000;
const MAX_HOLDS_ARGS = 1_000_000;

function chunked(items: readonly string[], maxChars: number): string[][] {
  const out: string[][] = [];
  let cur: string[] = [];
  let size = 0;
  for (const item of items) {
    if (cur.length > 0 && size + item.length + 1 > maxChars) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(item);
    size += item.length + 1;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function rulesOf(opts: PruneOptions): KeepRules {
  return {
    last: opts.keepLast,
    hourly: opts.keepHourly,
    daily: opts.keepDaily,
    weekly: opts.keepWeekly,
    monthly: opts.keepMonthly,
    yearly: opts.keepYearly,
  };
}

function describeRules(rules: KeepRules): string {
  const set = RULE_ORDER.filter((r) => (rules[r] ?? 0) > 0).map((r) => `keep-${r} ${rules[r]}`);
  return set.length > 0 ? set.join(', ') : 'no keep rule (everything is kept)';
}

/** Per dataset and short name, the values given for full snapshot names (appended when repeated). */
type PerSnapshot = Map<string, Map<string, string[]>>;

function addPerSnapshot(found: PerSnapshot, snapshot: string, values: readonly string[]): void {
  const { dataset: ds, snapshot: short } = splitSnapshot(snapshot);
  const perDs = found.get(ds) ?? new Map<string, string[]>();
  perDs.set(short, [...(perDs.get(short) ?? []), ...values]);
  found.set(ds, perDs);
}

/** Hold tags per dataset and short name, for the given snapshots: one `zfs holds` call (none for none). */
async function holdsOf(zfs: Zfs, names: readonly string[]): Promise<PerSnapshot> {
  const found: PerSnapshot = new Map();
  for (const part of chunked(names, MAX_HOLDS_ARGS)) {
    for (const h of await zfs.holds(part)) addPerSnapshot(found, h.snapshot, [h.tag]);
  }
  return found;
}

/** Clones per dataset and short name, of the snapshots that have any: one `zfs get -r` call. */
async function clonesOf(zfs: Zfs, root: string): Promise<PerSnapshot> {
  const found: PerSnapshot = new Map();
  for (const p of await zfs.get(['clones'], [root], true)) {
    if (p.name.includes('@') && p.value) addPerSnapshot(found, p.name, p.value.split(','));
  }
  return found;
}

interface DatasetOutcome {
  readonly plan: DatasetPlan;
  readonly remoteDataset: string | null;
  destroyed: string[];
  /** Planned for destruction but found held at destroy time: kept. */
  heldLate: Kept[];
  error: string | null;
}

function keptOnlyForSafety(k: Kept): boolean {
  return !k.reasons.some((r) => r.kind === 'rule');
}

/** A snapshot's time as the periods see it: local wall-clock time and the zone's abbreviation. */
function localTime(zone: TimeZone, t: number): string {
  const l = zone.at(t);
  return `${formatWallClock(t + l.offset)} ${l.abbr}`;
}

function printPlan(
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

function printResult(outcomes: readonly DatasetOutcome[], out: (s: string) => void): void {
  for (const o of outcomes) {
    const p = o.plan;
    if (p.keep.length + p.destroy.length === 0) continue;
    const kept = p.keep.length + o.heldLate.length;
    const what =
      o.destroyed.length > 0
        ? `destroyed ${o.destroyed.length}: ${o.destroyed.join(', ')}`
        : 'destroyed nothing';
    out(`${p.dataset}: ${what}; kept ${kept}${o.error ? `; FAILED: ${o.error}` : ''}\n`);
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

/**
 * Destroys the plan of one dataset, in one `zfs destroy ds@a,b,c` (atomic: all or none). A
 * snapshot held between the listing and the destroy fails the whole call with "dataset is busy":
 * then the holds are read again, the newly held ones are kept and reported, and the rest retried.
 */
async function destroyPlanned(zfs: Zfs, o: DatasetOutcome): Promise<void> {
  const ds = o.plan.dataset;
  for (const part of chunked(o.plan.destroy, MAX_DESTROY_ARG)) {
    try {
      await zfs.destroySnapshots(ds, part);
      o.destroyed.push(...part);
    } catch (err) {
      const held = await holdsOf(
        zfs,
        part.map((s) => `${ds}@${s}`),
      ).catch(() => null);
      const tags = held?.get(ds) ?? new Map<string, string[]>();
      if (tags.size === 0) throw err;
      for (const [short, t] of tags) {
        o.heldLate.push({ short, why: `held by ${t.join(', ')}`, reasons: [{ kind: 'held', tags: t }] });
      }
      const rest = part.filter((s) => !tags.has(s));
      await zfs.destroySnapshots(ds, rest);
      o.destroyed.push(...rest);
    }
  }
}

/** The snapshot names left per guest after the run, and those it destroyed, for metadata pruning. */
function guestSnapshots(
  datasets: readonly Dataset[],
  outcomes: ReadonlyMap<string, DatasetOutcome>,
): Map<number, GuestSnapshots> {
  const guests = new Map<number, GuestSnapshots>();
  for (const [vmid, own] of datasetsByGuest(datasets)) {
    const g = { remaining: new Set<string>(), destroyed: new Set<string>() };
    for (const d of own) {
      const gone = new Set(outcomes.get(d.name)?.destroyed ?? []);
      for (const s of d.snapshots) (gone.has(s.short) ? g.destroyed : g.remaining).add(s.short);
    }
    guests.set(vmid, g);
  }
  return guests;
}

/**
 * Applies Proxmox-style retention to zbm's snapshots under --local-zfs-root, never destroying what
 * the next tier still needs nor anything held. Without -y it only shows the plan.
 */
export async function prune(opts: PruneOptions, log: Logger, io: PruneIO = {}): Promise<number> {
  const out = io.out ?? writeOut;
  if (opts.remoteZfsRoot !== undefined && opts.remote === undefined) {
    throw new UsageError('--remote-zfs-root needs --remote (the ssh destination of the next tier)');
  }
  if (opts.remote !== undefined && opts.remoteZfsRoot === undefined) {
    throw new UsageError(
      `--remote needs --remote-zfs-root: the dataset on ${opts.remote} that mirrors ${opts.localZfsRoot}`,
    );
  }
  const metadataDir = metadataDirOption({
    localMetadataDir: opts.localMetadataDir,
    metadataDir: opts.metadataDir,
  });
  const rules = rulesOf(opts);
  const zone = io.timeZone === undefined ? processZone() : zoneNamed(io.timeZone);
  const destroying = opts.yes === true && opts.dryRun !== true;
  if (!hasRules(rules)) log.info('no --keep-* rule given (or all 0): every snapshot is kept, as in Proxmox');

  const local = io.local ?? new LocalHost();
  const localZfs = new Zfs(local);
  const remoteHost = opts.remote === undefined ? null : (io.remote ?? ((d) => new SshHost(d)))(opts.remote);
  try {
    const datasets = await localZfs.list({ roots: [opts.localZfsRoot], userProps: [METADATA_DIR_PROPERTY] });
    const root = datasets.find((d) => d.name === opts.localZfsRoot);
    if (!root) {
      log.error(`on ${local.name}: ${opts.localZfsRoot} does not exist; nothing to prune`);
      return ExitCode.failure;
    }
    // userrefs counts the holds: only held snapshots need to be asked which tags hold them.
    const held = datasets.flatMap((d) =>
      d.snapshots.filter((s) => s.short.startsWith(opts.prefix) && s.userrefs > 0).map((s) => s.name),
    );

    const remoteListing = async (): Promise<Map<string, Dataset> | { error: string } | null> => {
      if (!remoteHost || opts.remoteZfsRoot === undefined) return null;
      try {
        const list = await new Zfs(remoteHost).list({ roots: [opts.remoteZfsRoot] });
        return new Map(list.map((d) => [d.name, d]));
      } catch (err) {
        return { error: errorMessage(err) };
      }
    };
    const [remote, holds, clones] = await Promise.all([
      remoteListing(),
      holdsOf(localZfs, held),
      clonesOf(localZfs, opts.localZfsRoot),
    ]);

    const unreachable = remote && 'error' in remote ? remote.error : null;
    if (remote && !('error' in remote) && !remote.has(opts.remoteZfsRoot ?? '')) {
      log.warn(
        `${opts.remote}:${opts.remoteZfsRoot} does not exist, so nothing is pruned until replicate has copied the datasets there`,
      );
    }

    const now = io.now?.() ?? Math.floor(Date.now() / 1000);
    const outcomes: DatasetOutcome[] = [];
    for (const d of datasets) {
      const rel = relativeTo(opts.localZfsRoot, d.name) ?? '';
      let facts: RemoteFacts | undefined;
      let remoteDataset: string | null = null;
      if (opts.remote !== undefined && opts.remoteZfsRoot !== undefined) {
        remoteDataset = joinDataset(opts.remoteZfsRoot, rel);
        facts =
          remote && !('error' in remote)
            ? {
                kind: 'listed',
                remote: opts.remote,
                dataset: remoteDataset,
                snapshots: remote.get(remoteDataset)?.snapshots ?? null,
              }
            : { kind: 'unreachable', remote: opts.remote, error: unreachable ?? 'not listed' };
      }
      const anomalies = orderAnomalies(d, opts.prefix, now, DEFAULT_CLOCK_SKEW_SECONDS);
      for (const a of anomalies) {
        log.warn(
          `${local.name}:${d.name}@${a.short} is an anomaly: ${a.why}; it is kept and counts for no rule`,
        );
      }
      const plan = planDataset({
        dataset: d,
        prefix: opts.prefix,
        retention: retentionFor(d, opts.prefix, rules, zone, anomalies),
        holds: holds.get(d.name) ?? new Map(),
        clones: clones.get(d.name) ?? new Map(),
        remote: facts,
        anomalies,
      });
      outcomes.push({ plan, remoteDataset, destroyed: [], heldLate: [], error: null });
    }

    const planned = outcomes.reduce((n, o) => n + o.plan.destroy.length, 0);
    let go = destroying;
    if (!destroying) {
      if (!opts.json) {
        const next =
          opts.remote === undefined ? '' : `; next tier ${opts.remote}:${opts.remoteZfsRoot ?? ''}`;
        printPlan(
          `prune plan for ${local.name}:${opts.localZfsRoot} (${describeRules(rules)}; periods in ${zone.name}${next})`,
          outcomes,
          zone,
          out,
        );
      }
      const ask = io.confirm ?? (process.stdin.isTTY === true ? askOnTerminal : undefined);
      if (planned === 0) {
        log.info('nothing to destroy');
      } else if (opts.dryRun || opts.json) {
        log.info(`dry run: nothing destroyed (${planned} snapshot(s) would be)`);
      } else if (ask) {
        go = await ask(`Destroy the ${planned} snapshot(s) marked "destroy" above?`);
        if (!go) log.info('nothing destroyed');
      } else {
        log.info(
          `dry run: nothing destroyed; run with -y to destroy the ${planned} snapshot(s) marked "destroy"`,
        );
      }
    }

    if (go) {
      for (const o of outcomes) {
        if (o.plan.destroy.length === 0) continue;
        // replicate holds the first while it sends, a receive from any host the second: a base is
        // then never destroyed under a transfer. A transfer that ended since the listing only made
        // the plan more careful than needed.
        const acquired = await acquireAll(
          [datasetLockName(o.plan.dataset), receiveLockName(o.plan.dataset)],
          `prune ${o.plan.dataset}`,
          opts.lockWait * 1000,
          (holder, ms) => log.info(describeWait(`${local.name}:${o.plan.dataset}`, holder, ms)),
        );
        if ('heldBy' in acquired) {
          o.error = `skipped: ${describeHolder(acquired.heldBy)} is working on it; nothing destroyed, the next prune will`;
          log.warn(`${local.name}:${o.plan.dataset}: ${o.error}`);
          continue;
        }
        try {
          await destroyPlanned(localZfs, o);
        } catch (err) {
          o.error = errorMessage(err);
          log.error(`destroying old snapshots of ${o.plan.dataset}: ${o.error}`);
        } finally {
          acquired.lock.release();
        }
      }
    }

    let metadata: { dir: string; removed: string[]; errors: string[] } | null = null;
    const place = chooseMetadataDir(
      metadataDir,
      root.props[METADATA_DIR_PROPERTY],
      opts.localZfsRoot,
      '--local-metadata-dir',
    );
    if ('warning' in place && place.warning) log.warn(place.warning);
    if (go && 'dir' in place) {
      const byName = new Map(outcomes.map((o) => [o.plan.dataset, o]));
      const r = await pruneMetadata(
        place.dir,
        opts.prefix,
        guestSnapshots(datasets, byName),
        now + DEFAULT_CLOCK_SKEW_SECONDS,
      );
      metadata = { dir: place.dir, ...r };
      for (const e of r.errors) log.error(`pruning configs and manifests: ${e}`);
      if (r.removed.length > 0)
        log.info(`removed ${r.removed.length} config/manifest file(s) from ${place.dir}`);
    } else if (go && 'error' in place && root.props[METADATA_DIR_PROPERTY] !== undefined) {
      log.warn(`${place.error}: configs left as they are`);
    }

    if (opts.json) {
      const report = {
        localZfsRoot: opts.localZfsRoot,
        prefix: opts.prefix,
        rules: Object.fromEntries(RULE_ORDER.filter((r) => rules[r] !== undefined).map((r) => [r, rules[r]])),
        timeZone: zone.name,
        remote:
          opts.remote === undefined
            ? null
            : {
                host: opts.remote,
                zfsRoot: opts.remoteZfsRoot,
                reachable: unreachable === null,
                error: unreachable,
              },
        mode: go ? 'destroy' : 'dry-run',
        datasets: outcomes
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
            error: o.error,
          })),
        metadata,
      };
      out(`${JSON.stringify(report, null, 2)}\n`);
    } else if (go) {
      printResult(outcomes, out);
    }

    if (unreachable !== null) {
      log.error(
        `${opts.remote} is unreachable, so every snapshot from the last base held for it on was kept (exit code 1): ${unreachable}`,
      );
    }
    const failed = unreachable !== null || outcomes.some((o) => o.error !== null) || log.problems.errors > 0;
    return failed ? ExitCode.failure : ExitCode.ok;
  } finally {
    await remoteHost?.close();
  }
}
