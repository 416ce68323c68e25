import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import type { Logger } from '../cli/log.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run as runCommand } from '../host/process.ts';
import { acquire, describeHolder, receiveLockName } from '../lock/lock.ts';
import { LOCK_HELD_EXIT } from '../lock/remote.ts';
import { authorize, insideRoot } from '../serve/policy.ts';
import { splitShellWords } from '../serve/words.ts';

export interface ServeOptions {
  readonly root: string;
  readonly metadataDir?: string;
  readonly sendOnly?: boolean;
}

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
      : authorize(argv, { root: opts.root, metadataDir: opts.metadataDir ?? null, sendOnly: opts.sendOnly });
  if (decision.kind === 'refuse') {
    const shown = JSON.stringify(line.length > 300 ? `${line.slice(0, 300)}...` : line);
    log.error(`zbm serve on ${opts.root}: refused ${shown}: ${decision.reason}`);
    return ExitCode.failure;
  }
  if (decision.kind === 'write') return writeNewFiles(decision.files, log);
  if (decision.resumeToken !== undefined) {
    const resumes = await tokenSnapshot(decision.resumeToken);
    if (resumes === null || !insideRoot(resumes, opts.root)) {
      log.error(
        `zbm serve on ${opts.root}: refused zfs send -t: its token resumes ${resumes ?? 'nothing zfs can read'}, not a snapshot under ${opts.root}`,
      );
      return ExitCode.failure;
    }
  }
  if (!decision.lock) return run(decision.argv, log);
  const { dataset, waitSeconds, holder } = decision.lock;
  const acquired = await acquire(receiveLockName(dataset), `${holder} through zbm serve`, waitSeconds * 1000);
  if ('heldBy' in acquired) {
    log.error(
      `zbm serve on ${opts.root}: ${dataset} is locked by ${describeHolder(acquired.heldBy)}; waited ${waitSeconds} s, nothing was received`,
    );
    return LOCK_HELD_EXIT;
  }
  try {
    return await run(decision.argv, log);
  } finally {
    acquired.lock.release();
  }
}

function run(argv: readonly string[], log: Logger): Promise<number> {
  const [file, ...args] = argv;
  // The stream goes from ssh straight into zfs: stdio is handed over, not copied through node.
  const child = spawn(file ?? 'false', args, { stdio: 'inherit' });
  return new Promise((resolve) => {
    child.on('error', (err) => {
      log.error(`zbm serve: cannot run ${file}: ${errorMessage(err)}`);
      resolve(ExitCode.failure);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

/**
 * Writes stdin to new files, each atomically, never over an existing one: what a node wrote once (a
 * backup's config) it cannot replace later. stdin is read whole and its size checked first, so a
 * cut connection writes nothing.
 */
async function writeNewFiles(
  files: readonly { readonly path: string; readonly bytes: number | null }[],
  log: Logger,
): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = Buffer.concat(chunks);
  const expected = files.reduce((n, f) => n + (f.bytes ?? input.length), 0);
  if (expected !== input.length) {
    log.error(`zbm serve: ${input.length} bytes on stdin, ${expected} expected: nothing written`);
    return ExitCode.failure;
  }
  let offset = 0;
  for (const f of files) {
    const end = offset + (f.bytes ?? input.length);
    if (!writeNewFile(f.path, input.subarray(offset, end), log)) return ExitCode.failure;
    offset = end;
  }
  return ExitCode.ok;
}

function writeNewFile(path: string, content: Buffer, log: Logger): boolean {
  const tmp = `${path}.tmp.${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
    return true;
  } catch (err) {
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    log.error(
      exists
        ? `zbm serve: ${path} exists: configs are append-only through zbm serve`
        : `zbm serve: writing ${path}: ${errorMessage(err)}`,
    );
    return false;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone or never made.
    }
  }
}

/** The snapshot a resume token resumes (its `toname`), as zfs itself decodes it; null if it cannot. */
async function tokenSnapshot(token: string): Promise<string | null> {
  try {
    const { stdout, stderr } = await runCommand(new LocalHost(), ['zfs', 'send', '-n', '-v', '-t', token]);
    return /^\s*toname = (.+)$/m.exec(`${stdout}\n${stderr}`)?.[1] ?? null;
  } catch {
    return null;
  }
}
