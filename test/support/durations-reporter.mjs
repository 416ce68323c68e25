/**
 * A node:test reporter that records each test's time, for scripts/test-report.mjs: one JSON line
 * per test and per file (its top-level suite) appended to $ZBM_TEST_REPORT_DIR/tests.jsonl, with
 * the lab that ran it ($ZBM_LAB_ID), and a failed test's error. It prints nothing: the spec reporter beside it does.
 */
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';

/** @param {AsyncIterable<{ type: string, data: { name: string, nesting: number, file?: string, details?: { duration_ms?: number, type?: string, error?: { cause?: unknown, message?: string } } } }>} source */
export default async function* durations(source) {
  const dir = process.env.ZBM_TEST_REPORT_DIR;
  const lab = process.env.ZBM_LAB_ID ?? '1';
  // scripts/run-tests.sh runs one file per test run, named last; the events' own file is where a
  // test was declared, which for the lab's it() is test/lab/lab.ts.
  const testFile = basename(process.argv.at(-1) ?? '?');
  for await (const event of source) {
    if (!dir || (event.type !== 'test:pass' && event.type !== 'test:fail')) continue;
    const { nesting, name, details } = event.data;
    const row = {
      lab,
      file: testFile,
      name,
      kind: nesting === 0 ? 'file' : details?.type === 'suite' ? 'suite' : 'test',
      ms: Math.round(details?.duration_ms ?? 0),
      failed: event.type === 'test:fail',
      // The report ends with the failures, as CI keeps only the tail of a long log.
      ...(event.type === 'test:fail' && details?.type !== 'suite'
        ? { error: errorText(details?.error) }
        : {}),
    };
    appendFileSync(`${dir}/tests.jsonl`, `${JSON.stringify(row)}\n`);
  }
  yield '';
}

/** @param {{ cause?: unknown, message?: string } | undefined} error */
function errorText(error) {
  const cause = error?.cause;
  const text =
    cause instanceof Error ? (cause.stack ?? cause.message) : String(cause ?? error?.message ?? 'unknown');
  return text.split('\n').slice(0, 30).join('\n');
}
