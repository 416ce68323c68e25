import { hostname } from 'node:os';
import { ExitCode } from '../errors.ts';
import { DEFAULT_LOCK_DIR, lockFileName, receiveLockName } from './lock.ts';

/**
 * The same lock protocol as lock.ts, in POSIX sh, for a command run on another host: a `zfs
 * receive` into a backup server takes the lock that `zbm prune` there takes before destroying, so
 * a prune never runs under a transfer into the same dataset, whichever host started the transfer.
 *
 * $1 lock file name, $2 seconds to wait, $3 holder description (JSON-safe); the command follows.
 * The holder's pid is this shell's, alive as long as the command runs; a lock left by a killed
 * shell is stale (its pid runs no zbm) and is taken over, as lock.ts does. Exit 75 when the lock
 * stays held, with the holder on stderr. Builtins where they do (the holder is read with `read`):
 * every receive pays for each process this script starts.
 */
function lockScript(dir: string): string {
  return `d=${dir}; f="$d/$1"; w=$2; h=$3; shift 3
[ -d "$d" ] || mkdir -p "$d" || exit ${LOCK_HELD_EXIT}
holder() { p=; l=; read -r l 2>/dev/null <"$f"; case $l in '{"pid":'[0-9]*) l=\${l#'{"pid":'}; p=\${l%%,*} ;; esac; case $p in *[!0-9]*) p= ;; esac; }
n=0
while ! (set -C; printf '{"pid":%s,"command":"%s","since":"%s"}' "$$" "$h" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$f") 2>/dev/null; do
  holder
  if [ -n "$p" ] && ! { kill -0 "$p" 2>/dev/null && tr '\\000' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q zbm; }; then
    rm -f "$f"; continue
  fi
  if [ "$n" -ge "$w" ]; then
    echo "zbm: the lock $f is held by $(cat "$f" 2>/dev/null || echo 'a run that is starting'); waited $w s, nothing was received" >&2
    exit ${LOCK_HELD_EXIT}
  fi
  n=$((n + 1)); sleep 1
done
trap 'holder; [ "$p" = "$$" ] && rm -f "$f"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
"$@"`;
}

/** The exit code of a command whose lock stayed held (EX_TEMPFAIL: try again later). */
export const LOCK_HELD_EXIT = ExitCode.lockHeld;

/** $0 of the lock script: how `zbm serve` recognises a locked receive. */
export const LOCK_ARGV0 = 'zbm-lock';

/** Characters a holder description may carry into the JSON the script writes. */
function jsonSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9 ._:/@+()-]/g, '_');
}

/** argv that runs argv on its host under the lock of dataset, waiting up to waitSeconds. */
export function lockedArgv(
  dataset: string,
  waitSeconds: number,
  what: string,
  argv: readonly string[],
  dir = DEFAULT_LOCK_DIR,
): string[] {
  const holder = jsonSafe(`${what} (zbm pid ${process.pid} on ${hostname()})`);
  return [
    'sh',
    '-c',
    lockScript(dir),
    LOCK_ARGV0,
    lockFileName(receiveLockName(dataset)),
    String(Math.max(0, Math.ceil(waitSeconds))),
    holder,
    ...argv,
  ];
}
