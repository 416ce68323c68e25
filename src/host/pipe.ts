import { type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ZbmError } from '../errors.ts';
import { terminate } from './children.ts';
import { describeFailure } from './failure.ts';
import type { Host } from './host.ts';
import { type Exit, failureOf, start, TailBuffer, waitExit } from './process.ts';
import type { RateLimiter } from './rate.ts';

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
 * Copies out into into through meter. A receiver that stops reading before the sender is done (it
 * has what it needs, like `tar -x` at the end of an archive, or it failed) must not make the sender
 * fail on a broken pipe of ours (an ssh sender then dies with 255): the rest is drained, and the
 * two exit codes alone tell whether the transfer worked. A failed receiver stops the sender anyway.
 */
async function relay(out: Readable, meter: Meter, into: Writable): Promise<void> {
  out.pipe(meter);
  try {
    await pipeline(meter, into);
  } catch {
    out.unpipe(meter);
    out.resume();
  }
}

/**
 * Streams the stdout of `from` into the stdin of `to`, each on its own host (local→remote,
 * remote→local, or remote→remote through this machine). The stream never sits in memory beyond
 * the pipe buffers. When one side fails the other is stopped, and the error carries both sides'
 * stderr.
 */
export async function pipe(from: Endpoint, to: Endpoint, opts: PipeOptions = {}): Promise<PipeResult> {
  const sender = start(from.host, from.argv, ['ignore', 'pipe', 'pipe']);
  const receiver = start(to.host, to.argv, ['pipe', 'ignore', 'pipe']);
  const fromErr = new TailBuffer();
  const toErr = new TailBuffer();
  sender.stderr?.on('data', (c: Buffer) => fromErr.push(c));
  receiver.stderr?.on('data', (c: Buffer) => toErr.push(c));

  // The sender's last output may sit in the pipe well after it exited, when the limiter is slow.
  const fromExit = waitExit(sender, true);
  const toExit = waitExit(receiver);
  // Whichever side ends badly first takes the other one down, so neither waits forever.
  void fromExit.then((e) => {
    if (e.code !== 0) terminate(receiver);
  });
  void toExit.then((e) => {
    if (e.code !== 0) terminate(sender);
  });

  const meter = new Meter(opts);
  const flow = (
    sender.stdout && receiver.stdin ? relay(sender.stdout, meter, receiver.stdin) : Promise.resolve()
  ).then(() => opts.onStreamEnd?.());

  const [fe, te] = await Promise.all([fromExit, toExit, flow]);
  if (fe.code !== 0 || te.code !== 0) {
    throw new PipeError(from, to, fe, te, fromErr.text, toErr.text, meter.bytes);
  }
  return { bytes: meter.bytes };
}
