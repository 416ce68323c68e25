import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import type { Logger } from '../cli/log.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { authorize } from '../serve/policy.ts';
import { splitShellWords } from '../serve/words.ts';

export interface ServeOptions {
  readonly root: string;
  readonly metadataDir?: string;
}

/**
 * `zbm serve`: the forced command of a Proxmox node's ssh key on the backup server. It runs the one
 * command the client asked for (SSH_ORIGINAL_COMMAND) if the policy allows it, without a shell.
 */
export async function serve(opts: ServeOptions, log: Logger): Promise<number> {
  const line = process.env.SSH_ORIGINAL_COMMAND;
  if (line === undefined) {
    log.error(
      'zbm serve answers the commands of an ssh client: make it the forced command of the node\'s key in authorized_keys (command="zbm serve --root ...",restrict ssh-ed25519 ...), see docs/serve.md',
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
      : authorize(argv, { root: opts.root, metadataDir: opts.metadataDir ?? null });
  if (decision.kind === 'refuse') {
    const shown = JSON.stringify(line.length > 300 ? `${line.slice(0, 300)}...` : line);
    log.error(`zbm serve on ${opts.root}: refused ${shown}: ${decision.reason}`);
    return ExitCode.failure;
  }
  if (decision.kind === 'write') return writeNewFile(decision.path, log);
  const [file, ...args] = decision.argv;
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
 * Writes stdin to a new file, atomically, and never over an existing one: what a node wrote once
 * (a backup's config) it cannot replace later.
 */
async function writeNewFile(path: string, log: Logger): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const tmp = `${path}.tmp.${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, Buffer.concat(chunks));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
    return ExitCode.ok;
  } catch (err) {
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    log.error(
      exists
        ? `zbm serve: ${path} exists: configs are append-only through zbm serve`
        : `zbm serve: writing ${path}: ${errorMessage(err)}`,
    );
    return ExitCode.failure;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone or never made.
    }
  }
}
