/**
 * A receive through zbm serve: under the target's lock when the client asks, the stream's first
 * record read and judged (stream.ts) before zfs sees a byte, then the exact bytes handed to zfs.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { exitStatus, startWithStdio } from '../host/process.ts';
import { acquire, describeHolder, receiveLockName } from '../lock/lock.ts';
import { LOCK_HELD_EXIT } from '../lock/remote.ts';
import { splitSnapshot } from '../zfs/names.ts';
import { Zfs } from '../zfs/zfs.ts';
import type { Decision } from './policy.ts';
import type { ServeLog } from './run.ts';
import {
  BEGIN_RECORD_BYTES,
  parseBeginRecord,
  receiveCommand,
  refuseIncoming,
  refuseNewChain,
} from './stream.ts';

/** What a receive is judged by: serve's root, and the name rules of the snapshots a node may send. */
export interface ReceiveRules {
  readonly root: string;
  readonly prefix: string;
  readonly clockSkew: number;
}

type ReceiveDecision = Extract<Decision, { kind: 'receive' }>;

/** A receive, under the target's lock when the client asked for it (the lock prune takes). */
export async function locked(decision: ReceiveDecision, opts: ReceiveRules, log: ServeLog): Promise<number> {
  if (!decision.lock) return receive(decision, opts, log);
  const { dataset, waitSeconds, holder } = decision.lock;
  const acquired = await acquire(receiveLockName(dataset), `${holder} through zbm serve`, waitSeconds * 1000);
  if ('heldBy' in acquired) {
    log.error(
      `zbm serve on ${opts.root}: ${dataset} is locked by ${describeHolder(acquired.heldBy)}; waited ${waitSeconds} s, nothing was received`,
    );
    return LOCK_HELD_EXIT;
  }
  try {
    return await receive(decision, opts, log);
  } finally {
    acquired.lock.release();
  }
}

/**
 * Reads the stream's first record before zfs does, refuses anything but one zbm snapshot that
 * continues the target, then hands zfs the exact bytes: the record it read, and the rest of
 * stdin as it arrives (never the whole stream in memory).
 */
async function receive(decision: ReceiveDecision, opts: ReceiveRules, log: ServeLog): Promise<number> {
  const { target } = decision;
  const refused = (why: string) => {
    log.error(`zbm serve on ${opts.root}: refused the stream into ${target}: ${why}; nothing was received`);
    return ExitCode.failure;
  };
  const head = await readHead(process.stdin, BEGIN_RECORD_BYTES);
  const parsed = parseBeginRecord(head);
  if ('error' in parsed) return refused(parsed.error);
  // A snapshot received under another name is judged by that name, the one it will have here.
  const begin = decision.as === undefined ? parsed : { ...parsed, toname: `${target}@${decision.as}` };
  const origin = decision.origin;
  // policy.ts let only a snapshot name through as the origin.
  const originDataset = origin === undefined ? undefined : splitSnapshot(origin).dataset;
  let listing: Awaited<ReturnType<Zfs['list']>>;
  try {
    const zfs = new Zfs(new LocalHost());
    // A root that does not exist lists as nothing.
    const roots = originDataset === undefined ? [target] : [target, originDataset];
    listing = (await Promise.all(roots.map((d) => zfs.list({ roots: [d], depth: 1 })))).flat();
  } catch (err) {
    return refused(`cannot list ${target}: ${errorMessage(err)}`);
  }
  const state = listing.find((d) => d.name === target) ?? null;
  const rules = { prefix: opts.prefix, now: Math.floor(Date.now() / 1000), skew: opts.clockSkew };
  const why =
    origin === undefined
      ? refuseIncoming(begin, target, state, rules)
      : refuseNewChain(
          begin,
          target,
          state !== null,
          origin,
          listing.find((d) => d.name === originDataset) ?? null,
          rules,
        );
  if (why !== null) return refused(why);
  const argv = receiveCommand(
    decision.as === undefined ? target : `${target}@${decision.as}`,
    decision.flags,
    begin.type ?? 'volume',
  );
  const child = startWithStdio(argv[0] ?? 'zfs', argv.slice(1), 'pipe');
  const exited = exitStatus(child).then((status) => {
    if ('code' in status) return status.code;
    log.error(`zbm serve: cannot run zfs receive: ${errorMessage(status.spawnError)}`);
    return ExitCode.failure;
  });
  const { stdin } = child;
  if (stdin) {
    stdin.write(head);
    // A receive that stops early (an error) closes its end: stop reading the client then.
    pipeline(process.stdin, stdin).catch(() => process.stdin.destroy());
  }
  return exited;
}

/** At least size bytes from the start of input (less only when it ended first); input is left paused. */
function readHead(input: Readable, size: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = () => {
      input.pause();
      input.off('data', onData);
      input.off('end', done);
      input.off('error', done);
      resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= size) done();
    };
    input.on('data', onData);
    input.once('end', done);
    input.once('error', done);
  });
}
