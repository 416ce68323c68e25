/**
 * Where a node's disk goes on the backup server, whatever Proxmox did to it since its last backup
 * (docs/proxmox.md "A disk's chains"). A disk's backups live in a family of datasets: its first
 * chain `<root>/<volume>`, and a later chain `<root>/<volume>.<first snapshot>` each time the disk
 * can continue none of them (after a rollback, a failover, a fresh zvol from `qm disk move` or an
 * online migration, zbm's snapshots destroyed by hand, a backup dataset written to). A later chain
 * never touches the older ones, so every older restore point stays. It starts as a clone of the
 * newest snapshot the node still shares with the family (by guid) and an increment from it, and
 * only when there is none, as a full copy.
 *
 * Only what the node did starts a new chain. A chain changed on the server itself (a snapshot that
 * is not zbm's, bytes written to it, a zbm snapshot name that came back with another guid) is
 * refused as before, untouched, with the way out: that is for an administrator to look at. Pure.
 */
import { chainDataset } from '../conventions/names.ts';
import {
  type Conflict,
  chain,
  type Diff,
  describeConflict,
  diff,
  type SnapRef,
  type SourceSide,
  type Step,
} from './diff.ts';

/** One existing chain of the disk on the backup server. */
export interface ChainMember {
  readonly name: string;
  /** Oldest first. */
  readonly snapshots: readonly SnapRef[];
  readonly written: number;
  readonly resumeToken: string | null;
}

export type ChainPlan =
  /** Go on in an existing chain (the first chain when there is none yet): the transfer decides the steps. */
  | { readonly kind: 'continue'; readonly target: string; readonly diff: Diff }
  | {
      readonly kind: 'new';
      readonly target: string;
      /** The snapshot on the server the chain is cloned from (`zfs receive -o origin=`); null: a full copy. */
      readonly origin: string | null;
      readonly steps: readonly Step[];
      /** Why no existing chain could go on: what each one holds that the disk does not. */
      readonly why: string;
      /**
       * The disk's first backup, started as a clone of a snapshot of its history that the server has
       * in another disk's chain (its template's, or its own from before a rename): not a later chain.
       */
      readonly first: boolean;
    }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * What a disk's first backup may start from, so that it costs what differs and not the disk again:
 * the snapshots of its history on the node that are not sent themselves (zbm's snapshots carried
 * over by a rename, as `qm template` and `qm disk reassign` do; the origin of a linked clone), and
 * every snapshot the server has under its root, by guid.
 */
export interface SharedHistory {
  /** Each with the dataset it lives in on the node when that is another one (a clone's origin). */
  readonly history: readonly (SnapRef & { readonly dataset?: string })[];
  /** guid → `<dataset>@<snapshot>` on the server. */
  readonly onServer: ReadonlyMap<string, string>;
}

/**
 * The chain a disk's new snapshots go to. primary is `<root>/<volume>`; family its existing chains
 * (conventions/names.ts families), any order; where names the disk and the backup server in messages.
 */
export function planChain(
  source: SourceSide,
  primary: string,
  family: readonly ChainMember[],
  where: { readonly node: string; readonly dataset: string; readonly server: string },
  /** zbm's snapshots (its prefix): the only ones a node's backups put on the server. */
  isOurs: (short: string) => boolean,
  shared?: SharedHistory,
): ChainPlan {
  if (source.snapshots.length === 0)
    return { kind: 'continue', target: primary, diff: { kind: 'nothing-to-send' } };
  // An interrupted receive is finished first, wherever it was going.
  const interrupted = family.find((m) => m.resumeToken !== null);
  if (interrupted) return { kind: 'continue', target: interrupted.name, diff: diffWith(source, interrupted) };

  let best: { member: ChainMember; diff: Diff; txg: number } | null = null;
  const conflicts: { member: ChainMember; conflict: Conflict }[] = [];
  for (const m of family) {
    const d = diffWith(source, m);
    if (d.kind === 'incremental' || d.kind === 'up-to-date') {
      if (!best || d.common.createtxg > best.txg) best = { member: m, diff: d, txg: d.common.createtxg };
    } else if (d.kind === 'no-common-snapshot' || d.kind === 'diverged') {
      conflicts.push({ member: m, conflict: d });
    }
  }
  if (best) return { kind: 'continue', target: best.member.name, diff: best.diff };
  const changedOnServer = conflicts.find(({ conflict }) => serverSide(conflict, isOurs));
  if (changedOnServer)
    return {
      kind: 'refused',
      reason: describeConflict(
        changedOnServer.conflict,
        { host: where.node, dataset: where.dataset },
        { host: where.server, dataset: changedOnServer.member.name },
      ),
    };
  // The first backup, or the first chain gone and none of the later ones can go on: it starts again.
  if (family.length === 0 && shared) {
    const first = firstFromHistory(source, primary, shared, where);
    if (first) return first;
  }
  if (!family.some((m) => m.name === primary))
    return { kind: 'continue', target: primary, diff: diff(source, { snapshots: null, written: 0 }) };

  const why = conflicts
    .map(({ member, conflict }) =>
      describeConflict(
        conflict,
        { host: where.node, dataset: where.dataset },
        { host: where.server, dataset: member.name },
      )
        .split('\n')[0]
        ?.replace(/\.$/, ''),
    )
    .join('; ');
  // The newest snapshot the disk has that some chain has too, by guid: where the new chain starts.
  const onServer = new Map<string, string>();
  for (const m of family) for (const s of m.snapshots) onServer.set(s.guid, `${m.name}@${s.short}`);
  let start: { ref: SnapRef; origin: string } | null = null;
  for (const s of source.snapshots) {
    const there = onServer.get(s.guid);
    if (there !== undefined && (!start || s.createtxg > start.ref.createtxg))
      start = { ref: s, origin: there };
  }
  const after = start
    ? source.snapshots.filter((s) => s.createtxg > (start?.ref.createtxg ?? 0))
    : source.snapshots;
  const first = after[0];
  if (!first)
    return {
      kind: 'refused',
      reason: `${where.server} has the newest snapshot of ${where.node}:${where.dataset} already, in ${start?.origin}, but no chain of it can go on (${why}): the next backup starts a new chain from it`,
    };
  const target = chainDataset(primary, first.short);
  if (family.some((m) => m.name === target))
    return {
      kind: 'refused',
      reason: `a new chain of ${primary} would be ${target}, which exists already and cannot go on either (${why}); look at both on ${where.server}`,
    };
  return {
    kind: 'new',
    target,
    origin: start?.origin ?? null,
    steps: chain(start ? { short: start.ref.short, bookmark: false } : null, after),
    why,
    first: false,
  };
}

/**
 * A first backup as a clone of the newest snapshot of the disk's history the server has (txgs are
 * pool-wide, so an origin and the disk's own snapshots compare), or null: a full copy.
 */
function firstFromHistory(
  source: SourceSide,
  primary: string,
  shared: SharedHistory,
  where: { readonly node: string; readonly dataset: string; readonly server: string },
): ChainPlan | null {
  let start: { ref: SnapRef & { readonly dataset?: string }; origin: string } | null = null;
  for (const s of [...shared.history, ...source.snapshots]) {
    const there = shared.onServer.get(s.guid);
    if (there !== undefined && (!start || s.createtxg > start.ref.createtxg))
      start = { ref: s, origin: there };
  }
  if (!start) return null;
  const from = start;
  const after = source.snapshots.filter((s) => s.createtxg > from.ref.createtxg);
  if (after.length === 0)
    return {
      kind: 'refused',
      reason: `${where.server} has the newest snapshot of ${where.node}:${where.dataset} already, as ${from.origin}, and no dataset ${primary}: nothing new to start it with; the next backup will`,
    };
  const base = from.ref.dataset === undefined ? {} : { dataset: from.ref.dataset };
  return {
    kind: 'new',
    target: primary,
    origin: from.origin,
    steps: chain({ short: from.ref.short, bookmark: false, ...base }, after),
    why: `${where.server} has ${where.node}:${from.ref.dataset ?? where.dataset}@${from.ref.short} already, as ${from.origin}`,
    first: true,
  };
}

/** Whether a conflict comes from a change on the server (not the node's doing): see the top. */
function serverSide(c: Conflict, isOurs: (short: string) => boolean): boolean {
  if (c.kind === 'diverged') return c.written > 0 || c.extra.some((s) => !isOurs(s.short));
  if (c.kind !== 'no-common-snapshot') return false;
  const onNode = new Map(c.source.map((s) => [s.short, s.guid]));
  return c.target.some((t) => onNode.has(t.short) && onNode.get(t.short) !== t.guid);
}

function diffWith(source: SourceSide, m: ChainMember): Diff {
  return diff(source, { snapshots: m.snapshots, written: m.written });
}
