/**
 * A hold moved in one command: `zfs hold` of the new snapshots, then, only if that worked,
 * `zfs release` of the old ones, under one tag. Over ssh each command costs a session on the
 * master connection; moving a run's bases is then one round trip instead of two, and the order
 * (hold first) stays the shell's, so a base is never without its hold.
 *
 * The snapshots come as arguments, never in the script's text: $1 the tag, $2 how many of the
 * snapshots after it are to hold, the rest to release. `zbm serve` recognises the script by its
 * $0, judges the hold and the release each alone, and runs its own copy of the script.
 */
/** $0 of the script: how messages name it, and how `zbm serve` recognises it. */
export const MOVE_HOLD_ARGV0 = 'zbm-move-hold';

// slice runs `zfs <op> <tag>` on operands a..b of the ones it is given (POSIX sh has no arrays).
const SCRIPT = `t=$1; n=$2; shift 2
slice() { o=$1; a=$2; b=$3; shift 3; i=0
  for s do shift; i=$((i + 1)); [ "$i" -ge "$a" ] && [ "$i" -le "$b" ] && set -- "$@" "$s"; done
  zfs "$o" "$t" "$@"; }
slice hold 1 "$n" "$@" && slice release $((n + 1)) $# "$@"`;

/** argv that holds `hold` and then releases `release` (both non-empty) under tag. */
export function moveHoldArgv(tag: string, hold: readonly string[], release: readonly string[]): string[] {
  return ['sh', '-c', SCRIPT, MOVE_HOLD_ARGV0, tag, String(hold.length), ...hold, ...release];
}

/**
 * The tag and the snapshots to hold and to release that argv asks for; null when argv is not the
 * script's or its count does not split its snapshots into two non-empty lists.
 */
export function splitMoveHold(
  argv: readonly string[],
): { readonly tag: string; readonly hold: readonly string[]; readonly release: readonly string[] } | null {
  if (!isMoveHold(argv)) return null;
  const [tag, count, ...snapshots] = argv.slice(4);
  if (tag === undefined || count === undefined || !/^[1-9][0-9]{0,6}$/.test(count)) return null;
  const n = Number(count);
  if (n >= snapshots.length) return null;
  return { tag, hold: snapshots.slice(0, n), release: snapshots.slice(n) };
}

export function isMoveHold(argv: readonly string[]): boolean {
  return argv[0] === 'sh' && argv[1] === '-c' && argv[3] === MOVE_HOLD_ARGV0;
}
