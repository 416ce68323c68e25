import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  escapeLabelValue,
  Metrics,
  previousValue,
  renderTextfile,
  writeFileAtomicLocal,
} from '../../../src/metrics/prometheus.ts';
import { runMetrics } from '../../../src/notify/after-run.ts';

describe('Prometheus textfile', () => {
  it('renders HELP and TYPE once per metric, then its samples with escaped labels', () => {
    const m = new Metrics();
    m.set('zbm_snapshots', 'zbm snapshots.\nSecond line \\ here', { dataset: 'main/b/vm-100-disk-0' }, 2);
    m.set('zbm_snapshots', 'zbm snapshots.', { dataset: 'odd "name"\\x\ny' }, 3);
    m.set('zbm_snapshots', 'zbm snapshots.', { dataset: 'main/b/vm-100-disk-0' }, 4);
    m.set('zbm_age', 'Age.', {}, Number.NaN);
    assert.equal(
      renderTextfile(m),
      [
        '# HELP zbm_snapshots zbm snapshots.',
        '# TYPE zbm_snapshots gauge',
        'zbm_snapshots{dataset="main/b/vm-100-disk-0"} 4',
        'zbm_snapshots{dataset="odd \\"name\\"\\\\x\\ny"} 3',
        '# HELP zbm_age Age.',
        '# TYPE zbm_age gauge',
        'zbm_age NaN',
        '',
      ].join('\n'),
    );
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    assert.throws(() => m.set('bad-name', '', {}, 1), /invalid metric name/);
    assert.throws(() => m.set('ok', '', { 'bad-label': 'x' }, 1), /invalid label name/);
  });

  it('reads a value back from a previous file, whatever its labels', () => {
    const text = '# HELP x y\nzbm_last_success_timestamp_seconds{command="a b}",zbm_job="j"} 1790000000\n';
    assert.equal(previousValue(text, 'zbm_last_success_timestamp_seconds'), 1790000000);
    assert.equal(
      previousValue('zbm_last_success_timestamp_seconds 12\n', 'zbm_last_success_timestamp_seconds'),
      12,
    );
    assert.equal(
      previousValue('zbm_last_success_timestamp_seconds_x 12\n', 'zbm_last_success_timestamp_seconds'),
      null,
    );
    assert.equal(previousValue('', 'zbm_last_success_timestamp_seconds'), null);
  });

  it('keeps the last success of a failed run from the previous file, and sets it on success', () => {
    const started = new Date('2026-11-26T10:00:00Z');
    const ended = new Date('2026-11-26T10:00:30Z');
    const cmd = new Metrics();
    cmd.set('zbm_bytes_sent', 'Bytes.', {}, 1024);
    const prev = 'zbm_last_success_timestamp_seconds{command="backup-pve",zbm_job="zbm-backup"} 1700000000\n';
    const failed = renderTextfile(
      runMetrics(
        { command: 'backup-pve', exitCode: 1, started, metrics: cmd },
        ended,
        [{ level: 'error', text: 'x' }],
        1,
        prev,
        'zbm-backup',
      ),
    );
    const labels = '{command="backup-pve",zbm_job="zbm-backup"}';
    assert.match(failed, new RegExp(`^zbm_last_success_timestamp_seconds\\${labels} 1700000000$`, 'm'));
    assert.match(failed, new RegExp(`^zbm_last_exit_code\\${labels} 1$`, 'm'));
    assert.match(failed, new RegExp(`^zbm_last_run_duration_seconds\\${labels} 30$`, 'm'));
    assert.match(failed, /^zbm_problems\{command="backup-pve",level="error",zbm_job="zbm-backup"\} 1$/m);
    assert.match(failed, /^zbm_problems\{command="backup-pve",level="warning",zbm_job="zbm-backup"\} 0$/m);
    assert.match(failed, new RegExp(`^zbm_notification_failures\\${labels} 1$`, 'm'));
    assert.match(failed, new RegExp(`^zbm_bytes_sent\\${labels} 1024$`, 'm'));
    const ok = renderTextfile(
      runMetrics(
        { command: 'backup-pve', exitCode: 0, started, metrics: cmd },
        ended,
        [],
        0,
        prev,
        'zbm-backup',
      ),
    );
    assert.match(
      ok,
      new RegExp(`^zbm_last_success_timestamp_seconds\\${labels} ${ended.getTime() / 1000}$`, 'm'),
    );
    const never = renderTextfile(
      runMetrics({ command: 'prune', exitCode: 1, started, metrics: new Metrics() }, ended, [], 0, '', 'p'),
    );
    assert.doesNotMatch(never, /zbm_last_success_timestamp_seconds\{/);
  });

  it('replaces the file atomically and leaves no temporary file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zbm-prom-'));
    try {
      const path = join(dir, 'zbm.prom');
      await writeFile(path, 'old\n');
      await writeFileAtomicLocal(path, 'new\n');
      assert.equal(await readFile(path, 'utf8'), 'new\n');
      assert.deepEqual(await readdir(dir), ['zbm.prom']);
      await assert.rejects(writeFileAtomicLocal(join(dir, 'missing', 'x.prom'), 'x'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
