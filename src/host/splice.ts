import type { ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { terminate } from './children.ts';
import { commandLabel } from './failure.ts';
import { openPipe } from './fifo.ts';
import type { Host } from './host.ts';
import { type Endpoint, PipeError, type PipeResult } from './pipe.ts';
import { childrenIo, treeIo } from './proc-io.ts';
import { type Exit, start, TailBuffer, waitExit } from './process.ts';
import { turnedAway } from './retry.ts';

export interface SpliceOptions {
  /**
   * The stream's size as the sender reports it on stderr (zfs/counted-send.ts), and its stderr
   * without that report; bytes null when it did not report.
   */
  readonly measure: (senderStderr: string) => { readonly bytes: number | null; readonly stderr: string };
  /** Called about twice a second with how far the stream has come, when a local process can tell. */
  readonly onProgress?: (bytes: number) => void;
  /** Called when the sender has exited well: the rest of its stream is on its way to the receiver. */
  readonly onStreamEnd?: () => void;
}

interface Side {
  readonly exit: Exit;
  readonly stderr: string;
}

const NOT_STARTED: Side = { exit: { code: null, signal: null }, stderr: '' };
const PROGRESS_MS = 500;

/**
 * Streams the stdout of `from` into the stdin of `to` through the kernel: the sender's stdout IS the
 * receiver's stdin (its ssh, or its `zfs receive`), so node never reads a byte of the stream, and
 * the transfer runs at the speed of zfs and ssh alone. Without --bwlimit this is how zbm moves
 * snapshots; pipe() is the path through node, for a rate limit.
 *
 * The bytes come from the sender itself (measure). Progress is read from /proc: what the local
 * sender's command wrote, or else what the local receiver read (a few KiB more: its own files);
 * between two remote hosts there is none to show.
 *
 * A connection turned away before its command started (retry.ts) starts the whole transfer again:
 * the side turned away moved no byte, so the other one either sent into nothing (a send is only a
 * read) or received an empty stream, which zfs refuses before it changes anything.
 */
export async function splice(from: Endpoint, to: Endpoint, opts: SpliceOptions): Promise<PipeResult> {
  const delays = new Map<Host, number[]>();
  for (let i = 1; ; i++) {
    const { sender, receiver, progress } = await spliceOnce(from, to, opts);
    const measured = opts.measure(sender.stderr);
    if (sender.exit.code === 0 && receiver.exit.code === 0) return { bytes: measured.bytes ?? progress };
    const away = [
      { ep: from, side: sender },
      { ep: to, side: receiver },
    ].find((s) => s.side.exit.code === 255 && !s.ep.host.isLocal && turnedAway(s.side.stderr) !== null);
    const host = away?.ep.host;
    const left = host ? (delays.get(host) ?? [...(host.connectRetry?.delays() ?? [])]) : [];
    const delay = left.shift();
    if (!away || !host || delay === undefined) {
      throw new PipeError(
        from,
        to,
        sender.exit,
        receiver.exit,
        measured.stderr,
        receiver.stderr,
        measured.bytes ?? progress,
      );
    }
    delays.set(host, left);
    const said = (turnedAway(away.side.stderr) ?? '').replace(/^ssh: /, '');
    host.connectRetry?.onRetry(
      `${host.name} turned the ssh connection away before ${commandLabel(away.ep.argv)} could start (${said}): retry ${i} of the transfer in ${(delay / 1000).toFixed(1)} s`,
    );
    await sleep(delay);
  }
}

async function spliceOnce(
  from: Endpoint,
  to: Endpoint,
  opts: SpliceOptions,
): Promise<{ sender: Side; receiver: Side; progress: number }> {
  // A local receiver reads from a real pipe (fifo.ts); a remote one reads from its sshd's pipe, and
  // its ssh client reads node's socketpair as fast.
  const fds = to.host.isLocal ? await openPipe().catch(() => null) : null;
  const receiverChild = start(to.host, to.argv, [fds ? fds.read : 'pipe', 'ignore', 'pipe']);
  const receiverErr = new TailBuffer();
  receiverChild.stderr?.on('data', (c: Buffer) => receiverErr.push(c));
  const socket = receiverChild.stdin;
  socket?.on('error', () => {});
  const input = fds ? fds.write : socket;
  let senderChild: ChildProcess | undefined;
  const senderErr = new TailBuffer();
  if (input !== null) {
    // Its stdin stays open and empty while zbm lives: the sender's way to know that zbm is gone
    // (zfs/counted-send.ts).
    senderChild = start(from.host, from.argv, ['pipe', input, 'pipe']);
    senderChild.stdin?.on('error', () => {});
    senderChild.stderr?.on('data', (c: Buffer) => senderErr.push(c));
  }
  // Our copies of the stream's ends closed (a socket's not shut down: that would end the stream for
  // the sender too), so that the receiver sees the end of the stream when the sender exits.
  if (fds) {
    closeSync(fds.read);
    closeSync(fds.write);
  }
  socket?.destroy();

  let progress = 0;
  const measureFrom = (): number | null => {
    // The sender is a wrapper (zfs/counted-send.ts): its command's writes, not its own lines.
    if (from.host.isLocal && senderChild?.pid !== undefined) return childrenIo(senderChild.pid).wchar;
    if (to.host.isLocal && receiverChild.pid !== undefined) return treeIo(receiverChild.pid)?.rchar ?? null;
    return null;
  };
  const poll = opts.onProgress
    ? setInterval(() => {
        const n = measureFrom();
        if (n !== null && n > progress) {
          progress = n;
          opts.onProgress?.(n);
        }
      }, PROGRESS_MS)
    : undefined;

  const senderDone: Promise<Side> = senderChild
    ? waitExit(senderChild).then((exit) => {
        if (exit.code === 0) opts.onStreamEnd?.();
        else terminate(receiverChild);
        return { exit, stderr: senderErr.text };
      })
    : Promise.resolve(NOT_STARTED);
  const receiverDone: Promise<Side> = waitExit(receiverChild).then((exit) => {
    if (exit.code !== 0 && senderChild) terminate(senderChild);
    return { exit, stderr: receiverErr.text };
  });
  const [sender, receiver] = await Promise.all([senderDone, receiverDone]);
  if (poll) clearInterval(poll);
  return { sender, receiver, progress };
}
