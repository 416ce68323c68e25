/**
 * What prune does to one dataset, as one pure function from the retention result and the safety
 * facts (the next tier's copy, holds) to the snapshots to destroy and, for every one kept, why.
 * Safety always wins over the rules: a snapshot the next tier still needs, or that is held, is
 * never destroyed, whatever the rules say. Identity across hosts is the guid, never the name.
 * Within a dataset, order is the receiving pool's (createtxg), never the name: a name that
 * disagrees with it, or lies in the future, is an anomaly that takes no rule's slot and is itself
 * kept. The rules count a disk's restore points over its family of chains (familyRetention),
 * ordered across chains by their names' times; every safety rule stays per dataset.
 */
import { families, isBaseTagFor, snapshotTime } from '../conventions/names.ts';
import type { TimeZone } from '../time/zone.ts';
import {
  type KeepRule,
  type KeepRules,
  planRetention,
  type RetentionResult,
  type Timed,
} from './retention.ts';

/** The parts of a snapshot listing the planner reads (zfs/types.ts Snapshot fits). */
export interface SnapInfo {
  readonly short: string;
  readonly guid: string;
  readonly createtxg: number;
  readonly creation: number;
}

export interface DatasetInfo {
  readonly name: string;
  /** In any order: the plan orders them by createtxg. */
  readonly snapshots: readonly SnapInfo[];
}

/** What is known about the next tier (--remote) for this dataset. */
export type RemoteFacts =
  | {
      readonly kind: 'listed';
      /** The ssh destination, as in hold tags `zbm-base:<source>:<remote>`. */
      readonly remote: string;
      /** The mirrored dataset there (same path below --remote-zfs-root). */
      readonly dataset: string;
      /** Its snapshots; null when the remote has no such dataset. */
      readonly snapshots: readonly { readonly guid: string }[] | null;
    }
  | { readonly kind: 'unreachable'; readonly remote: string; readonly error: string };

export type KeepReason =
  | { readonly kind: 'rule'; readonly rule: KeepRule; readonly period?: string }
  | { readonly kind: 'newest-common'; readonly remote: string }
  | { readonly kind: 'not-replicated'; readonly remote: string }
  | { readonly kind: 'no-remote-copy'; readonly remote: string }
  | { readonly kind: 'no-common'; readonly remote: string }
  | { readonly kind: 'last-base'; readonly remote: string }
  | { readonly kind: 'after-last-base'; readonly remote: string; readonly base: string }
  | { readonly kind: 'remote-unknown'; readonly remote: string }
  | { readonly kind: 'held'; readonly tags: readonly string[] }
  | {
      readonly kind: 'clones';
      readonly clones: readonly string[];
      /** Every clone is a later chain of the same disk (a promote would mix the chains up). */
      readonly laterChain?: true;
    }
  | { readonly kind: 'anomaly'; readonly why: string };

export interface Kept {
  readonly short: string;
  /** Every reason, joined: what an administrator reads. */
  readonly why: string;
  readonly reasons: readonly KeepReason[];
}

export interface DatasetPlan {
  readonly dataset: string;
  /** Short names, oldest first: one `zfs destroy dataset@a,b,c`. */
  readonly destroy: readonly string[];
  /** zbm's snapshots that stay, oldest first. */
  readonly keep: readonly Kept[];
  /** Snapshots without the prefix: never touched, listed so the plan shows the whole dataset. */
  readonly foreign: readonly string[];
  /** Dataset-wide facts that decided the plan (no copy on the remote, remote unreachable...). */
  readonly notes: readonly string[];
  /** Snapshots whose name disagrees with the pool's order or lies in the future: kept, reported. */
  readonly anomalies: readonly Anomaly[];
  /** Every snapshot oldest first, with its verdict: the prune-simulator view. */
  readonly verdicts: readonly Verdict[];
  /** Where the dataset stands among its disk's chains; absent for a disk with one chain. */
  readonly family?: ChainPlace;
}

/**
 * A dataset's place in its disk's family of chains (conventions/names.ts families): the rules were
 * counted over all of them, so a slot may have gone to a snapshot of another chain.
 */
export interface ChainPlace {
  /** The disk's first chain, whose name the later ones extend (it may be gone from this host). */
  readonly primary: string;
  /** 1-based position among the family's datasets on this host, oldest chain first. */
  readonly chain: number;
  readonly chains: number;
  /** The family's datasets on this host, oldest chain first. */
  readonly datasets: readonly string[];
}

export interface Verdict {
  readonly short: string;
  /** The time the snapshot stands for (seconds; its name's time for zbm's, else its creation). */
  readonly time: number;
  readonly action: 'keep' | 'destroy' | 'foreign';
  readonly why: string;
}

export function ruleLabel(rule: KeepRule): string {
  return rule === 'no-rules' ? 'no keep rule given' : `keep-${rule}`;
}

export function describeReason(r: KeepReason): string {
  switch (r.kind) {
    case 'rule':
      return r.period === undefined ? ruleLabel(r.rule) : `${ruleLabel(r.rule)} ${r.period}`;
    case 'newest-common':
      return `newest common with ${r.remote}`;
    case 'not-replicated':
      return `not yet on ${r.remote}`;
    case 'no-remote-copy':
      return `${r.remote} has no copy of this dataset`;
    case 'no-common':
      return `no snapshot in common with ${r.remote}`;
    case 'last-base':
      return `last base held for ${r.remote} (unreachable)`;
    case 'after-last-base':
      return `newer than ${r.base}, the last base held for ${r.remote} (unreachable)`;
    case 'remote-unknown':
      return `${r.remote} unreachable and no base held for it`;
    case 'held':
      return `held by ${r.tags.join(', ')}`;
    case 'clones':
      return r.laterChain
        ? `has clones (${r.clones.join(', ')}): the origin of a later chain of this disk, kept as long as that chain exists`
        : `has clones (${r.clones.join(', ')}): destroy or promote them to let it go`;
    case 'anomaly':
      return `ANOMALY: ${r.why}; kept, and no reason to destroy any other (check it, destroy it by hand if it is no real backup)`;
  }
}

/** A zbm snapshot whose name cannot be trusted to say when it was taken. */
export interface Anomaly {
  readonly short: string;
  readonly why: string;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * The zbm snapshots whose time (from the name, else `creation`, both chosen by the sender) lies
 * beyond now + skew, or is earlier than that of a snapshot the pool received before it
 * (createtxg): a name can be chosen to look newer or older than it is, the createtxg cannot. Two
 * snapshots of the same second (names without a time, made by hand) are no anomaly. Pure.
 */
export function orderAnomalies(dataset: DatasetInfo, prefix: string, now: number, skew: number): Anomaly[] {
  const ours = dataset.snapshots
    .filter((s) => s.short.startsWith(prefix))
    .sort((a, b) => a.createtxg - b.createtxg);
  const out: Anomaly[] = [];
  let latest: { short: string; time: number } | null = null;
  for (const s of ours) {
    const time = snapshotTime(s.short, prefix, s.creation);
    if (time > now + skew || s.creation > now + skew) {
      const when =
        time > now + skew ? `named for ${iso(time)}` : `created ${iso(s.creation)}, its stream says`;
      out.push({ short: s.short, why: `${when}, in the future (this host's clock says ${iso(now)})` });
    } else if (latest !== null && time < latest.time) {
      out.push({
        short: s.short,
        why: `named for ${iso(time)}, earlier than ${latest.short}, which this pool received before it (createtxg)`,
      });
    } else {
      latest = { short: s.short, time };
    }
  }
  return out;
}

/**
 * The retention input of a dataset: zbm's snapshots (the prefix) but the anomalies, with the time
 * each stands for, in createtxg order (which their times follow).
 */
export function retentionCandidates(
  dataset: DatasetInfo,
  prefix: string,
  anomalies: readonly Anomaly[] = [],
): { name: string; time: number }[] {
  const skip = new Set(anomalies.map((a) => a.short));
  return dataset.snapshots
    .filter((s) => s.short.startsWith(prefix) && !skip.has(s.short))
    .sort((a, b) => a.createtxg - b.createtxg)
    .map((s) => ({ name: s.short, time: snapshotTime(s.short, prefix, s.creation) }));
}

/**
 * The place of every dataset that belongs to a family of more than one chain, by dataset name.
 * Datasets alone in their family (every disk without a later chain) are absent.
 */
export function chainPlaces(
  datasets: readonly { readonly name: string }[],
  prefix: string,
): Map<string, ChainPlace> {
  const out = new Map<string, ChainPlace>();
  for (const [primary, members] of families(datasets, prefix)) {
    if (members.length < 2) continue;
    const names = members.map((m) => m.name);
    names.forEach((name, i) => {
      out.set(name, { primary, chain: i + 1, chains: names.length, datasets: names });
    });
  }
  return out;
}

/** One chain of a family for familyRetention: its listing and its own orderAnomalies. */
export interface FamilyMember {
  readonly dataset: DatasetInfo;
  readonly anomalies: readonly Anomaly[];
}

/**
 * planRetention over a disk's family of chains at once, so that the rules count the restore points
 * of the disk rather than of each dataset: an old chain keeps no `--keep-last N` of its own. The
 * input is every chain's retention candidates (anomalies, found per dataset, left out), ordered by
 * the time their names stand for: createtxg orders snapshots within a dataset, but across datasets
 * it is the order of arrival, not of the backups (a chain may have reached this pool before an
 * older one). At equal times, a later member's snapshot counts as the newer (pass the chains
 * oldest first, as families gives them). Returns, aligned with
 * members, each chain's share of the result (its own short names, newest first); for a family of
 * one it is exactly retentionFor.
 */
export function familyRetention(
  members: readonly FamilyMember[],
  prefix: string,
  rules: KeepRules,
  tz?: string | TimeZone,
): RetentionResult[] {
  const timed: Timed[] = [];
  const owner: number[] = [];
  const short: string[] = [];
  members.forEach((m, i) => {
    for (const c of retentionCandidates(m.dataset, prefix, m.anomalies)) {
      // The position is the name: short names may repeat across chains, positions do not.
      timed.push({ name: String(timed.length), time: c.time });
      owner.push(i);
      short.push(c.name);
    }
  });
  const all = planRetention(timed, rules, tz);
  const out = members.map(() => ({
    keep: [] as RetentionResult['keep'][number][],
    remove: [] as string[],
  }));
  for (const k of all.keep) {
    const at = Number(k.name);
    out[owner[at] as number]?.keep.push({ ...k, name: short[at] as string });
  }
  for (const name of all.remove) {
    const at = Number(name);
    out[owner[at] as number]?.remove.push(short[at] as string);
  }
  return out;
}

/**
 * familyRetention of every family among datasets, by dataset name; anomalies: orderAnomalies per
 * dataset name (none when absent).
 */
export function retentionByDataset(
  datasets: readonly DatasetInfo[],
  prefix: string,
  rules: KeepRules,
  tz?: string | TimeZone,
  anomalies: ReadonlyMap<string, readonly Anomaly[]> = new Map(),
): Map<string, RetentionResult> {
  const out = new Map<string, RetentionResult>();
  for (const members of families(datasets, prefix).values()) {
    const results = familyRetention(
      members.map((d) => ({ dataset: d, anomalies: anomalies.get(d.name) ?? [] })),
      prefix,
      rules,
      tz,
    );
    members.forEach((d, i) => {
      out.set(d.name, results[i] as RetentionResult);
    });
  }
  return out;
}

/** What the plan of a chain says about its family: where it stands, and that it stays as a dataset. */
export function chainNotes(dataset: string, place: ChainPlace, emptied: boolean): string[] {
  const notes = [
    `chain ${place.chain} of ${place.chains} of ${place.primary}` +
      (place.datasets[0] === place.primary ? '' : ' (its first chain is gone from this host)') +
      `: the keep rules count the restore points of all ${place.chains} chains together, so a rule's slot may have gone to a snapshot of another chain`,
  ];
  if (emptied) {
    notes.push(
      `no zbm snapshot of ${dataset} is left: the other chains hold the restore points the rules keep; the dataset itself stays (prune never destroys a dataset)`,
    );
  }
  return notes;
}

export function retentionFor(
  dataset: DatasetInfo,
  prefix: string,
  rules: KeepRules,
  tz?: string | TimeZone,
  anomalies: readonly Anomaly[] = [],
): RetentionResult {
  return planRetention(retentionCandidates(dataset, prefix, anomalies), rules, tz);
}

export interface PlanInput {
  readonly dataset: DatasetInfo;
  readonly prefix: string;
  /** planRetention over this dataset's zbm snapshots (retentionFor). */
  readonly retention: RetentionResult;
  /** Hold tags per short name; snapshots without holds may be absent. */
  readonly holds: ReadonlyMap<string, readonly string[]>;
  /** Absent without --remote. */
  readonly remote?: RemoteFacts;
  /** Clones per short name: ZFS refuses to destroy their origin (and the whole batch with it). */
  readonly clones?: ReadonlyMap<string, readonly string[]>;
  /** orderAnomalies of the dataset: left out of the retention input, kept here. */
  readonly anomalies?: readonly Anomaly[];
  /** Its place among its disk's chains (chainPlaces), whose retention was counted together. */
  readonly family?: ChainPlace;
}

export function planDataset(input: PlanInput): DatasetPlan {
  const { dataset, prefix, retention, holds, remote } = input;
  // The pool's order: a listing not sorted by createtxg (a caller's) must not change the plan.
  const byTxg = [...dataset.snapshots].sort((a, b) => a.createtxg - b.createtxg);
  const ours = byTxg.filter((s) => s.short.startsWith(prefix));
  const index = new Map(ours.map((s, i) => [s.short, i]));
  // Reasons per position in ours; most snapshots get one or none, so arrays are made lazily.
  const reasons: (KeepReason[] | undefined)[] = new Array(ours.length);
  const addAt = (i: number, r: KeepReason) => {
    const list = reasons[i];
    if (list) list.push(r);
    else reasons[i] = [r];
  };
  const notes: string[] = [];
  const family = input.family;

  for (const k of retention.keep) {
    const i = index.get(k.name);
    if (i !== undefined)
      addAt(
        i,
        k.period === undefined
          ? { kind: 'rule', rule: k.rule }
          : { kind: 'rule', rule: k.rule, period: k.period },
      );
  }
  // First among the reasons: what an administrator must look at.
  for (const a of input.anomalies ?? []) {
    const i = index.get(a.short);
    if (i !== undefined) addAt(i, { kind: 'anomaly', why: a.why });
  }

  if (remote?.kind === 'listed') {
    const name = remote.remote;
    if (remote.snapshots === null) {
      const r: KeepReason = { kind: 'no-remote-copy', remote: name };
      for (let i = 0; i < ours.length; i++) addAt(i, r);
      if (ours.length > 0) {
        notes.push(
          `${name}:${remote.dataset} does not exist, so every zbm snapshot of ${dataset.name} is kept until replicate has copied it`,
        );
      }
    } else {
      const there = new Set(remote.snapshots.map((s) => s.guid));
      let common = ours.length - 1;
      while (common >= 0 && !there.has((ours[common] as SnapInfo).guid)) common--;
      if (common < 0) {
        const r: KeepReason = { kind: 'no-common', remote: name };
        for (let i = 0; i < ours.length; i++) addAt(i, r);
        if (ours.length > 0) {
          notes.push(
            `${name}:${remote.dataset} has no snapshot in common with ${dataset.name} (compared by guid), so every zbm snapshot is kept: none of them is on ${name}`,
          );
        }
      } else {
        const base = ours[common] as SnapInfo;
        addAt(common, { kind: 'newest-common', remote: name });
        const r: KeepReason = { kind: 'not-replicated', remote: name };
        for (let i = common + 1; i < ours.length; i++) addAt(i, r);
        const pending = ours.length - common - 1;
        notes.push(
          `newest common with ${name}:${remote.dataset} is ${base.short} (guid ${base.guid})` +
            (pending > 0 ? `; ${pending} newer snapshot(s) not yet on ${name}` : ''),
        );
      }
    }
  } else if (remote?.kind === 'unreachable') {
    const name = remote.remote;
    let base = ours.length - 1;
    while (
      base >= 0 &&
      !(holds.get((ours[base] as SnapInfo).short) ?? []).some((t) => isBaseTagFor(t, name))
    ) {
      base--;
    }
    if (base < 0) {
      const r: KeepReason = { kind: 'remote-unknown', remote: name };
      for (let i = 0; i < ours.length; i++) addAt(i, r);
      if (ours.length > 0) {
        notes.push(
          `${name} is unreachable and no snapshot of ${dataset.name} holds a base for it: every zbm snapshot is kept`,
        );
      }
    } else {
      const b = (ours[base] as SnapInfo).short;
      addAt(base, { kind: 'last-base', remote: name });
      const r: KeepReason = { kind: 'after-last-base', remote: name, base: b };
      for (let i = base + 1; i < ours.length; i++) addAt(i, r);
      notes.push(`${name} is unreachable: kept ${b} (the last base held for it) and everything newer`);
    }
  }

  for (const [short, tags] of holds) {
    const i = index.get(short);
    if (i !== undefined && tags.length > 0) addAt(i, { kind: 'held', tags: [...tags] });
  }
  for (const [short, clones] of input.clones ?? []) {
    const i = index.get(short);
    if (i === undefined || clones.length === 0) continue;
    const chains = family?.datasets;
    addAt(
      i,
      chains !== undefined && clones.every((c) => chains.includes(c))
        ? { kind: 'clones', clones: [...clones], laterChain: true }
        : { kind: 'clones', clones: [...clones] },
    );
  }

  const keep: Kept[] = [];
  const destroy: string[] = [];
  const foreign: string[] = [];
  const verdicts: Verdict[] = [];
  const foreignWhy = `not a zbm snapshot (no prefix ${prefix}): never touched`;
  const whys = new Map<KeepReason, string>();
  for (const s of byTxg) {
    const i = index.get(s.short);
    if (i === undefined) {
      foreign.push(s.short);
      verdicts.push({ short: s.short, time: s.creation, action: 'foreign', why: foreignWhy });
      continue;
    }
    const time = snapshotTime(s.short, prefix, s.creation);
    const rs = reasons[i];
    if (rs) {
      // Shared reasons (the same object for thousands of snapshots) are described once.
      const first = rs[0] as KeepReason;
      let why = rs.length === 1 ? whys.get(first) : undefined;
      if (why === undefined) {
        why = rs.map(describeReason).join('; ');
        if (rs.length === 1) whys.set(first, why);
      }
      keep.push({ short: s.short, why, reasons: rs });
      verdicts.push({ short: s.short, time, action: 'keep', why });
    } else {
      destroy.push(s.short);
      verdicts.push({ short: s.short, time, action: 'destroy', why: 'no rule keeps it' });
    }
  }
  if (family !== undefined) {
    // First: it explains every verdict below it.
    notes.unshift(...chainNotes(dataset.name, family, keep.length === 0 && destroy.length > 0));
  }
  return {
    dataset: dataset.name,
    destroy,
    keep,
    foreign,
    notes,
    verdicts,
    anomalies: input.anomalies ?? [],
    ...(family === undefined ? {} : { family }),
  };
}
