import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { Metrics } from '../../../src/metrics/prometheus.ts';
import { afterRun, reportOptions } from '../../../src/notify/after-run.ts';

describe('after a run: notifications and metrics', () => {
  it('mails and posts once, logs an unreachable target without failing, counts it in the metrics', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zbm-notify-'));
    const bodies: { url: string; body: string }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push({ url: req.url ?? '', body });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const sendmail = join(dir, 'sendmail');
      await writeFile(sendmail, `#!/bin/sh\n{ echo "$*"; cat; } > ${join(dir, 'mail')}\n`);
      await chmod(sendmail, 0o755);
      const lines: string[] = [];
      const log = createLogger({ write: (l) => lines.push(l), journal: false });
      log.error('guest 100 (web): disk scsi0: it failed');
      const prom = join(dir, 'zbm-backup.prom');
      const opts = reportOptions({
        notifyMail: ['ops@example.com'],
        notifyWebhook: [
          `http://127.0.0.1:${port}/message?token=T0KEN`,
          'http://127.0.0.1:1/down?token=T0KEN',
        ],
        prometheusTextfile: prom,
      });
      assert.equal(opts.notifyOn, 'warning');
      await afterRun(
        opts,
        {
          command: 'backup-pve',
          argv: ['backup-pve', '--notify-webhook', `http://127.0.0.1:${port}/message?token=T0KEN`],
          exitCode: 1,
          started: new Date(),
          log,
          metrics: new Metrics(),
        },
        { host: 'pve1', sendmail },
      );
      const mail = await readFile(join(dir, 'mail'), 'utf8');
      assert.match(
        mail,
        /^-t -oi\nFrom: zbm@pve1\nTo: ops@example.com\nSubject: zbm backup-pve on pve1: FAILED \(1 problem\): guest 100 \(web\)/,
      );
      assert.doesNotMatch(mail, /T0KEN/);
      assert.equal(bodies.length, 1);
      assert.equal(bodies[0]?.url, '/message?token=T0KEN');
      assert.equal((JSON.parse(bodies[0]?.body ?? '{}') as { status: string }).status, 'failure');
      const failure = lines.find((l) => l.startsWith('error: notification failed'));
      assert.match(failure ?? '', /webhook http:\/\/127\.0\.0\.1:1\/down\?…: fetch failed/);
      assert.doesNotMatch(lines.join(''), /T0KEN/);
      assert.match(
        await readFile(prom, 'utf8'),
        /^zbm_notification_failures\{command="backup-pve",zbm_job="zbm-backup"\} 1$/m,
      );
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a dry run notifies nobody and writes no metrics; a clean run is quiet unless --notify-on always', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zbm-notify-'));
    try {
      const prom = join(dir, 'x.prom');
      const run = {
        command: 'prune',
        argv: [],
        exitCode: 0,
        started: new Date(),
        log: createLogger({ write: () => {}, journal: false }),
        metrics: new Metrics(),
      };
      const missing = join(dir, 'no-sendmail');
      await afterRun(reportOptions({ notifyMail: ['a@b.c'], prometheusTextfile: prom, dryRun: true }), run, {
        sendmail: missing,
      });
      await assert.rejects(readFile(prom));
      await afterRun(reportOptions({ notifyMail: ['a@b.c'] }), run, { sendmail: missing });
      assert.equal(run.log.problems.errors, 0);
      await afterRun(reportOptions({ notifyMail: ['a@b.c'], notifyOn: 'always' }), run, {
        sendmail: missing,
      });
      assert.equal(run.log.problems.errors, 1, 'the missing sendmail was tried and reported');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
