/**
 * What a prune reads before it plans, all of it observed on this host and the next tier: the
 * datasets and snapshots under the root, the next tier's listing, and the holds and clones here.
 */
import { errorMessage } from '../errors.ts';
import { METADATA_DIR_PROPERTY } from '../metadata/store.ts';
import { splitSnapshot } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';

/**
 * The whole of one argument handed to exec (`zfs destroy ds@a,b,...`) may not exceed
 * MAX_ARG_STRLEN (128 KiB on Linux), and all of them together ARG_MAX: long histories are split,
 * which a normal run never needs.
 */
export const MAX_DESTROY_ARG = 100_000;
const MAX_HOLDS_ARGS = 1_000_000;

export function chunked(items: readonly string[], maxChars: number): string[][] {
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

/** Per dataset and short name, the values given for full snapshot names (appended when repeated). */
export type PerSnapshot = Map<string, Map<string, string[]>>;

function addPerSnapshot(found: PerSnapshot, snapshot: string, values: readonly string[]): void {
  const { dataset: ds, snapshot: short } = splitSnapshot(snapshot);
  const perDs = found.get(ds) ?? new Map<string, string[]>();
  perDs.set(short, [...(perDs.get(short) ?? []), ...values]);
  found.set(ds, perDs);
}

/** Hold tags per dataset and short name, for the given snapshots: one `zfs holds` call (none for none). */
export async function holdsOf(zfs: Zfs, names: readonly string[]): Promise<PerSnapshot> {
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

/** The next tier's datasets by name, why it could not be listed, or null without a next tier. */
export type RemoteListing = Map<string, Dataset> | { error: string } | null;

/** What this host saw, for the planner: its datasets, the next tier's, holds and clones. */
export interface PruneFacts {
  readonly datasets: readonly Dataset[];
  readonly root: Dataset;
  readonly remote: RemoteListing;
  readonly holds: PerSnapshot;
  readonly clones: PerSnapshot;
}

/** Where a prune looks: this host's root, and the next tier's when there is one. */
export interface PruneScope {
  readonly localZfsRoot: string;
  readonly prefix: string;
  /** The ssh destination of the next tier and the dataset there that mirrors localZfsRoot. */
  readonly remote?: { readonly host: string; readonly zfsRoot: string; readonly zfs: Zfs };
}

/** The listing first, then the next tier's listing, the holds and the clones at once; null when the root does not exist. */
export async function gatherFacts(localZfs: Zfs, scope: PruneScope): Promise<PruneFacts | null> {
  const datasets = await localZfs.list({ roots: [scope.localZfsRoot], userProps: [METADATA_DIR_PROPERTY] });
  const root = datasets.find((d) => d.name === scope.localZfsRoot);
  if (!root) return null;
  // userrefs counts the holds: only held snapshots need to be asked which tags hold them.
  const held = datasets.flatMap((d) =>
    d.snapshots.filter((s) => s.short.startsWith(scope.prefix) && s.userrefs > 0).map((s) => s.name),
  );

  const remoteListing = async (): Promise<RemoteListing> => {
    if (!scope.remote) return null;
    try {
      const list = await scope.remote.zfs.list({ roots: [scope.remote.zfsRoot] });
      return new Map(list.map((d) => [d.name, d]));
    } catch (err) {
      return { error: errorMessage(err) };
    }
  };
  const [remote, holds, clones] = await Promise.all([
    remoteListing(),
    holdsOf(localZfs, held),
    clonesOf(localZfs, scope.localZfsRoot),
  ]);
  return { datasets, root, remote, holds, clones };
}

/** Why the next tier could not be listed, or null. */
export function unreachableOf(remote: RemoteListing): string | null {
  return remote && 'error' in remote ? remote.error : null;
}

/** The plan of every dataset, from the facts alone; anomalies are reported as they are found. */
