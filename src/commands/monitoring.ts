/**
 * How the commands that speak the monitoring-plugin convention (verify, drill) report: the status
 * line first on stdout (with performance data after "|"), then one line per check, or all of it as
 * JSON; the exit code of the worst state; problems counted for alerts and metrics.
 */
import type { Logger } from '../cli/log.ts';
import { writeOut } from '../cli/printable.ts';
import { errorMessage } from '../errors.ts';
import type { Metrics } from '../metrics/prometheus.ts';
import { printable } from '../text/printable.ts';
import { type Check, STATE_CODE, worst } from '../verify/checks.ts';

/** A run that could check nothing: UNKNOWN (3), still with its status line. */
export function reportUnknown(err: unknown, json: boolean | undefined, log: Logger): number {
  const message = errorMessage(err);
  log.error(message);
  // One line whatever the cause says: it may quote another host.
  const summary = printable(`ZBM UNKNOWN - ${message}`);
  writeOut(
    json
      ? `${JSON.stringify({ state: 'UNKNOWN', summary, perfdata: '', checks: [] }, null, 2)}\n`
      : `${summary}\n`,
  );
  return STATE_CODE.UNKNOWN;
}

/** Prints the checks of what was checked and returns the exit code of the worst state. */
export function reportChecks(
  what: string,
  checks: readonly Check[],
  perfdata: string,
  json: boolean | undefined,
  log: Logger,
  metrics?: Metrics,
): number {
  const state = worst(checks.map((c) => c.state));
  const count = (s: string) => checks.filter((c) => c.state === s).length;
  const summary =
    `ZBM ${state} - ${what}: ${count('CRITICAL')} critical, ${count('WARNING')} warning, ` +
    `${count('UNKNOWN')} unknown, ${count('OK')} ok`;
  for (const c of checks) {
    metrics?.set(
      'zbm_check_state',
      'State of each check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.',
      { subject: c.subject },
      STATE_CODE[c.state],
    );
    // Alerts and metrics count what is not OK; the lines themselves go to stdout only.
    if (c.state !== 'OK') {
      log.record({
        level: c.state === 'WARNING' ? 'warning' : 'error',
        text: `${c.state} ${c.subject}: ${c.message}`,
      });
    }
  }
  if (json) {
    writeOut(`${JSON.stringify({ state, summary, perfdata, checks }, null, 2)}\n`);
  } else {
    // The first line is what monitoring systems show (and graph, after "|"); the rest is their long output.
    writeOut(`${summary}${perfdata ? ` | ${perfdata}` : ''}\n`);
    for (const c of checks) writeOut(`${c.state} ${c.subject}: ${c.message}\n`);
  }
  return STATE_CODE[state];
}
