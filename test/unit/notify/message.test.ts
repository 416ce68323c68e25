import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mailAddresses, webhookUrls } from '../../../src/cli/values.ts';
import {
  buildNotification,
  encodeHeader,
  mailMessage,
  type RunOutcome,
  redactArgv,
  redactUrl,
  shouldNotify,
  statusOf,
} from '../../../src/notify/message.ts';

const outcome: RunOutcome = {
  command: 'backup-pve',
  host: 'pve1',
  exitCode: 1,
  problems: [
    { level: 'warning', text: 'guest 102: sata0 "local:102/x.qcow2" is not backed up: not zfspool' },
    {
      level: 'error',
      text: 'guest 100 (web): disk scsi0 rpool/data/vm-100-disk-0 → zbm-dest:main/bak-zbm/vm-100-disk-0: diverged',
    },
  ],
  argv: ['backup-pve', '--remote', 'zbm-dest'],
  started: new Date('2026-11-26T10:00:00Z'),
  ended: new Date('2026-11-26T10:01:05Z'),
};

describe('notifications', () => {
  it('grades a run: failure by exit code, warning by logged problems, verify and drill by their states', () => {
    assert.equal(statusOf('backup-pve', 1, []), 'failure');
    assert.equal(statusOf('prune', 0, [{ level: 'warning', text: 'x' }]), 'warning');
    assert.equal(statusOf('replicate', 0, []), 'ok');
    for (const command of ['verify', 'drill'])
      assert.deepEqual(
        [0, 1, 2, 3].map((c) => statusOf(command, c, [])),
        ['ok', 'warning', 'failure', 'failure'],
      );
    assert.equal(shouldNotify('warning', 'warning'), true);
    assert.equal(shouldNotify('warning', 'ok'), false);
    assert.equal(shouldNotify('failure', 'warning'), false);
    assert.equal(shouldNotify('failure', 'failure'), true);
    assert.equal(shouldNotify('always', 'ok'), true);
  });

  it('names the command, host and state in the subject, with the first error, and every problem in the body', () => {
    const n = buildNotification(outcome);
    assert.match(n.subject, /^zbm backup-pve on pve1: FAILED \(2 problems\): guest 100 \(web\): disk scsi0/);
    assert.ok(n.subject.length < 200);
    assert.match(n.text, /^zbm backup-pve on pve1 ended FAILED, exit code 1 \(a failure/);
    assert.match(n.text, /^- warning: guest 102: sata0/m);
    assert.match(n.text, /^- error: guest 100 \(web\): disk scsi0 .*diverged$/m);
    assert.match(n.text, /^Command: zbm backup-pve --remote zbm-dest$/m);
    assert.match(n.text, /\(65 s\)/);
    assert.equal(n.payload.title, n.subject);
    assert.equal(n.payload.message, n.text);
    assert.equal(n.payload.priority, 8);
    assert.equal(n.payload.status, 'failure');
    assert.equal(n.payload.problems.length, 2);
    const v = buildNotification({ ...outcome, command: 'verify', exitCode: 2, problems: [] });
    assert.equal(v.subject, 'zbm verify on pve1: CRITICAL');
    const ok = buildNotification({ ...outcome, exitCode: 0, problems: [] });
    assert.equal(ok.subject, 'zbm backup-pve on pve1: OK');
    assert.equal(ok.payload.priority, 2);
  });

  it('keeps long runs readable: at most 50 problem lines, the rest counted', () => {
    const many = Array.from({ length: 120 }, (_, i) => ({
      level: 'error' as const,
      text: `problem ${i}\nsecond line`,
    }));
    const n = buildNotification({ ...outcome, problems: many });
    assert.equal(n.text.split('\n').filter((l) => l.startsWith('- error: problem')).length, 50);
    assert.match(n.text, /… and 70 more/);
    assert.match(n.text, /- error: problem 0 second line/);
  });

  it('never shows a webhook token: query and credentials are cut from URLs and the command line', () => {
    assert.equal(redactUrl('https://gotify.example/message?token=AbC'), 'https://gotify.example/message?…');
    assert.equal(redactUrl('https://u:pw@ntfy.example/zbm'), 'https://ntfy.example/zbm?…');
    assert.equal(redactUrl('http://127.0.0.1:8080/hook'), 'http://127.0.0.1:8080/hook');
    assert.deepEqual(redactArgv(['verify', '--notify-webhook', 'https://g.example/m?token=x', '--json']), [
      'verify',
      '--notify-webhook',
      'https://g.example/m?…',
      '--json',
    ]);
    assert.deepEqual(redactArgv(['--notify-webhook=https://g.example/m?token=x']), [
      '--notify-webhook=https://g.example/m?…',
    ]);
  });

  it('writes a mail for sendmail -t: one line per header, UTF-8 subjects as RFC 2047 words', () => {
    assert.equal(encodeHeader('plain ascii'), 'plain ascii');
    assert.equal(encodeHeader('two\r\nlines'), 'two lines');
    const enc = encodeHeader(`${'x'.repeat(60)} → ${'y'.repeat(60)}`);
    for (const w of enc.split('\n ')) assert.ok(w.length <= 75, w);
    const decoded = enc
      .split('\n ')
      .map((w) => Buffer.from(w.replace(/^=\?UTF-8\?B\?|\?=$/g, ''), 'base64').toString())
      .join('');
    assert.equal(decoded, `${'x'.repeat(60)} → ${'y'.repeat(60)}`);

    const n = buildNotification(outcome);
    const msg = mailMessage(
      n,
      ['a@example.com', 'b@example.com'],
      'zbm@pve1',
      new Date('2026-11-26T10:01:05Z'),
    );
    const [head = '', body = ''] = msg.split('\n\n');
    assert.match(head, /^From: zbm@pve1$/m);
    assert.match(head, /^To: a@example.com, b@example.com$/m);
    assert.match(head, /^Subject: =\?UTF-8\?B\?/m);
    assert.match(head, /^Date: Thu, 26 Nov 2026 10:01:05 \+0000$/m);
    assert.match(head, /^Content-Type: text\/plain; charset=utf-8$/m);
    assert.match(head, /^Auto-Submitted: auto-generated$/m);
    assert.ok(body.startsWith('zbm backup-pve on pve1 ended FAILED'));
  });

  it('accepts only plain mail addresses, local user names and http(s) URLs on the command line', () => {
    assert.deepEqual(mailAddresses('b@example.com', ['a@example.com']), ['a@example.com', 'b@example.com']);
    // sendmail -t delivers to a local user (and its aliases), as Proxmox VE mails root.
    assert.deepEqual(mailAddresses('root'), ['root']);
    for (const bad of ['a@b\nBcc: x@y', 'a@b, c@d', '<a@b>', '-oQ@x', 'root\nBcc: x@y', 'Root Admin', '']) {
      assert.throws(() => mailAddresses(bad), /not a mail address/, bad);
    }
    assert.deepEqual(webhookUrls('https://ntfy.sh/zbm'), ['https://ntfy.sh/zbm']);
    assert.throws(() => webhookUrls('ftp://x/y'), /http/);
    assert.throws(() => webhookUrls('not a url'), /http/);
  });
});
