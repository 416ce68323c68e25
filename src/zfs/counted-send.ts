/**
 * A `zfs send` that says how many bytes its stream had, so that the stream can go from zfs straight
 * into ssh or `zfs receive` without passing through node to be counted.
 *
 * zfs writes the stream from the kernel, in its own process, so the kernel counts it in that
 * process's `wchar` (/proc/<pid>/io); a reaped child's counts are added to its parent's. The shell
 * below runs the send as its child, reads its own /proc/$$/io before and after (a builtin read: no
 * other process, no write; before, because what started the shell may have written as the same
 * process before its exec), and prints the difference on stderr as its last line. What zfs itself
 * wrote on stderr is counted in wchar too: the client subtracts what came between the marker line
 * and the total, so the count is the stream's, exact, whatever ssh or zfs said around it. Whatever
 * else the send's process writes counts too: a wrapper script in zfs's place that logs a line
 * before its exec would add that line (the lab's logs from a child it never waits for).
 *
 * zbm no longer stands in the stream, so its death would not stop the send: the script's stdin is
 * a pipe from zbm (through ssh for a remote send) on which nothing is ever written, and its other
 * child waits for that pipe's end of file, when zbm is gone however it died, to stop the send
 * (that child writes nothing). The receiver then sees the stream cut and keeps its partial state,
 * as when zbm relayed the stream and died with it.
 */

/** $0 of the script: how messages name it, and how `zbm serve --send-only` recognises it. */
export const SEND_ARGV0 = 'zbm-send';

const MARKER = 'zbm-send: start';
const TOTAL = 'zbm-send: wchar';

const SCRIPT = `w=0; while read -r k v; do [ "$k" = wchar: ] && w=$v; done </proc/$$/io
printf '%s\\n' '${MARKER}' >&2
exec 3<&0
"$@" & p=$!
{ read -r _ <&3; kill $p 2>/dev/null; } & g=$!
exec 3<&-
wait $p; rc=$?
kill $g 2>/dev/null
while read -r k v; do [ "$k" = wchar: ] && printf '%s %s\\n' '${TOTAL}' $((v - w)) >&2; done </proc/$$/io
exit $rc`;

/** argv that runs the send argv and reports its stream's size (streamBytes). */
export function countedSendArgv(send: readonly string[]): string[] {
  return ['sh', '-c', SCRIPT, SEND_ARGV0, ...send];
}

export function isCountedSend(argv: readonly string[]): boolean {
  return argv[0] === 'sh' && argv[1] === '-c' && argv[3] === SEND_ARGV0;
}

export interface CountedStderr {
  /** The stream's bytes; null when the total is missing (the shell was killed, or stderr cut). */
  readonly bytes: number | null;
  /** stderr without the script's own two lines: what zfs, ssh and the remote shell said. */
  readonly stderr: string;
}

/** Reads the total from a counted send's stderr (all of it, as received). */
export function streamBytes(stderr: string): CountedStderr {
  const start = stderr.indexOf(`${MARKER}\n`);
  const totalAt = stderr.lastIndexOf(`${TOTAL} `);
  const total = totalAt < 0 ? null : /^(\d+)\n/.exec(stderr.slice(totalAt + TOTAL.length + 1));
  const cleaned = (s: string) => s.replace(`${MARKER}\n`, '');
  if (start < 0 || totalAt < start || !total) return { bytes: null, stderr: cleaned(stderr) };
  const between = stderr.slice(start + MARKER.length + 1, totalAt);
  const ownWrites = Buffer.byteLength(`${MARKER}\n`) + Buffer.byteLength(between);
  const rest = stderr.slice(totalAt + TOTAL.length + 1 + (total[0]?.length ?? 0));
  return {
    bytes: Number(total[1]) - ownWrites,
    stderr: stderr.slice(0, start) + between + rest,
  };
}
