/**
 * The folders of src/ in layers, bottom first. A file may import from its own folder and from
 * folders of lower layers, never from its own layer's other folders (sideways) nor from a higher
 * one (upward): so a pure planner never reaches into the CLI, and each folder can be read knowing
 * only what lies below it. A top-level file (src/errors.ts) counts as a folder of its own name.
 * A new folder must be given its place here, which is the point: decide where it goes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';

const LAYERS: readonly (readonly string[])[] = [
  // Words every layer uses: errors and exit codes, the version, plain text, a concurrency limit.
  ['errors', 'version', 'text', 'concurrency'],
  // Clocks and time zones; running processes here or over ssh.
  ['time', 'host'],
  // The zfs commands, their arguments and their parsed output.
  ['zfs'],
  // zbm's naming conventions, Proxmox, the config file, metrics, locks.
  ['conventions', 'pve', 'config', 'metrics', 'lock'],
  // The metadata store beside the backups; the replication diff.
  ['metadata', 'plan'],
  // Moving snapshots between hosts: sync, bases and their holds.
  ['transfer'],
  // The jobs, each with its plan and its run.
  ['backup', 'prune', 'replicate', 'restore', 'rollback', 'serve', 'status'],
  // verify judges what the jobs left, by prune's own rule for snapshot order (prune/plan.ts).
  ['verify'],
  // File restore: restore's points and tiers, read through a sandboxed reader.
  ['files'],
  // Restore drills: restore's points, verify's states and files' reader; verify's command reads
  // their records.
  ['drill'],
  // The command line: flags, values, logging, terminal output.
  ['cli'],
  // Mails and messages after a run (they read the run's log).
  ['notify'],
  // One adapter per command: wires hosts and options, calls the job, renders the result.
  ['commands'],
  ['main'],
];

/** Imports that break the order today, each with the reason it is left: none. */
const EXCEPTIONS: readonly { readonly from: string; readonly to: string; readonly why: string }[] = [];

const SRC = 'src';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The folder a file of src/ belongs to: its first directory, or its own name at the top. */
function folderOf(file: string): string {
  const [first = '', ...rest] = relative(SRC, file).split('/');
  return rest.length === 0 ? first.replace(/\.ts$/, '') : first;
}

/** The relative imports of a file (static, re-exports and dynamic), resolved to paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)'(\.[^']*)'/gm)].map(
    (m) => m[1] ?? '',
  );
  return specs.map((s) => normalize(join(dirname(file), s)));
}

const rank = new Map(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i] as const)));

describe('the layers of src/', () => {
  const files = filesUnder(SRC);

  it('give every folder of src/ a place', () => {
    const unplaced = [...new Set(files.map(folderOf))].filter((f) => !rank.has(f)).sort();
    assert.deepEqual(unplaced, [], 'add each new folder to LAYERS in test/unit/layers.test.ts');
  });

  it('are crossed only downward', () => {
    const bad: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      for (const target of importsOf(file)) {
        const to = folderOf(target);
        if (to === from) continue;
        const ok = (rank.get(to) ?? Number.POSITIVE_INFINITY) < (rank.get(from) ?? Number.NEGATIVE_INFINITY);
        if (!ok && !EXCEPTIONS.some((e) => e.from === from && e.to === to)) {
          const how = rank.get(to) === rank.get(from) ? 'sideways' : 'upward';
          bad.push(`${file} imports ${target} (${how}: ${from} → ${to})`);
        }
      }
    }
    assert.deepEqual(bad, []);
  });

  it('leave starting processes to host/ (and zfs/, through it)', () => {
    // One place starts processes, so that every child is quoted, traced and stopped on a signal alike.
    const starters = files
      .filter((f) => /from\s*'node:child_process'/.test(readFileSync(f, 'utf8')))
      .filter((f) => !['host', 'zfs'].includes(folderOf(f)));
    assert.deepEqual(starters, []);
    assert.ok(
      files.some(
        (f) => folderOf(f) === 'host' && /from\s*'node:child_process'/.test(readFileSync(f, 'utf8')),
      ),
      'the check finds host/ importing node:child_process',
    );
  });

  it('find the imports it checks (the reader is no test that cannot fail)', () => {
    const found = importsOf(join(SRC, 'commands', 'prune.ts')).map(folderOf);
    assert.ok(found.includes('cli') && found.includes('zfs') && found.includes('prune'), found.join(' '));
  });
});
