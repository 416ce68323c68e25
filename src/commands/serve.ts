import { spawn } from 'node:child_process';
import {
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run as runCommand } from '../host/process.ts';
import { acquire, describeHolder, receiveLockName } from '../lock/lock.ts';
import { LOCK_HELD_EXIT } from '../lock/remote.ts';
import { METADATA_FILE_LIMIT } from '../metadata/store.ts';
import { authorize, type Decision, insideRoot } from '../serve/policy.ts';
import {
  BEGIN_RECORD_BYTES,
  parseBeginRecord,
  receiveCommand,
  refuseIncoming,
  refuseNewChain,
} from '../serve/stream.ts';
import { parseTokenContents, refuseToken } from '../serve/token.ts';
import { splitShellWords } from '../serve/words.ts';
import { splitSnapshot } from '../zfs/names.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ServeOptions = CommandOptions<'serve'>;

/**
 * `zbm serve`: the forced command of a Proxmox node's ssh key on the backup server. It runs the one
 * command the client asked for (SSH_ORIGINAL_COMMAND) if the policy allows it, without a shell.
 */
export async function serve(opts: ServeOptions, log: Logger): Promise<number> {
  const line = process.env.SSH_ORIGINAL_COMMAND;
  if (line === undefined) {
    log.error(
      'zbm serve answers the commands of an ssh client: make it the forced command of the node\'s key in authorized_keys (command="zbm serve --root ...",restrict ssh-ed25519 ...), see /usr/share/doc/zbm/docs/serve.md',
    );
    return ExitCode.usage;
  }
  const argv = splitShellWords(line);
  const decision =
    argv === null
      ? {
          kind: 'refuse' as const,
          reason: 'not a command line zbm sends (only plain and single-quoted words)',
        }
      : authorize(argv, {
          root: opts.root,
          metadataDir: opts.metadataDir ?? null,
          sendOnly: opts.sendOnly,
          tag: opts.tag,
        });
  if (decision.kind === 'refuse') {
    const shown = JSON.stringify(line.length > 300 ? `${line.slice(0, 300)}...` : line);
    log.error(`zbm serve on ${opts.root}: refused ${shown}: ${decision.reason}`);
    return ExitCode.failure;
  }
  if (decision.kind === 'write') return writeNewFiles(decision, opts, log);
  if (decision.kind === 'receive') return locked(decision, opts, log);
  if (decision.resumeToken !== undefined) {
    const why = await refuseResume(decision.resumeToken, opts.root);
    if (why !== null) {
      log.error(`zbm serve on ${opts.root}: refused zfs send -t: ${why}`);
      return ExitCode.failure;
    }
  }
  return run(decision.argv, log, decision.input);
}

type ReceiveDecision = Extract<Decision, { kind: 'receive' }>;

/** A receive, under the target's lock when the client asked for it (the lock prune takes). */
async function locked(decision: ReceiveDecision, opts: ServeOptions, log: Logger): Promise<number> {
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
async function receive(decision: ReceiveDecision, opts: ServeOptions, log: Logger): Promise<number> {
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
  const child = spawn(argv[0] ?? 'zfs', argv.slice(1), { stdio: ['pipe', 'inherit', 'inherit'] });
  const exited = new Promise<number>((resolve) => {
    child.on('error', (err) => {
      log.error(`zbm serve: cannot run zfs receive: ${errorMessage(err)}`);
      resolve(ExitCode.failure);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
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

function run(argv: readonly string[], log: Logger, input?: string): Promise<number> {
  const [file, ...args] = argv;
  // The stream goes from ssh straight into zfs: stdio is handed over, not copied through node.
  // With an input of serve's own, the client's stdin is drained unread instead.
  const child = spawn(file ?? 'false', args, {
    stdio: [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit'],
  });
  if (input !== undefined) {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
    process.stdin.resume();
  }
  return new Promise((resolve) => {
    child.on('error', (err) => {
      log.error(`zbm serve: cannot run ${file}: ${errorMessage(err)}`);
      resolve(ExitCode.failure);
    });
    child.on('exit', (code, signal) => {
      if (input !== undefined) process.stdin.destroy();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

type WriteDecision = Extract<Decision, { kind: 'write' }>;

/**
 * Writes stdin to new files, all or none, never over an existing one: what a node wrote once (a
 * backup's config) it cannot replace later, nor can it write a config ahead for a backup that has
 * not arrived. stdin is streamed into temporary files beside their targets, each bounded; only
 * when all of it arrived, with the sizes announced, are they linked into place.
 */
async function writeNewFiles(decision: WriteDecision, opts: ServeOptions, log: Logger): Promise<number> {
  const fail = (why: string) => {
    log.error(`zbm serve on ${opts.root}: ${why}; nothing written`);
    return ExitCode.failure;
  };
  let shorts: Set<string>;
  try {
    const listing = await new Zfs(new LocalHost()).list({ roots: [opts.root] });
    shorts = new Set(listing.flatMap((d) => d.snapshots.map((s) => s.short)));
  } catch (err) {
    return fail(`cannot list ${opts.root}: ${errorMessage(err)}`);
  }
  const early = decision.files.find((f) => !shorts.has(f.snapshot));
  if (early)
    return fail(
      `${early.path}: no snapshot ${early.snapshot} under ${opts.root}: a config is written only for a backup that arrived`,
    );
  // Guest folders this call made: removed again when nothing is written, so a refusal leaves the
  // directory as it was.
  const made: string[] = [];
  const temps: { fd: number; tmp: string; path: string; limit: number; exact: boolean; written: number }[] =
    [];
  const linked: string[] = [];
  let done = false;
  try {
    for (const f of decision.files) {
      const problem = placeProblem(f.path, opts.metadataDir ?? '', made);
      if (problem) return fail(problem);
    }
    for (const f of decision.files) {
      const tmp = `${f.path}.tmp.${process.pid}`;
      temps.push({
        fd: openSync(tmp, 'wx', 0o600),
        tmp,
        path: f.path,
        limit: f.bytes ?? METADATA_FILE_LIMIT,
        exact: f.bytes !== null,
        written: 0,
      });
    }
    const problem = await streamInto(process.stdin, temps);
    if (problem) return fail(problem);
    for (const t of temps) fsyncSync(t.fd);
    for (const t of temps) {
      try {
        linkSync(t.tmp, t.path);
      } catch (err) {
        return fail(
          (err as NodeJS.ErrnoException).code === 'EEXIST'
            ? `${t.path} exists: configs are append-only through zbm serve`
            : `writing ${t.path}: ${errorMessage(err)}`,
        );
      }
      linked.push(t.path);
    }
    done = true;
    return ExitCode.ok;
  } catch (err) {
    return fail(`writing the configs: ${errorMessage(err)}`);
  } finally {
    for (const t of temps) {
      closeSync(t.fd);
      rmSync(t.tmp, { force: true });
    }
    if (!done) {
      // All or none: what this call linked before one file failed goes again (it was new).
      for (const path of linked) rmSync(path, { force: true });
      for (const folder of made.reverse()) {
        try {
          rmdirSync(folder);
        } catch {
          // Not empty: another writer's file arrived meanwhile.
        }
      }
    }
  }
}

/**
 * Why path cannot be written: its guest folder is not a plain directory of the metadata
 * directory (a symlink would lead the write elsewhere), or the file exists. Makes the folder (and
 * the metadata directory itself on the first write), adding what it made to made.
 */
function placeProblem(path: string, metadataDir: string, made: string[]): string | null {
  const folder = dirname(path);
  try {
    const first = mkdirSync(metadataDir, { recursive: true, mode: 0o700 });
    if (first !== undefined) made.push(metadataDir);
    try {
      mkdirSync(folder, { mode: 0o700 });
      made.push(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!lstatSync(folder).isDirectory()) return `${folder} is not a directory (a symlink is never followed)`;
  } catch (err) {
    return `${folder}: ${errorMessage(err)}`;
  }
  try {
    lstatSync(path);
    return `${path} exists: configs are append-only through zbm serve`;
  } catch {
    return null;
  }
}

/** Spreads input over the files in order, each up to its limit; the reason when the sizes do not match. */
async function streamInto(
  input: Readable,
  files: { fd: number; path: string; limit: number; exact: boolean; written: number }[],
): Promise<string | null> {
  let i = 0;
  for await (const chunk of input) {
    let data = chunk as Buffer;
    while (data.length > 0) {
      const f = files[i];
      if (!f) return 'more bytes on stdin than the files announced';
      const room = f.limit - f.written;
      if (room === 0) {
        if (!f.exact) return `${f.path}: more than ${METADATA_FILE_LIMIT} bytes, more than a config may have`;
        i++;
        continue;
      }
      const part = data.subarray(0, room);
      writeSync(f.fd, part);
      f.written += part.length;
      data = data.subarray(part.length);
    }
  }
  const short = files.find((f) => f.exact && f.written !== f.limit);
  return short ? `${short.path}: ${short.written} bytes on stdin, ${short.limit} announced` : null;
}

/**
 * Why the snapshot a resume token would send is not one of the root's: zfs decodes the token (`zfs
 * send -n -v -t`), serve reads the guid of the snapshot it names. Null when it may be sent.
 */
async function refuseResume(token: string, root: string): Promise<string | null> {
  const host = new LocalHost();
  let contents: ReturnType<typeof parseTokenContents>;
  try {
    const { stdout, stderr } = await runCommand(host, ['zfs', 'send', '-n', '-v', '-t', token]);
    contents = parseTokenContents(`${stdout}\n${stderr}`);
  } catch (err) {
    return `zfs cannot read its token: ${errorMessage(err)}`;
  }
  if ('error' in contents) return contents.error;
  if (!insideRoot(contents.toname, root)) return refuseToken(contents, root, null);
  const [guid] = await new Zfs(host).get(['guid'], [contents.toname]).catch(() => []);
  return refuseToken(contents, root, guid?.value ?? null);
}
