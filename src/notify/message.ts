/**
 * What a run's notification says, as pure functions of its outcome: the same text goes by mail and
 * by webhook, so that whoever reads it learns what failed, where, and what to do.
 */
import type { Problem } from '../cli/log.ts';
import { speaksMonitoringPlugin } from '../errors.ts';

/** When to notify: only failures, warnings and failures (the default), or after every run. */
export type NotifyOn = 'failure' | 'warning' | 'always';

export const NOTIFY_ON: readonly NotifyOn[] = ['failure', 'warning', 'always'];

export type Status = 'failure' | 'warning' | 'ok';

export interface RunOutcome {
  readonly command: string;
  readonly host: string;
  readonly exitCode: number;
  readonly problems: readonly Problem[];
  /** The command line, secrets already removed (redactArgv). */
  readonly argv: readonly string[];
  readonly started: Date;
  readonly ended: Date;
}

export interface WebhookPayload {
  /** Gotify reads title, message and priority (0-10); ntfy can template any field (README). */
  readonly title: string;
  readonly message: string;
  readonly priority: number;
  readonly host: string;
  readonly command: string;
  readonly exitCode: number;
  readonly status: Status;
  /** FAILED / WARNING / OK, or verify's and drill's monitoring state (CRITICAL, UNKNOWN...). */
  readonly state: string;
  readonly problems: readonly Problem[];
  readonly time: string;
}

export interface Notification {
  readonly subject: string;
  readonly text: string;
  readonly payload: WebhookPayload;
}

const VERIFY_STATES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

/**
 * verify and drill speak the monitoring-plugin convention (1 WARNING, 2 CRITICAL, 3 UNKNOWN); every other
 * command fails with a non-zero code and warns through its log.
 */
export function statusOf(command: string, exitCode: number, problems: readonly Problem[]): Status {
  if (speaksMonitoringPlugin(command) && exitCode >= 0 && exitCode <= 3) {
    return exitCode === 0 ? 'ok' : exitCode === 1 ? 'warning' : 'failure';
  }
  if (exitCode !== 0) return 'failure';
  return problems.length > 0 ? 'warning' : 'ok';
}

export function stateWord(command: string, exitCode: number, status: Status): string {
  if (speaksMonitoringPlugin(command)) return VERIFY_STATES[exitCode] ?? 'FAILED';
  return status === 'failure' ? 'FAILED' : status === 'warning' ? 'WARNING' : 'OK';
}

export function shouldNotify(on: NotifyOn, status: Status): boolean {
  if (on === 'always') return true;
  if (on === 'warning') return status !== 'ok';
  return status === 'failure';
}

function meaning(command: string, code: number): string {
  if (speaksMonitoringPlugin(command)) {
    const m = [
      'all checks passed',
      'a check warns',
      'a check is critical, or a usage error',
      'a check could not run',
    ];
    return m[code] ?? `see zbm ${command} --help`;
  }
  const m: Record<number, string> = {
    0: 'success',
    1: 'a failure: some guest or dataset failed, the others were still done',
    2: 'usage error',
    130: 'interrupted',
  };
  return m[code] ?? 'see zbm --help';
}

const PRIORITY: Record<Status, number> = { failure: 8, warning: 5, ok: 2 };

/** Lines kept in the text; the rest is counted. A run with hundreds of problems stays readable. */
const MAX_LINES = 50;
const MAX_PROBLEMS_JSON = 200;
const MAX_SUBJECT_DETAIL = 100;

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function buildNotification(o: RunOutcome): Notification {
  const status = statusOf(o.command, o.exitCode, o.problems);
  const state = stateWord(o.command, o.exitCode, status);
  // The first error names what needs attention most; warnings only when there is no error.
  const first = o.problems.find((p) => p.level === 'error') ?? o.problems[0];
  const count = o.problems.length > 0 ? ` (${plural(o.problems.length, 'problem')})` : '';
  const detail = first ? `: ${clip(oneLine(first.text), MAX_SUBJECT_DETAIL)}` : '';
  const subject = `zbm ${o.command} on ${o.host}: ${state}${count}${detail}`;

  const lines: string[] = [
    `zbm ${o.command} on ${o.host} ended ${state}, exit code ${o.exitCode} (${meaning(o.command, o.exitCode)}).`,
    '',
  ];
  if (o.problems.length > 0) {
    lines.push(
      `${plural(o.problems.length, 'problem')}; each names the host, the guest or dataset and what to do:`,
    );
    for (const p of o.problems.slice(0, MAX_LINES)) lines.push(`- ${p.level}: ${oneLine(p.text)}`);
    if (o.problems.length > MAX_LINES) {
      lines.push(
        `- … and ${o.problems.length - MAX_LINES} more: see the run's log (journalctl, or cron's mail)`,
      );
    }
  } else {
    lines.push('No problem was reported.');
  }
  const seconds = Math.round((o.ended.getTime() - o.started.getTime()) / 1000);
  lines.push(
    '',
    `Command: zbm ${o.argv.join(' ')}`,
    `Host: ${o.host}`,
    `Started: ${o.started.toISOString()}, ended: ${o.ended.toISOString()} (${seconds} s)`,
    '',
  );
  const text = lines.join('\n');
  return {
    subject,
    text,
    payload: {
      title: subject,
      message: text,
      priority: PRIORITY[status],
      host: o.host,
      command: o.command,
      exitCode: o.exitCode,
      status,
      state,
      problems: o.problems.slice(0, MAX_PROBLEMS_JSON).map((p) => ({ level: p.level, text: p.text })),
      time: o.ended.toISOString(),
    },
  };
}

/**
 * A webhook URL without its query, fragment and credentials: Gotify's token is in the query, an
 * ntfy access token may be in the user info. Safe for logs and notification bodies.
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search || u.username || u.password ? '?…' : ''}`;
  } catch {
    return '…';
  }
}

/** The command line with every webhook URL redacted. */
export function redactArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--notify-webhook' && i + 1 < argv.length) {
      out.push(a, redactUrl(argv[++i] ?? ''));
    } else if (a.startsWith('--notify-webhook=')) {
      out.push(`--notify-webhook=${redactUrl(a.slice('--notify-webhook='.length))}`);
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Header values never carry a line break (header injection); non-ASCII goes as RFC 2047 words. */
export function encodeHeader(value: string): string {
  const flat = oneLine(value);
  if (/^[\x20-\x7e]*$/.test(flat)) return flat;
  // Encoded words of at most 75 characters: cut between characters, at most 45 bytes each.
  const words: string[] = [];
  let chunk = '';
  for (const ch of flat) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w).toString('base64')}?=`).join('\n ');
}

/** The whole message for `sendmail -t -oi`: recipients from To, the local host as sender. */
export function mailMessage(n: Notification, to: readonly string[], from: string, date: Date): string {
  const headers = [
    `From: ${from}`,
    `To: ${to.join(', ')}`,
    `Subject: ${encodeHeader(n.subject)}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    // RFC 3834: no vacation auto-replies to a robot.
    'Auto-Submitted: auto-generated',
  ];
  return `${headers.join('\n')}\n\n${n.text}`;
}
