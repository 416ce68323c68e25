/**
 * What every command does after its body: notify (mail, webhooks) and write its metrics file.
 * Commands know nothing of it: they log their problems and set their gauges, and runCommand calls
 * afterRun with the outcome. The options are read from the parsed options record, so that a
 * configuration file can later fill the same record.
 */
import { hostname } from 'node:os';
import { basename } from 'node:path';
import type { Logger, Problem } from '../cli/log.ts';
import { errorMessage } from '../errors.ts';
import {
  Metrics,
  previousValue,
  readOptionalText,
  renderTextfile,
  writeFileAtomicLocal,
} from '../metrics/prometheus.ts';
import { buildNotification, type NotifyOn, redactArgv, shouldNotify, statusOf } from './message.ts';
import { deliver, SENDMAIL } from './send.ts';

export interface ReportOptions {
  readonly notifyMail: readonly string[];
  readonly notifyWebhook: readonly string[];
  readonly notifyOn: NotifyOn;
  readonly prometheusTextfile?: string;
  /** A dry run changes nothing and backs nothing up: it neither notifies nor writes metrics. */
  readonly dryRun: boolean;
}

export function reportOptions(o: Readonly<Record<string, unknown>>): ReportOptions {
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const on = o.notifyOn;
  return {
    notifyMail: list(o.notifyMail),
    notifyWebhook: list(o.notifyWebhook),
    notifyOn: on === 'failure' || on === 'always' ? on : 'warning',
    prometheusTextfile: typeof o.prometheusTextfile === 'string' ? o.prometheusTextfile : undefined,
    dryRun: o.dryRun === true,
  };
}

export interface RunRecord {
  readonly command: string;
  readonly argv: readonly string[];
  readonly exitCode: number;
  readonly started: Date;
  readonly log: Logger;
  /** The gauges the command set. */
  readonly metrics: Metrics;
}

export interface AfterRunIO {
  readonly host?: string;
  readonly sendmail?: string;
  readonly now?: () => Date;
}

const seconds = (d: Date) => d.getTime() / 1000;

/**
 * Notifies, then writes the metrics (which count failed notifications, so that a broken alert
 * channel shows up in monitoring). Neither changes the run's exit code: it reports the backups,
 * and cron, systemd and monitoring systems act on it; a failure here is logged on stderr.
 */
export async function afterRun(opts: ReportOptions, run: RunRecord, io: AfterRunIO = {}): Promise<void> {
  if (opts.dryRun) return;
  const ended = (io.now ?? (() => new Date()))();
  const host = io.host ?? hostname();
  const problems: readonly Problem[] = [...run.log.messages];
  let notifyFailures = 0;

  const targets = { mail: opts.notifyMail, webhooks: opts.notifyWebhook };
  const status = statusOf(run.command, run.exitCode, problems);
  if ((targets.mail.length > 0 || targets.webhooks.length > 0) && shouldNotify(opts.notifyOn, status)) {
    const n = buildNotification({
      command: run.command,
      host,
      exitCode: run.exitCode,
      problems,
      argv: redactArgv(run.argv),
      started: run.started,
      ended,
    });
    const failures = await deliver(n, targets, `zbm@${host}`, io.sendmail ?? SENDMAIL);
    notifyFailures = failures.length;
    for (const f of failures) run.log.error(`notification failed: ${f}`);
  }

  if (opts.prometheusTextfile) {
    const path = opts.prometheusTextfile;
    try {
      const previous = await readOptionalText(path).catch(() => '');
      const text = renderTextfile(
        runMetrics(run, ended, problems, notifyFailures, previous, basename(path).replace(/\.prom$/, '')),
      );
      await writeFileAtomicLocal(path, text);
    } catch (err) {
      run.log.error(`cannot write the metrics file ${path}: ${errorMessage(err)}`);
    }
  }
}

/** The run's gauges plus the command's, every sample labelled with the command and the job. */
export function runMetrics(
  run: Pick<RunRecord, 'command' | 'exitCode' | 'started' | 'metrics'>,
  ended: Date,
  problems: readonly Problem[],
  notifyFailures: number,
  previousText: string,
  job: string,
): Metrics {
  // One file per job: the job label keeps two jobs of one command (two remotes, two roots) apart,
  // as node_exporter refuses the same series from two files.
  const base = { command: run.command, zbm_job: job };
  const m = new Metrics();
  m.set('zbm_last_run_timestamp_seconds', 'When the last run ended (Unix time).', base, seconds(ended));
  m.set(
    'zbm_last_run_duration_seconds',
    'How long the last run took.',
    base,
    (ended.getTime() - run.started.getTime()) / 1000,
  );
  m.set('zbm_last_exit_code', 'Exit code of the last run (see zbm --help).', base, run.exitCode);
  const lastSuccess =
    run.exitCode === 0 ? seconds(ended) : previousValue(previousText, 'zbm_last_success_timestamp_seconds');
  if (lastSuccess !== null) {
    m.set(
      'zbm_last_success_timestamp_seconds',
      'When the last run with exit code 0 ended (Unix time); kept from the previous file when this run failed.',
      base,
      lastSuccess,
    );
  }
  for (const level of ['error', 'warning'] as const) {
    m.set(
      'zbm_problems',
      'Errors and warnings of the last run (for verify: checks not OK).',
      { ...base, level },
      problems.filter((p) => p.level === level).length,
    );
  }
  m.set(
    'zbm_notification_failures',
    'Notification targets that could not be reached in the last run.',
    base,
    notifyFailures,
  );
  for (const s of run.metrics.samples)
    m.set(s.name, run.metrics.help(s.name), { ...s.labels, ...base }, s.value);
  return m;
}
