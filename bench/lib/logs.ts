/**
 * Reading the lab's invocation logs (`/var/log/lab/zfs.log`, `ssh.log`): one line per process the
 * wrappers started, `<epoch.ns> <pid> <argv...>`. Pure, so the counting can be unit tested.
 */

export interface LogLine {
  /** Seconds since the epoch, when the wrapper started. */
  readonly t: number;
  readonly pid: number;
  readonly argv: readonly string[];
}

export function parseLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    const words = line.split(' ').filter((w) => w !== '');
    if (words.length < 2) continue;
    const t = Number(words[0]);
    const pid = Number(words[1]);
    if (!Number.isFinite(t) || !Number.isInteger(pid)) continue;
    out.push({ t, pid, argv: words.slice(2) });
  }
  return out;
}

/**
 * Which pool a zfs call works on. In the lab VM, ssh to zbm-dest loops back to the same machine,
 * so the backup server's zfs calls land in the same log as the node's: the pool named in the
 * arguments tells them apart (rpool is the node's, main the backup server's).
 */
export type Side = 'source' | 'target' | 'other';

export function sideOf(argv: readonly string[], sourcePool = 'rpool', targetPool = 'main'): Side {
  const names = argv.map((a) => a.replace(/^['"]|['"]$/g, ''));
  const on = (pool: string) =>
    names.some((a) => a === pool || a.startsWith(`${pool}/`) || a.startsWith(`${pool}@`));
  if (on(targetPool)) return 'target';
  if (on(sourcePool)) return 'source';
  return 'other';
}

export interface Counts {
  /** Every zfs process, on both sides. */
  readonly zfs: number;
  readonly zfsSource: number;
  readonly zfsTarget: number;
  readonly zfsOther: number;
  /** Every ssh client process (connection masters, multiplexed sessions and `-O exit` alike). */
  readonly ssh: number;
  /** zfs calls per subcommand (`list`, `send`, ...), for the curious. */
  readonly zfsBySubcommand: Readonly<Record<string, number>>;
}

export function countInvocations(zfs: readonly LogLine[], ssh: readonly LogLine[]): Counts {
  let zfsSource = 0;
  let zfsTarget = 0;
  let zfsOther = 0;
  const bySub: Record<string, number> = {};
  for (const l of zfs) {
    const side = sideOf(l.argv);
    if (side === 'source') zfsSource++;
    else if (side === 'target') zfsTarget++;
    else zfsOther++;
    const sub = l.argv[0] ?? '?';
    bySub[sub] = (bySub[sub] ?? 0) + 1;
  }
  return { zfs: zfs.length, zfsSource, zfsTarget, zfsOther, ssh: ssh.length, zfsBySubcommand: bySub };
}

/** The first `zfs send` line naming dataset, and the `zfs receive` line into target after it. */
export function transferLines(
  zfs: readonly LogLine[],
  dataset: string,
  target: string,
): { send: LogLine; receive: LogLine } | null {
  const send = zfs.find((l) => l.argv[0] === 'send' && l.argv.some((a) => a.startsWith(`${dataset}@`)));
  if (!send) return null;
  const receive = zfs.find(
    (l) => l.t >= send.t - 1 && l.argv[0] === 'receive' && l.argv.some((a) => a === target),
  );
  return receive ? { send, receive } : null;
}
