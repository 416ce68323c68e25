import { printableLines } from '../text/printable.ts';

/**
 * Messages go to stderr (stdout is for data such as --json). Under systemd (JOURNAL_STREAM set)
 * each line carries a `<N>` syslog priority prefix, which journald turns into the entry's priority,
 * so `journalctl -p warning` finds zbm's warnings.
 */
export type Level = 'error' | 'warning' | 'info' | 'debug';

const PRIORITY: Record<Level, number> = { error: 3, warning: 4, info: 6, debug: 7 };

/** A warning or an error of the run, kept for the notification sent at its end. */
export interface Problem {
  readonly level: 'error' | 'warning';
  readonly text: string;
}

export interface Logger {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  /**
   * Counts and keeps a problem that the command shows elsewhere (verify prints its checks on
   * stdout), so that alerts and metrics see it without printing it twice.
   */
  record(problem: Problem): void;
  /** Count of warnings and errors so far: the run's exit code reports them. */
  readonly problems: { warnings: number; errors: number };
  /** Every warning and error of the run, in order. */
  readonly messages: readonly Problem[];
}

export interface LoggerOptions {
  readonly write?: (line: string) => void;
  readonly journal?: boolean;
  readonly verbose?: boolean;
  readonly quiet?: boolean;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const journal = opts.journal ?? process.env.JOURNAL_STREAM !== undefined;
  const problems = { warnings: 0, errors: 0 };
  const messages: Problem[] = [];
  const emit = (level: Level, msg: string) => {
    const label = level === 'error' ? 'error: ' : level === 'warning' ? 'warning: ' : '';
    // Messages quote other hosts (stderr, lock holders): no control character reaches the terminal.
    for (const line of printableLines(msg).split('\n')) {
      write(`${journal ? `<${PRIORITY[level]}>` : ''}${label}${line}\n`);
    }
  };
  const record = (p: Problem) => {
    if (p.level === 'error') problems.errors++;
    else problems.warnings++;
    messages.push(p);
  };
  return {
    problems,
    messages,
    record,
    error(msg) {
      record({ level: 'error', text: msg });
      emit('error', msg);
    },
    warn(msg) {
      record({ level: 'warning', text: msg });
      emit('warning', msg);
    },
    info(msg) {
      if (!opts.quiet) emit('info', msg);
    },
    debug(msg) {
      if (opts.verbose) emit('debug', msg);
    },
  };
}
