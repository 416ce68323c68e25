/**
 * Many bookmarks and snapshot destroys in one `zfs program` (a ZFS channel program) per pool,
 * instead of one zfs process, and one wait for a transaction group to sync, per object: the zfs
 * command line makes one bookmark, and destroys the snapshots of one dataset, per call.
 */
import { poolOf } from './names.ts';

/** What a batch can do. Bookmarks are not destroyed this way: channel programs cannot (OpenZFS 2.3). */
export type BatchOp =
  | { readonly kind: 'bookmark'; readonly snapshot: string; readonly bookmark: string }
  | { readonly kind: 'destroy-snapshot'; readonly snapshot: string };

export type BatchOutcome =
  | { readonly ok: true }
  /** busy: the snapshot is held (EBUSY), which callers report as kept rather than as a failure. */
  | { readonly ok: false; readonly busy: boolean; readonly error: string };

/**
 * The operations come as script arguments (never spliced into the Lua text), a word then its names.
 * Each zfs.sync call returns an errno rather than stopping the program, so one operation's failure
 * stays its own; a destroy is refused here too unless it names a snapshot.
 */
export const BATCH_SCRIPT = `-- zbm: bookmarks and snapshot destroys, one result per operation
local argv = (...)["argv"]
local results = {}
local i, n = 1, 0
while i <= #argv do
  local op, res = argv[i], nil
  if op == "bookmark" then
    res = zfs.sync.bookmark(argv[i + 1], argv[i + 2])
    i = i + 3
  elseif op == "destroy-snapshot" then
    if string.find(argv[i + 1], "@", 1, true) then
      res = zfs.sync.destroy(argv[i + 1])
    else
      res = "not a snapshot"
    end
    i = i + 2
  else
    error("unknown operation " .. tostring(op))
  end
  n = n + 1
  results[n] = res
end
return results
`;

/** Enough for hundreds of disks per call, far from the channel program's argument and memory limits. */
export const BATCH_CHUNK = 500;

function checkOp(op: BatchOp): void {
  const bad = (why: string) => {
    throw new Error(`refusing a channel program operation: ${why} (${JSON.stringify(op)})`);
  };
  if (op.kind === 'destroy-snapshot') {
    if (!op.snapshot.includes('@') || op.snapshot.includes('#')) bad('only snapshots are destroyed');
  } else {
    if (!op.snapshot.includes('@')) bad('a bookmark is made from a snapshot');
    if (!op.bookmark.includes('#')) bad('not a bookmark name');
    if (poolOf(op.bookmark) !== poolOf(op.snapshot)) bad('snapshot and bookmark in different pools');
  }
}

/** `zfs program -j <pool> -` with the script on stdin; every op must be in that pool. */
export function batchArgv(pool: string, ops: readonly BatchOp[]): string[] {
  const words: string[] = [];
  for (const op of ops) {
    checkOp(op);
    if (poolOf(op.snapshot) !== pool) throw new Error(`${op.snapshot} is not in pool ${pool}`);
    if (op.kind === 'bookmark') words.push('bookmark', op.snapshot, op.bookmark);
    else words.push('destroy-snapshot', op.snapshot);
  }
  return ['zfs', 'program', '-j', pool, '-', ...words];
}

const ERRNO: Readonly<Record<number, string>> = {
  1: 'operation not permitted',
  2: 'does not exist',
  16: 'dataset is busy (held)',
  17: 'already exists, or the snapshot has dependent clones',
  18: 'not in this pool',
  22: 'invalid argument',
  28: 'out of space',
  95: 'not supported',
};

export function outcomeOf(result: number | string): BatchOutcome {
  if (result === 0) return { ok: true };
  if (typeof result === 'string') return { ok: false, busy: false, error: result };
  return { ok: false, busy: result === 16, error: `${ERRNO[result] ?? 'failed'} (errno ${result})` };
}

/** The script's results, one per operation, from `zfs program -j`'s output; throws on anything else. */
export function parseBatchOutput(stdout: string, count: number): BatchOutcome[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error(`zfs program printed no JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const ret =
    typeof parsed === 'object' && parsed !== null && 'return' in parsed
      ? (parsed as { return: unknown }).return
      : undefined;
  // Lua's empty table comes out as an empty object; a table with keys 1..n as an object too.
  if (typeof ret !== 'object' || ret === null) throw new Error('zfs program returned no result table');
  const table = ret as Record<string, unknown>;
  const out: BatchOutcome[] = [];
  for (let i = 1; i <= count; i++) {
    const v = table[String(i)];
    if (typeof v !== 'number' && typeof v !== 'string') {
      throw new Error(`zfs program returned no result for operation ${i} of ${count}`);
    }
    out.push(outcomeOf(v));
  }
  if (Object.keys(table).length !== count) {
    throw new Error(`zfs program returned ${Object.keys(table).length} results for ${count} operations`);
  }
  return out;
}

/** Said once per batch that had to fall back: slower, never wrong (zbm serve refuses programs). */
export function programFallback(host: string, why: string): string {
  return `on ${host}: zfs program could not run (${why.split('\n')[0]}); one zfs call per bookmark and snapshot instead`;
}
