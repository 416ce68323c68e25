import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.ts';
import { exited, track } from './children.ts';
import type { Host, Invocation } from './host.ts';
import { shellJoin } from './quote.ts';
import { type ConnectRetry, defaultConnectRetry } from './retry.ts';

const DESTINATION = /^(?:[A-Za-z0-9._-]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])$/;

/** Validates an ssh destination (`host`, `user@host`, `user@[::1]`) as given on the command line. */
export function parseSshDestination(value: string): string {
  // A port (or an ssh:// URL) has no place in a destination: ssh takes it from ~/.ssh/config.
  const port = /^(?:ssh:\/\/)?((?:[A-Za-z0-9._-]+@)?)([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(\d+)\/?$/.exec(
    value,
  );
  if (!port && value.startsWith('ssh://')) {
    throw new UsageError(
      `invalid remote ${JSON.stringify(value)}: give the ssh destination alone (${value.slice(6).replace(/\/+$/, '')}), a port in ~/.ssh/config`,
    );
  }
  if (port) {
    const [, user = '', host = '', number = ''] = port;
    const alias = host.replace(/^\[|\]$/g, '');
    throw new UsageError(
      `invalid remote ${JSON.stringify(value)}: a port goes in ~/.ssh/config ("Host ${alias}" with "HostName ${alias}" and "Port ${number}"), then give --remote ${user}${alias}`,
    );
  }
  if (!DESTINATION.test(value) || value.startsWith('-')) {
    throw new UsageError(
      `invalid remote ${JSON.stringify(value)}: expected an ssh destination such as "backup1" or "root@backup1"`,
    );
  }
  return value;
}

export interface SshOptions {
  /** Seconds before a connection attempt is given up. */
  readonly connectTimeout?: number;
  /** Extra `-o` options, for example from the configuration file. */
  readonly options?: readonly string[];
  /** Retries of a connection turned away before authentication (retry.ts); none with `null`. */
  readonly connectRetry?: ConnectRetry | null;
}

/**
 * A host reached through the system's OpenSSH client, so that ~/.ssh/config, keys and known_hosts
 * apply as the administrator set them up. All commands of one run share one master connection.
 */
export class SshHost implements Host {
  readonly isLocal = false;
  readonly name: string;
  readonly connectRetry?: ConnectRetry;
  readonly #controlDir: string;
  readonly #options: readonly string[];

  constructor(destination: string, opts: SshOptions = {}) {
    this.name = parseSshDestination(destination);
    if (opts.connectRetry !== null) this.connectRetry = opts.connectRetry ?? defaultConnectRetry;
    // A private directory: the control socket gives shell access to whoever can reach it.
    this.#controlDir = mkdtempSync(join(tmpdir(), 'zbm-ssh-'));
    this.#options = [
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${opts.connectTimeout ?? 20}`,
      // A dead link must end the run with an error, never hang it.
      '-o',
      'ServerAliveInterval=15',
      '-o',
      'ServerAliveCountMax=4',
      '-o',
      'ControlMaster=auto',
      '-o',
      `ControlPath=${join(this.#controlDir, '%C')}`,
      // A backstop only: close() ends the master at the end of the run.
      '-o',
      'ControlPersist=60',
      ...(opts.options ?? []).flatMap((o) => ['-o', o]),
    ];
  }

  invocation(argv: readonly string[]): Invocation {
    // `--` so that no destination can be read as an option; the command is ONE quoted string
    // because the remote shell parses it again.
    return { file: 'ssh', args: [...this.#options, '--', this.name, shellJoin(argv)] };
  }

  #closed: Promise<void> | undefined;

  /** Ends the master connection; once, however often it is called (a run may close early). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const child = track(
        spawn('ssh', [...this.#options, '-O', 'exit', '--', this.name], { stdio: 'ignore' }),
      );
      await exited(child);
      rmSync(this.#controlDir, { recursive: true, force: true });
    })();
    return this.#closed;
  }
}
