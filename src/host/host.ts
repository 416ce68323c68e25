import type { ConnectRetry } from './retry.ts';

/** A command line ready to hand to spawn(): no shell is involved on this side. */
export interface Invocation {
  readonly file: string;
  readonly args: readonly string[];
}

/**
 * Where a command runs: this machine, or another one reached through the system's ssh client.
 * Everything above this layer speaks argv arrays; only the host turns them into a process.
 */
export interface Host {
  /** Used in every message about a command on this host. */
  readonly name: string;
  readonly isLocal: boolean;
  invocation(argv: readonly string[]): Invocation;
  /** Whether and when a command turned away before it could start is tried again (ssh only). */
  readonly connectRetry?: ConnectRetry;
  /** Releases what the host keeps between commands (the ssh master connection); once, if called again. */
  close(): Promise<void>;
}
