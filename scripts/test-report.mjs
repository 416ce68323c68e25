/**
 * Where an integration run's time went: per file, its tests and time, and what its lab calls cost
 * (zbm runs, lab resets, everything else), then the slowest tests and, last, each failed test with
 * its error; from what test/support/durations-reporter.mjs and
 * test/lab/lab.ts recorded in the report directory. Written to stdout and
 * to <dir>/durations.md; the files' times also replace those in the durations file that
 * scripts/lab-tests.sh orders the next run by.
 *
 *   node scripts/test-report.mjs <report dir> <wall seconds> <durations file>
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const [dir, wall, known] = process.argv.slice(2);
if (!dir || !wall || !known) {
  console.error('usage: test-report.mjs <report dir> <wall seconds> <durations file>');
  process.exit(2);
}

/** @param {string} path */
const jsonLines = (path) =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
/** @type {{ lab: string, file: string, name: string, kind: string, ms: number, failed: boolean, error?: string }[]} */
const tests = jsonLines(`${dir}/tests.jsonl`);
/** @type {{ lab: string, file: string, ms: number, command: string }[]} */
const calls = jsonLines(`${dir}/calls.jsonl`);

/** @param {string} command */
const kindOf = (command) =>
  /^'?zbm[' ]/.test(command) ? 'zbm' : /lab-reset/.test(command) ? 'reset' : 'other';
/** @param {number} ms */
const min = (ms) => (ms / 60_000).toFixed(1);
/** @param {number} ms */
const sec = (ms) => (ms / 1000).toFixed(0);
/** @param {{ ms: number }[]} list */
const sum = (list) => list.reduce((t, x) => t + x.ms, 0);

const files = tests.filter((t) => t.kind === 'file').sort((a, b) => b.ms - a.ms);
const out = [
  `## Integration tests: ${files.length} files, ${min(Number(wall) * 1000)} min wall`,
  '',
  '| file | lab | tests | failed | min | zbm runs (s) | resets (s) | other lab calls (s) |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
];
for (const f of files) {
  const mine = tests.filter((t) => t.file === f.file && t.kind === 'test');
  const cell = (/** @type {string} */ kind) => {
    const list = calls.filter((c) => c.file === f.file && kindOf(c.command) === kind);
    return list.length ? `${list.length}: ${sec(sum(list))}` : '';
  };
  out.push(
    `| ${f.file} | ${f.lab} | ${mine.length} | ${mine.filter((t) => t.failed).length} | ${min(f.ms)} | ${cell('zbm')} | ${cell('reset')} | ${cell('other')} |`,
  );
}
const labs = [...new Set(files.map((f) => f.lab))].sort();
out.push(
  '',
  `Per lab, minutes in test files: ${labs.map((l) => `lab ${l} ${min(sum(files.filter((f) => f.lab === l)))}`).join(', ')}.`,
  '',
  '## Slowest tests',
  '',
);
for (const t of tests
  .filter((x) => x.kind === 'test')
  .sort((a, b) => b.ms - a.ms)
  .slice(0, 15))
  out.push(`- ${sec(t.ms)} s ${t.file}: ${t.name}`);
// Last, so that the tail of a long log (all CI keeps) names what failed and why.
const failed = tests.filter((x) => x.kind === 'test' && x.failed);
if (failed.length > 0) {
  out.push('', `## Failed tests (${failed.length})`);
  for (const t of failed)
    out.push(
      '',
      `### ${t.file} (lab ${t.lab}): ${t.name}`,
      '',
      '```',
      t.error ?? '(no error recorded)',
      '```',
    );
}
const text = `${out.join('\n')}\n`;
writeFileSync(`${dir}/durations.md`, text);
process.stdout.write(`\n${text}`);

// The next run's order: these files' times, and the others' as they were.
const times = new Map(
  existsSync(known)
    ? readFileSync(known, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => /** @type {[string, string]} */ (l.split('\t')))
    : [],
);
for (const f of files) times.set(f.file, sec(f.ms));
try {
  writeFileSync(known, [...times].map(([f, s]) => `${f}\t${s}\n`).join(''));
} catch {
  // A read-only cache only loses the ordering hint.
}
