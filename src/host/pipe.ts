import type { ChildProcess } from 'node:child_process';
import { finished, type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { ZbmError } from '../errors.ts';
import { terminate } from './children.ts';
import { describeFailure } from './failure.ts';
import type { Host } from './host.ts';
import { type Exit, failureOf, start, TailBuffer, waitExit } from './process.ts';
import type { RateLimiter } from './rate.ts';
import { withConnectRetry } from './retry.ts';

export interface Endpoint {
  readonly host: Host;
  readonly argv: readonly string[];
}

export interface PipeOptions {
  readonly limiter?: RateLimiter;
  /** Called with the running total of bytes that went through the pipe. */
  readonly onProgress?: (bytes: number) => void;
  /** Called when the stream has passed, before the receiver has exited (it may still be committing). */
  readonly onStreamEnd?: () => void;
}

export interface PipeResult {
  readonly bytes: number;
}

export class PipeError extends ZbmError {
  override name = 'PipeError';
  constructor(
    readonly from: Endpoint,
    readonly to: Endpoint,
    readonly fromExit: Exit,
    readonly toExit: Exit,
    readonly fromStderr: string,
    readonly toStderr: string,
    readonly bytes: number,
  ) {
    // The side that failed on its own comes first: the other one was usually stopped because of it.
    const sides = [
      { role: 'receiver', ep: to, exit: toExit, stderr: toStderr },
      { role: 'sender', ep: from, exit: fromExit, stderr: fromStderr },
    ]
      .filter((s) => s.exit.code !== 0)
      .sort((a, b) => Number(a.exit.signal !== null) - Number(b.exit.signal !== null));
    super(
      `transfer from ${from.host.name} to ${to.host.name} failed after ${bytes} bytes: ` +
        sides
          .map((s) => `${s.role}: ${describeFailure(failureOf(s.ep.host, s.ep.argv, s.exit, s.stderr))}`)
          .join('; '),
    );
  }
}

/** Counts bytes (and waits on the rate limiter) as the stream passes; holds one chunk at most. */
class Meter extends Transform {
  bytes = 0;
  constructor(private readonly opts: PipeOptions) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.opts.onProgress?.(this.bytes);
    if (!this.opts.limiter) {
      done(null, chunk);
      return;
    }
    this.opts.limiter.take(chunk.length).then(
      () => done(null, chunk),
      (err: Error) => done(err),
    );
  }
}

/**
 * Streams the stdout of `from` into the stdin of `to`, each on its own host (local→remote,
 * remote→local, or remote→remote through this machine). The stream never sits in memory beyond
 * the pipe buffers. When one side fails the other is stopped, and the error carries both sides'
 * stderr.
 *
 * Each side on its own is started again when its ssh connection was turned away before its command
 * could start (retry.ts), as long as no byte has passed through it: the other side waits meanwhile,
 * its stream not ended. A side that failed for good stops the other one and its retries.
 *
 * A receiver that stops reading before the sender is done (it has what it needs, like `tar -x` at
 * the end of an archive, or it failed) must not make the sender fail on a broken pipe of ours (an
 * ssh sender then dies with 255): the rest is drained, and the two exit codes alone tell whether
 * the transfer worked.
 */
export async function pipe(from: Endpoint, to: Endpoint, opts: PipeOptions = {}): Promise<PipeResult> {
  const meter = new Meter(opts);
  const stop = new AbortController();
  let sender: ChildProcess | undefined;
  let senderOut: Readable | undefined;
  let senderBytes = 0;
  let receiver: ChildProcess | undefined;
  let receiverIn: Writable | undefined;
  let draining = false;
  let streamEnded = (): void => {};
  const flow = new Promise<void>((resolve) => {
    streamEnded = resolve;
  }).then(() => opts.onStreamEnd?.());

  // The rest of the sender's output goes nowhere, unmetered, so that it is never blocked.
  const drain = () => {
    if (draining) return;
    draining = true;
    senderOut?.unpipe(meter);
    senderOut?.resume();
    streamEnded();
  };

  // The limiter failing cuts the stream: the receiver sees it end early, and its exit code says so.
  meter.on('error', () => {
    drain();
    receiverIn?.destroy();
  });

  const fromExit = withConnectRetry(
    from.host,
    from.argv,
    async () => {
      const child = start(from.host, from.argv, ['ignore', 'pipe', 'pipe']);
      const err = new TailBuffer();
      child.stderr?.on('data', (c: Buffer) => err.push(c));
      sender = child;
      senderOut = child.stdout ?? undefined;
      senderBytes = 0;
      senderOut?.on('data', (c: Buffer) => {
        senderBytes += c.length;
      });
      // Not ended with this try's output: a retry may follow.
      if (draining) senderOut?.resume();
      else senderOut?.pipe(meter, { end: false });
      // The sender's last output may sit in the pipe well after it exited, when the limiter is slow.
      const exit = await waitExit(child, true);
      return { exit, stderr: err.text };
    },
    { passed: () => senderBytes > 0 || senderOut?.readableEnded === false, signal: stop.signal },
  ).then((last) => {
    const out = senderOut;
    if (out && !out.readableEnded) finished(out, () => meter.end());
    else meter.end();
    return last;
  });

  const toExit = withConnectRetry(
    to.host,
    to.argv,
    async () => {
      const child = start(to.host, to.argv, ['pipe', 'ignore', 'pipe']);
      const err = new TailBuffer();
      child.stderr?.on('data', (c: Buffer) => err.push(c));
      if (receiverIn) meter.unpipe(receiverIn);
      receiver = child;
      const into = child.stdin ?? undefined;
      receiverIn = into;
      if (into) {
        // A broken pipe once bytes have passed: this try is the last, its reader is gone.
        into.on('error', () => {
          if (into === receiverIn && meter.bytes > 0) drain();
        });
        into.on('finish', () => {
          if (into === receiverIn) streamEnded();
        });
        if (draining) into.end();
        else if (meter.readableEnded) into.end();
        else meter.pipe(into);
      } else {
        drain();
      }
      const exit = await waitExit(child);
      return { exit, stderr: err.text };
    },
    { passed: () => meter.bytes > 0, signal: stop.signal },
  );

  // Whichever side ends badly for good takes the other one down, so neither waits forever.
  void fromExit.then((last) => {
    if (last.exit.code === 0) return;
    stop.abort();
    if (receiver) terminate(receiver);
  });
  void toExit.then((last) => {
    if (last.exit.code !== 0) {
      stop.abort();
      if (sender) terminate(sender);
    }
    // Node closes a child's stdin when it exits: what the sender still writes goes nowhere.
    if (!receiverIn?.writableFinished) drain();
  });

  const [fe, te] = await Promise.all([fromExit, toExit, flow]);
  if (fe.exit.code !== 0 || te.exit.code !== 0) {
    throw new PipeError(from, to, fe.exit, te.exit, fe.stderr, te.stderr, meter.bytes);
  }
  return { bytes: meter.bytes };
}
