/**
 * How a command zbm ran ended, in words an administrator can act on: the cause first, the host
 * named, the program by its name. The host layer describes its own failures; errors.ts stays free
 * of processes.
 */
import { ZbmError } from '../errors.ts';
import { displayArgv } from './quote.ts';

/**
 * Whether messages about failed commands carry their whole command line (`--verbose`). Set once,
 * before anything runs; the cause alone is what an administrator needs first.
 */
let verboseCommands = false;

export function showCommandLines(on: boolean): void {
  verboseCommands = on;
}

/** How a command ended, as the host layer saw it. */
export interface Failure {
  readonly host: string;
  /** Reached through ssh: exit code 255 and ssh's own words then mean the host was not reached. */
  readonly remote: boolean;
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly signal?: string | null;
  readonly timedOut?: boolean;
  /** The process could not be started (ENOENT: not installed). */
  readonly spawnError?: NodeJS.ErrnoException;
  readonly stderr: string;
}

/** The Debian package that provides a program zbm runs, for "not installed" messages. */
const PACKAGES: Readonly<Record<string, string>> = {
  zfs: 'zfsutils-linux',
  zpool: 'zfsutils-linux',
  ssh: 'openssh-client',
  sendmail: 'a mail transfer agent such as postfix',
  qm: 'Proxmox VE: run it on a Proxmox node',
  tar: 'tar',
};

/** `zfs list`, `zpool status`, zbm's own `sh -c` wrappers by their name, else the program. */
export function commandLabel(argv: readonly string[]): string {
  const [file = '', sub] = argv;
  const base = file.slice(file.lastIndexOf('/') + 1);
  if (base === 'sh' && sub === '-c' && argv.length > 3) return argv[3] ?? 'sh';
  if ((base === 'zfs' || base === 'zpool' || base === 'qm') && sub !== undefined && !sub.startsWith('-'))
    return `${base} ${sub}`;
  return base;
}

function notInstalled(program: string, host: string): string {
  const base = program.slice(program.lastIndexOf('/') + 1);
  const pkg = PACKAGES[base];
  return `${base} is not installed on ${host}${pkg ? ` (${pkg})` : ''}`;
}

/** ssh's own complaints (exit code 255), as opposed to the remote command's stderr. */
const SSH_TROUBLE =
  /^ssh: |Permission denied \(|Host key verification failed|Connection (closed|refused|reset|timed out)|kex_exchange_identification|Timeout, server|client_loop:|Could not resolve hostname|No route to host|REMOTE HOST IDENTIFICATION HAS CHANGED|Too many authentication failures/;

/** A shell's "not found" for the first word of the remote command (exit code 127). */
const NOT_FOUND = /(?:^|: )(?:line \d+: )?([^\s:]+): (?:command )?not found$|command not found: (\S+)$/m;

/** The failure in one line, cause first; the command line only with --verbose. Pure but for that flag. */
export function describeFailure(f: Failure): string {
  const label = commandLabel(f.argv);
  const stderr = f.stderr.trim().replace(/\s*\n\s*/g, ' ');
  let text: string;
  if (f.spawnError) {
    const file = f.remote ? 'ssh' : (f.argv[0] ?? '');
    text =
      f.spawnError.code === 'ENOENT'
        ? f.remote
          ? `${notInstalled('ssh', 'this host')}, so ${f.host} cannot be reached`
          : notInstalled(file, f.host)
        : `cannot run ${file} on ${f.remote ? 'this host' : f.host}: ${f.spawnError.message}`;
  } else if (f.timedOut) {
    text = `on ${f.host}: ${label} timed out${stderr ? `: ${stderr}` : ''}`;
  } else if (f.signal) {
    // A remote command's own signal comes back as ssh's exit code 255: a signal here hit ssh itself.
    const what = f.remote ? `the ssh session to ${f.host} running ${label}` : `on ${f.host}: ${label}`;
    text = `${what} was stopped (${f.signal})${stderr ? `: ${stderr}` : ''}`;
  } else if (f.remote && f.exitCode === 255 && SSH_TROUBLE.test(f.stderr)) {
    const line =
      f.stderr
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => SSH_TROUBLE.test(l))
        .at(-1) ?? stderr;
    text = `cannot reach ${f.host} over ssh: ${line.replace(/^ssh: /, '')}`;
  } else if (f.exitCode === 127 && NOT_FOUND.test(f.stderr)) {
    const m = NOT_FOUND.exec(f.stderr);
    text = notInstalled(m?.[1] ?? m?.[2] ?? label, f.host);
  } else {
    text = stderr
      ? `on ${f.host}: ${stderr} (${label}, exit code ${f.exitCode})`
      : `on ${f.host}: ${label} failed (exit code ${f.exitCode})`;
  }
  return verboseCommands ? `${text}; command: ${displayArgv(f.argv)}` : text;
}

/** A command that ran on a host and failed. */
export class CommandError extends ZbmError {
  override name = 'CommandError';
  readonly host: string;
  readonly argv: readonly string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(readonly failure: Failure) {
    super(describeFailure(failure));
    this.host = failure.host;
    this.argv = failure.argv;
    this.exitCode = failure.exitCode;
    this.stderr = failure.stderr;
  }
}
