import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { terminate, track } from './children.ts';
import { CommandError, type Failure } from './failure.ts';
import type { Host } from './host.ts';
import { withConnectRetry } from './retry.ts';

/** At most this much of a child's stderr is kept: enough for any error message, bounded memory. */
const STDERR_LIMIT = 64 * 1024;

export interface RunOptions {
  /** Written to the command's stdin, which is closed afterwards. */
  readonly input?: string;
  /** The command is stopped and reported as failed when it runs longer. */
  readonly timeoutMs?: number;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

// ZBM_TRACE=1: every command's start (seconds since zbm started), duration, host and argv on
// stderr, to find where a run's time goes (docs/development.md, "Where a run's time goes").
const TRACE = process.env.ZBM_TRACE === '1';

function traced(child: ChildProcess, host: Host, argv: readonly string[]): ChildProcess {
  const begin = performance.now();
  child.once('exit', () => {
    const end = performance.now();
    // zbm's own `sh -c` wrappers by their name and arguments: their script's text says nothing.
    const shown = argv[0] === 'sh' && argv[1] === '-c' && argv.length > 3 ? argv.slice(3) : argv;
    process.stderr.write(
      `trace: +${(begin / 1000).toFixed(3)}s ${((end - begin) / 1000).toFixed(3)}s ${host.name}: ${shown.join(' ')}\n`,
    );
  });
  return child;
}

export function start(host: Host, argv: readonly string[], stdio: StdioOptions): ChildProcess {
  const { file, args } = host.invocation(argv);
  // Its own process group, so that stopping it also stops whatever it started (sh -c pipelines).
  const child = track(spawn(file, [...args], { stdio, detached: true }));
  return TRACE ? traced(child, host, argv) : child;
}

/**
 * A local child whose stdout and stderr are zbm's own, and its stdin too unless 'pipe' (zbm serve
 * hands the ssh client's streams to zfs, not copying them through node). Unlike start(), it stays
 * in zbm's process group and is not tracked: zbm's signal handler has always left serve's command
 * to end with its streams, and tracking it would change what a signal to serve does.
 */
export function startWithStdio(
  file: string,
  args: readonly string[],
  stdin: 'inherit' | 'pipe',
): ChildProcess {
  return spawn(file, [...args], { stdio: [stdin, 'inherit', 'inherit'] });
}

/** How a child ended, as a shell reports it (128 + the signal's number), or why it never started. */
export function exitStatus(
  child: ChildProcess,
): Promise<{ readonly code: number } | { readonly spawnError: Error }> {
  return new Promise((resolve) => {
    child.on('error', (spawnError) => resolve({ spawnError }));
    child.on('exit', (code, signal) =>
      resolve({ code: code ?? 128 + (signal ? constants.signals[signal] : 0) }),
    );
  });
}

/** Keeps the tail of a stream's text, up to limit characters. */
export class TailBuffer {
  #text = '';
  constructor(private readonly limit = STDERR_LIMIT) {}
  push(chunk: Buffer | string): void {
    this.#text += chunk.toString();
    if (this.#text.length > this.limit) this.#text = this.#text.slice(-this.limit);
  }
  get text(): string {
    return this.#text;
  }
}

export interface Exit {
  readonly code: number | null;
  readonly signal: string | null;
  /** Set when the process could not be started at all (command not found). */
  readonly spawnError?: Error;
}

/**
 * keepStdout: the child's stdout is a stream still being consumed (pipe() relays it at the rate
 * limit, maybe for much longer than a second after the child exited): it is never cut short, its
 * reader ends at its end of file.
 */
/** How long an ssh client's output may still come after it exited (ssh.ts: 15 s × 4). */
const SSH_OUTPUT_GRACE_MS = 60_000;

export function waitExit(child: ChildProcess, keepStdout = false): Promise<Exit> {
  return new Promise((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('exit', (code, signal) => {
      // 'close' also waits for the output pipes, which a grandchild that outlived its parent may
      // hold open forever: give the last output a moment, then stop listening. An ssh session on
      // a master connection is not over at its exit: the master holds its output pipes and may
      // still be writing the command's last output into them, seconds later on a loaded server
      // (a listing cut there would be read as a short one). It gets as long as ssh takes to call a
      // silent link dead (ServerAliveInterval × ServerAliveCountMax).
      const graceMs = child.spawnfile === 'ssh' ? SSH_OUTPUT_GRACE_MS : 1000;
      const timer = setTimeout(() => {
        if (!keepStdout) child.stdout?.destroy();
        child.stderr?.destroy();
        resolve({ code, signal });
      }, graceMs);
      child.once('close', () => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  });
}

/** The failure of argv on host as it ended, for CommandError and PipeError. */
export function failureOf(
  host: Host,
  argv: readonly string[],
  exit: Exit,
  stderr: string,
  timedOut = false,
): Failure {
  return {
    host: host.name,
    remote: !host.isLocal,
    argv,
    exitCode: exit.code,
    signal: exit.signal,
    timedOut,
    spawnError: exit.spawnError as NodeJS.ErrnoException | undefined,
    stderr,
  };
}

/**
 * Runs argv on host, collects its output, and throws a CommandError naming the host when it fails.
 * An ssh connection turned away before the command could start is tried again (retry.ts).
 */
export async function run(host: Host, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  let stdout = '';
  let ranOnce = false;
  const last = await withConnectRetry(
    host,
    argv,
    async () => {
      const child = start(host, argv, ['pipe', 'pipe', 'pipe']);
      const out: Buffer[] = [];
      const err = new TailBuffer();
      child.stdout?.on('data', (c: Buffer) => out.push(c));
      child.stderr?.on('data', (c: Buffer) => err.push(c));
      // A command that exits without reading its input must not crash us with EPIPE.
      child.stdin?.on('error', () => {});
      child.stdin?.end(opts.input ?? '');

      let timedOut = false;
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              terminate(child);
            }, opts.timeoutMs);
      const exit = await waitExit(child);
      if (timer) clearTimeout(timer);
      stdout = Buffer.concat(out).toString();
      // Output, or an exit before its output pipe closed, means the remote side may have run.
      ranOnce = stdout !== '' || child.stdout?.readableEnded === false;
      return { exit, stderr: err.text, timedOut };
    },
    { passed: () => ranOnce },
  );
  if (last.exit.code !== 0 || last.timedOut)
    throw new CommandError(failureOf(host, argv, last.exit, last.stderr, last.timedOut));
  return { stdout, stderr: last.stderr };
}
