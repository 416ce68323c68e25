import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE, PRUNE_DEST_KEEP_ONE, REPLICATE, verifyCommand } from '../lab/commands.ts';
import {
  closeGate,
  gateReached,
  holds,
  it,
  openGate,
  prop,
  type Result,
  reset,
  sh,
  suite,
  tree,
  vm,
  zbm,
} from '../lab/lab.ts';
import { mailHeader, splitMails } from '../support/mail.ts';

/** The original design's verify command, word for word. */
const VERIFY = verifyCommand(2);

/** Restore drills on the backup server, their records in a directory of their own. */
const DRILL_STATE = '/var/tmp/zbm-drill-state';
const DRILL = ['drill', '--local-zfs-root', 'main/bak-zbm', '--state-dir', DRILL_STATE];

const CONF = '/etc/pve/nodes/pve1/qemu-server';
const METRICS_DIR = '/var/tmp/zbm-metrics';
const HOOK_PORT = 18080;
const HOOK_LOG = '/var/tmp/zbm-hook.log';
const MAIL_LOG = '/var/tmp/zbm-mail.log';
const SENDMAIL = '/usr/sbin/sendmail';

function lines(r: Result): string[] {
  return r.stdout.trim().split('\n');
}

/** The line of a check, by its state and subject; fails naming what verify printed. */
function line(r: Result, state: string, subject: string): string {
  const l = lines(r).find((x) => x.startsWith(`${state} ${subject}: `));
  assert.ok(l, `no "${state} ${subject}:" line in:\n${r.stdout}${r.stderr}`);
  return l;
}

interface JsonCheck {
  state: string;
  subject: string;
  message: string;
  figures: Record<string, number | string | null>;
}
function checksOf(r: Result): { state: string; checks: JsonCheck[] } {
  return JSON.parse(r.stdout) as { state: string; checks: JsonCheck[] };
}
function check(r: Result, subject: string): JsonCheck {
  const c = checksOf(r).checks.find((x) => x.subject === subject);
  assert.ok(c, `no check of ${subject} in ${r.stdout}`);
  return c;
}

interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format: every line is blank, a HELP or TYPE comment (TYPE
 * at most once per metric, before its samples) or `name{labels} value`; anything else fails.
 */
function parseProm(text: string): PromSample[] {
  assert.ok(text.endsWith('\n'), 'the file ends with a line feed');
  const typed = new Set<string>();
  const seen = new Set<string>();
  const out: PromSample[] = [];
  for (const l of text.slice(0, -1).split('\n')) {
    if (l === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(l);
    if (comment) {
      const [, kind, name = '', rest = ''] = comment;
      if (kind === 'TYPE') {
        assert.ok(!typed.has(name) && !seen.has(name), `TYPE of ${name} once, before its samples`);
        assert.match(rest, /^(gauge|counter|untyped|summary|histogram)$/);
        typed.add(name);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
    assert.ok(m, `not a sample line: ${JSON.stringify(l)}`);
    const [, name = '', labelText = '', raw = ''] = m;
    const labels: Record<string, string> = {};
    const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/gy;
    let consumed = 0;
    for (let lm = labelRe.exec(labelText); lm; lm = labelRe.exec(labelText)) {
      const [all, k = '', v = ''] = lm;
      labels[k] = v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      consumed += all.length;
      if (lm[3] === '') break;
    }
    assert.equal(consumed, labelText.length, `bad labels in ${JSON.stringify(l)}`);
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    assert.ok(raw === 'NaN' || !Number.isNaN(value), `bad value in ${JSON.stringify(l)}`);
    seen.add(name);
    out.push({ name, labels, value });
  }
  return out;
}

function sample(samples: PromSample[], name: string, labels: Record<string, string> = {}): number {
  const s = samples.find(
    (x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v),
  );
  assert.ok(s, `no sample ${name} ${JSON.stringify(labels)}`);
  return s.value;
}

async function vmNow(): Promise<number> {
  return Number((await sh('date +%s')).trim());
}

interface Hook {
  method: string;
  url: string;
  type: string;
  body: string;
}
/** The requests the webhook receiver got since HOOK_LOG was last emptied (made empty, never removed). */
async function hooks(): Promise<Hook[]> {
  return (await sh(`cat ${HOOK_LOG}`))
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Hook);
}

/** A webhook receiver in the VM: appends every request as one JSON line, answers 200. */
const HOOK_SERVER = `
import { createServer } from 'node:http';
import { appendFileSync } from 'node:fs';
const [port, file] = process.argv.slice(2);
createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    appendFileSync(file, JSON.stringify({ method: req.method, url: req.url, type: req.headers['content-type'], body }) + '\\n');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"id":1}');
  });
}).listen(Number(port), '127.0.0.1');
`;

/** A sendmail that keeps its arguments and the message, like a mail queue would. */
const SENDMAIL_SCRIPT = `#!/bin/sh
{ echo "ARGS: $*"; cat; echo "--END--"; } >> ${MAIL_LOG}
`;

suite('verify, alerts, metrics and status on real ZFS', 15, () => {
  let hookPid = '';
  let hadSendmail = false;

  before(async () => {
    await reset();
    // VM 102's sata0 is on dir storage: backup=0 is how Proxmox leaves a disk out on purpose.
    await sh(`sed -i 's/^sata0: .*/&,backup=0/' ${CONF}/102.conf`);
    for (let i = 0; i < 2; i++) {
      const r = await zbm('pve1', BACKUP_PVE);
      assert.equal(r.code, 0, r.stderr);
    }
    // No scrub: the pool is as fresh as a new backup server's (lab-reset made it).
    await sh(`mkdir -p ${METRICS_DIR}`);
  });

  after(async () => {
    if (hookPid) await vm(`kill ${hookPid}`);
    // The next test file's lab-reset rewrites /etc/pve and the pools; the rest is ours to undo.
    await vm(hadSendmail ? `mv -f ${SENDMAIL}.zbm-test ${SENDMAIL}` : `rm -f ${SENDMAIL}`);
    await vm('zpool destroy -f lab-m 2>/dev/null; rm -f /var/tmp/lab/m-a /var/tmp/lab/m-b');
  });

  it('the original verify command on a fresh pool with fresh backups: one OK line per dataset and guest, the pool never scrubbed OK by its age, exit 0', async () => {
    const r = await zbm('zbm-dest', VERIFY);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      lines(r)[0] ?? '',
      // Then the performance data an admin graphs: datasets, the stalest backup's age (critical over
      // the limit), the fewest snapshots (warning under the minimum), and for a pool never scrubbed
      // its age (warning over the scrub limit).
      /^ZBM OK - main\/bak-zbm on pve1: 0 critical, 0 warning, 0 unknown, \d+ ok \| datasets=9;;;0 backup_age=\d+s;;86400;0 snapshots=2;2:;;0 pool_age=\d+s;3024000;;0$/,
    );
    const datasets = (await tree('main/bak-zbm')).filter((n) => !/[@#]/.test(n) && n !== 'main/bak-zbm');
    assert.equal(datasets.length, 9);
    for (const d of datasets) {
      assert.match(line(r, 'OK', d), /: newest bak-zbm-\d{8}T\d{6}Z \d+ (s|min) old, 2 snapshots$/);
    }
    assert.match(line(r, 'OK', 'guest 100 (web)'), /newest backup bak-zbm-\S+ has all 4 disk\(s\)/);
    assert.match(line(r, 'OK', 'guest 103 (ct-files)'), /has all 2 disk\(s\)/);
    assert.match(
      line(r, 'OK', 'pool main'),
      /: ONLINE, never scrubbed: the pool is \d+ (s|min) old, younger than --max-scrub-age-days \(35\.0 d\)$/,
    );
  });

  it('a pool never scrubbed is a WARNING once older than --max-scrub-age-days, in the status line, --json and metrics alike; a scrub brings it back to OK', async () => {
    // The clock moved past the scrub limit: a limit of 30 s (a fraction of a day), and a wait on the
    // VM's own clock until the pool is older than that (usually none: the backups took longer).
    const limit = 30;
    const days = String(limit / 86400);
    const created = Number(await prop('main', 'creation'));
    assert.ok(created > 0);
    await sh(`while [ "$(date +%s)" -le ${created + limit} ]; do sleep 0.2; done`);
    const prom = `${METRICS_DIR}/zbm-verify-scrub.prom`;
    const job = { command: 'verify', zbm_job: 'zbm-verify-scrub' };
    const args = [...VERIFY, '--max-scrub-age-days', days, '--prometheus-textfile', prom];

    const before = await vmNow();
    const old = await zbm('zbm-dest', [...args, '--json']);
    const after = await vmNow();
    assert.equal(old.code, 1, old.stdout + old.stderr);
    const { state, perfdata } = JSON.parse(old.stdout) as { state: string; perfdata: string };
    assert.equal(state, 'WARNING');
    assert.deepEqual(
      checksOf(old)
        .checks.filter((c) => c.state !== 'OK')
        .map((c) => c.subject),
      ['pool main'],
    );
    const pool = check(old, 'pool main');
    assert.match(
      pool.message,
      /^never scrubbed, and the pool is \d+ (s|min) old, older than --max-scrub-age-days \(30 s\): run zpool scrub main$/,
    );
    // Its age is the pool's own: its root dataset's creation, as zfs shows it, to the time verify ran.
    const age = Number(pool.figures.pool_age_seconds);
    assert.ok(age > limit && age >= before - created && age <= after - created, `pool age ${age}`);
    assert.deepEqual(
      [pool.figures.health, pool.figures.scrub, pool.figures.scrub_age_seconds],
      ['ONLINE', 'never', null],
    );
    assert.match(perfdata, new RegExp(` pool_age=${age}s;${limit};;0$`));
    assert.doesNotMatch(perfdata, /scrub_age/);
    const m = parseProm(await sh(`cat ${prom}`));
    assert.equal(sample(m, 'zbm_pool_never_scrubbed', { ...job, pool: 'main' }), 1);
    assert.equal(sample(m, 'zbm_pool_age_seconds', { ...job, pool: 'main' }), age);
    assert.equal(sample(m, 'zbm_check_state', { ...job, subject: 'pool main' }), 1);
    assert.ok(!m.some((x) => x.name === 'zbm_pool_scrub_age_seconds'));

    await sh('zpool scrub -w main');
    const scrubbed = await zbm('zbm-dest', args);
    assert.equal(scrubbed.code, 0, scrubbed.stdout + scrubbed.stderr);
    assert.match(
      lines(scrubbed)[0] ?? '',
      /^ZBM OK - main\/bak-zbm on pve1: 0 critical, 0 warning, 0 unknown, \d+ ok \| datasets=9;;;0 backup_age=\d+s;;86400;0 snapshots=2;2:;;0 scrub_age=\d+s;30;;0$/,
    );
    assert.match(line(scrubbed, 'OK', 'pool main'), /: ONLINE, last scrub 0 days ago$/);
    const m2 = parseProm(await sh(`cat ${prom}`));
    assert.equal(sample(m2, 'zbm_pool_never_scrubbed', { ...job, pool: 'main' }), 0);
    const scrubAge = sample(m2, 'zbm_pool_scrub_age_seconds', { ...job, pool: 'main' });
    assert.ok(scrubAge >= 0 && scrubAge <= limit, `scrub age ${scrubAge}`);
    assert.ok(!m2.some((x) => x.name === 'zbm_pool_age_seconds'));
  });

  it('too few snapshots is a WARNING (exit 1), a backup older than the limit CRITICAL (exit 2)', async () => {
    const few = await zbm('zbm-dest', [...VERIFY, '--min-snapshots', '20']);
    assert.equal(few.code, 1, few.stdout);
    assert.match(lines(few)[0] ?? '', /^ZBM WARNING - .*: 0 critical, 9 warning/);
    assert.match(line(few, 'WARNING', 'main/bak-zbm/vm-100-disk-0'), /2 snapshots, fewer than 20/);

    // verify reads each snapshot's creation time from ZFS: with a 3.6 s limit, backups that are
    // more than 4 s old are stale.
    const newest = Number(
      await sh('zfs list -H -p -t snapshot -o creation -s creation main/bak-zbm/vm-100-disk-0 | tail -n 1'),
    );
    assert.ok(newest > 0);
    await sh(`while [ "$(date +%s)" -lt ${newest + 4} ]; do sleep 0.2; done`);
    const stale = await zbm('zbm-dest', [...VERIFY, '--max-age-hours', '0.001', '--json']);
    assert.equal(stale.code, 2, stale.stdout);
    assert.equal(checksOf(stale).state, 'CRITICAL');
    const c = check(stale, 'main/bak-zbm/vm-100-disk-0');
    assert.equal(c.state, 'CRITICAL');
    assert.match(
      c.message,
      /^newest backup is \d+ (s|min) old, limit 4 s: the job that sends it stopped or fails/,
    );
    assert.ok(Number(c.figures.age_seconds) >= 4);
  });

  it('a disk missing from the newest backup of a guest is reported, so is a backup dataset that is gone', async () => {
    // sata0 back in the backup set: backup-pve warns that it cannot take it, the manifest says so.
    await sh(`sed -i 's/,backup=0$//' ${CONF}/102.conf`);
    const prom = `${METRICS_DIR}/zbm-backup.prom`;
    const b = await zbm('pve1', [...BACKUP_PVE, '--vmid', '102', '--prometheus-textfile', prom]);
    assert.equal(b.code, 0, b.stderr);
    const r = await zbm('zbm-dest', VERIFY);
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      line(r, 'WARNING', 'guest 102 (noagent)'),
      /the newest backup bak-zbm-\S+ lacks disk\(s\): sata0 \(storage "local" is not a zfspool storage/,
    );

    const m = parseProm(await sh(`cat ${prom}`));
    const job = { command: 'backup-pve', zbm_job: 'zbm-backup' };
    assert.equal(sample(m, 'zbm_last_exit_code', job), 0);
    assert.ok(Math.abs(sample(m, 'zbm_last_success_timestamp_seconds', job) - (await vmNow())) < 60);
    assert.ok(sample(m, 'zbm_problems', { ...job, level: 'warning' }) >= 1);
    assert.equal(sample(m, 'zbm_problems', { ...job, level: 'error' }), 0);
    assert.equal(sample(m, 'zbm_guests', { ...job, result: 'ok' }), 1);
    assert.ok(sample(m, 'zbm_bytes_sent', job) > 0);

    await sh('zfs rename main/bak-zbm/vm-100-disk-1 main/bak-zbm/moved-away');
    try {
      const gone = await zbm('zbm-dest', VERIFY);
      assert.equal(gone.code, 2, gone.stdout);
      assert.match(
        line(gone, 'CRITICAL', 'guest 100 (web)'),
        /disk\(s\) of the newest backup bak-zbm-\S+ are gone here: scsi1 main\/bak-zbm\/vm-100-disk-1/,
      );
    } finally {
      await sh('zfs rename main/bak-zbm/moved-away main/bak-zbm/vm-100-disk-1');
    }
  });

  it('alerts: a failed backup-pve reaches sendmail and a webhook, naming host, guest and dataset', async () => {
    hadSendmail = (await vm(`test -e ${SENDMAIL}`)).code === 0;
    if (hadSendmail) await sh(`mv ${SENDMAIL} ${SENDMAIL}.zbm-test`);
    await sh(
      `cat > ${SENDMAIL} && chmod 755 ${SENDMAIL} && rm -f ${MAIL_LOG} && : > ${HOOK_LOG}`,
      'zbm-dest',
      SENDMAIL_SCRIPT,
    );
    await sh('cat > /var/tmp/zbm-hook.mjs', 'zbm-dest', HOOK_SERVER);
    hookPid = (
      await sh(
        `nohup node /var/tmp/zbm-hook.mjs ${HOOK_PORT} ${HOOK_LOG} </dev/null >/dev/null 2>&1 & echo $!`,
      )
    ).trim();
    await sh(
      `for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/${HOOK_PORT}) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`,
    );

    // A snapshot that is not zbm's on the backup server: the target diverged, the backup fails.
    await sh('zfs snapshot main/bak-zbm/vm-102-disk-0@intruder');
    const prom = `${METRICS_DIR}/zbm-backup.prom`;
    const lastSuccess = sample(parseProm(await sh(`cat ${prom}`)), 'zbm_last_success_timestamp_seconds');
    const url = `http://127.0.0.1:${HOOK_PORT}/message?token=s3cret`;
    const failed = await zbm('pve1', [
      ...BACKUP_PVE,
      '--vmid',
      '102',
      '--notify-mail',
      'ops@example.com',
      '--notify-webhook',
      url,
      '--prometheus-textfile',
      prom,
    ]);
    await sh('zfs destroy main/bak-zbm/vm-102-disk-0@intruder');
    assert.equal(failed.code, 1, failed.stderr);

    const mail = await sh(`cat ${MAIL_LOG}`);
    const mails = splitMails(mail);
    assert.equal(mails.length, 1, 'one mail');
    assert.match(mail, /^ARGS: -t -oi\n/);
    const text = mails[0] ?? '';
    assert.equal(mailHeader(text, 'To'), 'ops@example.com');
    assert.equal(mailHeader(text, 'From'), 'zbm@pve1');
    assert.match(mailHeader(text, 'Content-Type'), /text\/plain; charset=utf-8/);
    const subject = mailHeader(text, 'Subject');
    assert.match(subject, /^zbm backup-pve on pve1: FAILED \(\d+ problems?\): guest 102 \(noagent\)/);
    assert.match(text, /main\/bak-zbm\/vm-102-disk-0/);
    assert.match(text, /exit code 1/);
    assert.doesNotMatch(text, /s3cret/);

    const got = await hooks();
    assert.equal(got.length, 1);
    const [h] = got;
    assert.equal(h?.method, 'POST');
    assert.equal(h?.url, '/message?token=s3cret');
    assert.equal(h?.type, 'application/json');
    const body = JSON.parse(h?.body ?? '{}') as {
      title: string;
      message: string;
      priority: number;
      host: string;
      command: string;
      exitCode: number;
      status: string;
      problems: { level: string; text: string }[];
    };
    assert.equal(body.title, subject);
    assert.equal(body.priority, 8);
    assert.deepEqual(
      [body.host, body.command, body.exitCode, body.status],
      ['pve1', 'backup-pve', 1, 'failure'],
    );
    assert.ok(body.problems.some((p) => p.level === 'error' && /main\/bak-zbm\/vm-102-disk-0/.test(p.text)));
    assert.doesNotMatch(body.message, /s3cret/);

    // The failed run keeps the time of the last success from the previous file.
    const m = parseProm(await sh(`cat ${prom}`));
    const job = { command: 'backup-pve', zbm_job: 'zbm-backup' };
    assert.equal(sample(m, 'zbm_last_exit_code', job), 1);
    assert.equal(sample(m, 'zbm_last_success_timestamp_seconds', job), lastSuccess);
    assert.ok(sample(m, 'zbm_problems', { ...job, level: 'error' }) >= 1);
    assert.equal(sample(m, 'zbm_notification_failures', job), 0);
  });

  it('alerts: verify notifies a warning unless told to notify failures only; its metrics per dataset', async () => {
    await sh(`: > ${HOOK_LOG}`);
    const url = `http://127.0.0.1:${HOOK_PORT}/hook`;
    const quiet = await zbm('zbm-dest', [
      ...VERIFY,
      '--min-snapshots',
      '20',
      '--notify-webhook',
      url,
      '--notify-on',
      'failure',
    ]);
    assert.equal(quiet.code, 1);
    assert.deepEqual(await hooks(), []);

    const prom = `${METRICS_DIR}/zbm-verify.prom`;
    const r = await zbm('zbm-dest', [
      ...VERIFY,
      '--min-snapshots',
      '20',
      '--notify-webhook',
      url,
      '--prometheus-textfile',
      prom,
    ]);
    assert.equal(r.code, 1);
    const [h] = await hooks();
    const body = JSON.parse(h?.body ?? '{}') as { title: string; priority: number; status: string };
    assert.match(
      body.title,
      /^zbm verify on pve1: WARNING \(\d+ problems\): WARNING main\/bak-zbm\/\S+: \d+ snapshots, fewer than 20/,
    );
    assert.equal(body.status, 'warning');
    assert.equal(body.priority, 5);

    const m = parseProm(await sh(`cat ${prom}`));
    const job = { command: 'verify', zbm_job: 'zbm-verify' };
    assert.equal(sample(m, 'zbm_last_exit_code', job), 1);
    assert.equal(sample(m, 'zbm_snapshots', { ...job, dataset: 'main/bak-zbm/vm-100-disk-0' }), 2);
    const age = sample(m, 'zbm_newest_snapshot_age_seconds', {
      ...job,
      dataset: 'main/bak-zbm/vm-100-disk-0',
    });
    assert.ok(age > 0 && age < 3600, `age ${age}`);
    assert.equal(sample(m, 'zbm_pool_healthy', { ...job, pool: 'main' }), 1);
    assert.equal(sample(m, 'zbm_check_state', { ...job, subject: 'main/bak-zbm/vm-100-disk-0' }), 1);
  });

  it('replication lag: the newest snapshot in common with the replica, and zbm status on both tiers', async () => {
    const rep = await zbm('zbm-dest', REPLICATE);
    assert.equal(rep.code, 0, rep.stderr);
    const replicated = (await tree('main/bak-zbm/vm-100-disk-0')).filter((n) => n.includes('@')).at(-1) ?? '';
    const replicatedAt = Number(await prop(replicated, 'creation'));
    // The next backup at least 30 s newer than the replicated one, so that a limit between the two
    // ages tells them apart however fast the machine runs verify (under emulation, long past).
    await sh(`while [ "$(date +%s)" -lt ${replicatedAt + 30} ]; do sleep 0.2; done`);
    const b = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100']);
    assert.equal(b.code, 0, b.stderr);
    const newest = (await tree('main/bak-zbm/vm-100-disk-0')).filter((n) => n.includes('@')).at(-1) ?? '';
    assert.notEqual(newest, replicated);
    const newestAt = Number(await prop(newest, 'creation'));

    const remote = ['--remote', 'zbm-replica', '--remote-zfs-root', 'main/bak-zbm'];
    const r = await zbm('zbm-dest', [...VERIFY, ...remote, '--json']);
    // WARNING: the newest backup of guest 102 still lacks its sata0 (the test above).
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(
      checksOf(r)
        .checks.filter((c) => c.state !== 'OK')
        .map((c) => c.subject),
      ['guest 102 (noagent)'],
    );
    const lag = check(r, 'main/bak-zbm/vm-100-disk-0 → zbm-replica');
    assert.equal(lag.state, 'OK');
    assert.equal(lag.figures.common, replicated.split('@')[1]);
    const fresh = Number(check(r, 'main/bak-zbm/vm-100-disk-0').figures.age_seconds);
    const behind = Number(lag.figures.lag_seconds);
    // Both ages from one clock reading: the lag is exactly how much older the replicated backup is.
    assert.equal(behind - fresh, newestAt - replicatedAt, `lag ${behind} s, newest ${fresh} s old`);

    // A limit between the two ages as they will be when verify runs: the backup is fresh, its copy
    // on the replica is not.
    const now = Number((await sh('date +%s')).trim());
    const hours = ((now - (newestAt + replicatedAt) / 2) / 3600).toFixed(6);
    const tight = await zbm('zbm-dest', [...VERIFY, ...remote, '--max-age-hours', hours]);
    assert.equal(tight.code, 2, tight.stdout);
    assert.match(
      line(tight, 'OK', 'main/bak-zbm/vm-100-disk-0'),
      new RegExp(`newest ${newest.split('@')[1]}`),
    );
    assert.match(
      line(tight, 'CRITICAL', 'main/bak-zbm/vm-100-disk-0 → zbm-replica'),
      new RegExp(`newest copy on zbm-replica is .* old \\(${replicated.split('@')[1]}\\), limit`),
    );

    const st = await zbm('zbm-dest', ['status', '--local-zfs-root', 'main/bak-zbm', ...remote, '--json']);
    assert.equal(st.code, 0, st.stderr);
    const rows = (
      JSON.parse(st.stdout) as {
        guests: {
          vmid: number | null;
          name: string;
          disks: string[];
          newest: string;
          backups: number;
          usedBytes: number;
          replicationLagSeconds: number | null;
        }[];
      }
    ).guests;
    assert.deepEqual(
      rows.map((g) => [g.vmid, g.name, g.disks.length]),
      [
        [100, 'web', 4],
        [101, 'db', 1],
        [102, 'noagent', 1],
        [103, 'ct-files', 2],
        [104, 'ct-legacy', 1],
      ],
    );
    const g100 = rows[0];
    assert.equal(g100?.newest, newest.split('@')[1]);
    assert.equal(g100?.backups, 3);
    assert.ok((g100?.usedBytes ?? 0) > 0);
    assert.ok((g100?.replicationLagSeconds ?? 0) >= behind);
    const text = await zbm('zbm-dest', ['status', '--local-zfs-root', 'main/bak-zbm', ...remote]);
    assert.match(text.stdout, /^vmid +name +disks +newest backup +age +backups +used +lag to zbm-replica$/m);
    assert.match(text.stdout, /^100 +web +4 +bak-zbm-\S+ +\S+ (s|min) +3 +\S+ \S+ +\S+ (s|min)$/m);

    // On the replica: the same guests, named from the manifests replicate copied along.
    const there = await zbm('zbm-replica', ['status', '--local-zfs-root', 'main/bak-zbm']);
    assert.equal(there.code, 0, there.stderr);
    assert.match(there.stdout, /^103 +ct-files +2 /m);
  });

  it('--pve on the node: a guest never backed up and a disk added since the last backup are CRITICAL', async () => {
    await sh(
      [
        'zfs create -s -V 8M rpool/data/vm-105-disk-0',
        'zfs create -s -V 8M rpool/data/vm-100-disk-5',
        `printf 'name: new-vm\\nscsi0: local-zfs:vm-105-disk-0,size=8M\\n' > ${CONF}/105.conf`,
        `echo 'scsi3: local-zfs:vm-100-disk-5,size=8M' >> ${CONF}/100.conf`,
        `jq -c '.ids["105"] = {"node":"pve1","type":"qemu","version":1}' /etc/pve/.vmlist > /tmp/vmlist && mv /tmp/vmlist /etc/pve/.vmlist`,
      ].join(' && '),
    );
    const args = ['verify', '--pve', '--remote', 'zbm-dest', '--remote-zfs-root', 'main/bak-zbm'];
    const r = await zbm('pve1', [...args, '--local-zfs-root', 'rpool/data']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      lines(r)[0] ?? '',
      /^ZBM CRITICAL - guests of pve1 on zbm-dest:main\/bak-zbm: 2 critical, 1 warning/,
    );
    assert.match(
      line(r, 'CRITICAL', 'guest 105 (new-vm)'),
      /never backed up: no bak-zbm-\* snapshot of scsi0 \(main\/bak-zbm\/vm-105-disk-0\) on zbm-dest/,
    );
    assert.match(
      line(r, 'CRITICAL', 'guest 100 (web)'),
      /no backup of scsi3 \(main\/bak-zbm\/vm-100-disk-5\) on zbm-dest/,
    );
    assert.match(line(r, 'WARNING', 'guest 102 (noagent)'), /not backed up by zbm: sata0 .*set backup=0/);
    for (const g of ['guest 101 (db)', 'guest 103 (ct-files)', 'guest 104 (ct-legacy)']) line(r, 'OK', g);
    line(r, 'OK', 'pool main on zbm-dest');

    // What backup-pve would not back up is not checked either; nor the pool, if told so.
    const some = await zbm('pve1', [...args, '--exclude', '100,102,105', '--no-pool-checks']);
    assert.equal(some.code, 0, some.stdout + some.stderr);
    assert.doesNotMatch(some.stdout, /pool main|scrub_age|pool_age/);
    assert.match(lines(some)[0] ?? '', /^ZBM OK - .*: 0 critical, 0 warning, 0 unknown, 3 ok \| /);
  });

  it('a degraded pool is CRITICAL, naming what zpool says to do', async () => {
    await sh(
      [
        'truncate -s 128M /var/tmp/lab/m-a /var/tmp/lab/m-b',
        'zpool create -f -o cachefile=none lab-m mirror /var/tmp/lab/m-a /var/tmp/lab/m-b',
        'zfs create -p lab-m/bak/vm-900-disk-0',
        'zfs snapshot lab-m/bak/vm-900-disk-0@bak-zbm-20261126T000000Z',
        'zpool scrub -w lab-m',
      ].join(' && '),
    );
    const args = ['verify', '--local-zfs-root', 'lab-m/bak', '--max-age-days', '3650'];
    const ok = await zbm('zbm-dest', args);
    assert.equal(ok.code, 0, ok.stdout);
    line(ok, 'OK', 'pool lab-m');
    await sh('zpool offline lab-m /var/tmp/lab/m-b');
    const r = await zbm('zbm-dest', args);
    assert.equal(r.code, 2, r.stdout);
    assert.match(
      line(r, 'CRITICAL', 'pool lab-m'),
      /pool is DEGRADED: .*taken offline.*action: Online the device/,
    );
  });

  it('drill: good guests pass with --full-read and their metric is written; verify --max-drill-age-days warns about the guests never drilled', async () => {
    await sh(`rm -rf ${DRILL_STATE}`);
    const prom = `${METRICS_DIR}/zbm-drill.prom`;
    const r = await zbm('zbm-dest', [
      ...DRILL,
      '--vmid',
      '100,103,104',
      '--full-read',
      '--prometheus-textfile',
      prom,
      '--json',
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = checksOf(r);
    assert.equal(report.state, 'OK');
    assert.deepEqual(
      report.checks.map((c) => [c.state, c.subject]),
      [
        ['OK', 'guest 100 (web)'],
        ['OK', 'guest 103 (ct-files)'],
        ['OK', 'guest 104 (ct-legacy)'],
      ],
    );
    const newest100 = (await tree('main/bak-zbm/vm-100-disk-0')).filter((n) => n.includes('@')).at(-1) ?? '';
    assert.match(
      check(r, 'guest 100 (web)').message,
      new RegExp(
        `^${newest100.split('@')[1]}: 4 disk\\(s\\) present with their recorded guids, the saved config names them, every block read back without a checksum error \\(\\S+ \\S+\\)$`,
      ),
    );
    assert.match(check(r, 'guest 103 (ct-files)').message, /: 2 disk\(s\) present .* every block read back/);

    const now = await vmNow();
    const m = parseProm(await sh(`cat ${prom}`));
    const job = { command: 'drill', zbm_job: 'zbm-drill' };
    assert.equal(sample(m, 'zbm_last_exit_code', job), 0);
    for (const vmid of ['100', '103', '104']) {
      const at = sample(m, 'zbm_drill_last_success_timestamp_seconds', { ...job, vmid });
      assert.ok(Math.abs(at - now) < 120, `guest ${vmid} drilled at ${at}, now ${now}`);
    }
    assert.ok(
      !m.some((x) => x.name === 'zbm_drill_last_success_timestamp_seconds' && x.labels.vmid === '101'),
      'no success of a guest never drilled',
    );

    const v = await zbm('zbm-dest', [
      ...VERIFY,
      '--max-drill-age-days',
      '1',
      '--state-dir',
      DRILL_STATE,
      '--no-pool-checks',
      '--json',
    ]);
    // WARNING: the guests never drilled (and guest 102's newest backup still lacks its sata0).
    assert.equal(v.code, 1, v.stdout + v.stderr);
    const drills = checksOf(v).checks.filter((c) => c.subject.startsWith('drill of '));
    assert.deepEqual(
      drills.map((c) => [c.state, c.subject]),
      [
        ['OK', 'drill of guest 100 (web)'],
        ['WARNING', 'drill of guest 101 (db)'],
        ['WARNING', 'drill of guest 102 (noagent)'],
        ['OK', 'drill of guest 103 (ct-files)'],
        ['OK', 'drill of guest 104 (ct-legacy)'],
      ],
    );
    assert.equal(
      check(v, 'drill of guest 101 (db)').message,
      'never passed a restore drill on this host: run zbm drill',
    );
    assert.match(check(v, 'drill of guest 100 (web)').message, /^last successful restore drill 0\.0 d ago$/);
  });

  it('drill: a disk snapshot gone from the restore point and a saved config that does not parse are CRITICAL (exit 2), naming guest and cause', async () => {
    const newest101 = (await tree('main/bak-zbm/vm-101-disk-0')).filter((n) => n.includes('@')).at(-1) ?? '';
    const snap102 = (
      (await tree('main/bak-zbm/vm-102-disk-0')).filter((n) => n.includes('@')).at(-1) ?? ''
    ).split('@')[1];
    assert.ok(newest101 && snap102);
    const conf102 = `/root/backups_metadata/102/${snap102}.conf`;
    // Both undone afterwards: the snapshot renamed away (not destroyed: it may be held as a base).
    await sh(
      `zfs rename ${newest101} ${newest101}-away && cp -p ${conf102} ${conf102}.orig && echo 'this is not a config line' >> ${conf102}`,
    );
    try {
      const r = await zbm('zbm-dest', [...DRILL, '--vmid', '101,102']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(
        lines(r)[0] ?? '',
        /^ZBM CRITICAL - restore drill of 2 guest\(s\) on pve1:main\/bak-zbm: 2 critical, 0 warning, 0 unknown, 0 ok \| guests=2;;;0 failed=2;;0;0$/,
      );
      assert.equal(
        line(r, 'CRITICAL', 'guest 101 (db)'),
        `CRITICAL guest 101 (db): ${newest101.split('@')[1]}: scsi0: ${newest101} does not exist on pve1`,
      );
      assert.match(
        line(r, 'CRITICAL', 'guest 102 (noagent)'),
        new RegExp(
          `: ${snap102}: the saved config does not parse: config line \\d+: expected "key: value": "this is not a config line"$`,
        ),
      );
    } finally {
      await sh(`zfs rename ${newest101}-away ${newest101} && mv -f ${conf102}.orig ${conf102}`);
    }
  });

  it("drill: the restore point being read is held, so a prune meanwhile keeps it and says why; a second drill meanwhile does nothing (UNKNOWN); a killed drill's hold goes with the next drill", async () => {
    const ds = 'main/bak-zbm/subvol-104-disk-0';
    const [older] = (await tree(ds)).filter((n) => n.includes('@'));
    assert.ok(older && (await tree(ds)).filter((n) => n.includes('@')).length >= 2, 'an older restore point');
    const short = older.split('@')[1] ?? '';
    const drillOlder = shellJoin([...DRILL, '--vmid', '104', '--snapshot', short, '--full-read']);
    // The drill's read (zfs send) waits at the gate: it is under way for as long as the test needs.
    await closeGate('send');
    let pid = '';
    try {
      pid = (await sh(`zbm ${drillOlder} >/tmp/drill-a.out 2>&1 </dev/null & echo $!`)).trim();
      await gateReached('send');
      assert.ok((await holds(ds)).includes(`${older}\tzbm-drill`), 'held while read');

      const second = await zbm('zbm-dest', [...DRILL, '--vmid', '100']);
      assert.equal(second.code, 3, second.stdout + second.stderr);
      assert.match(
        second.stdout,
        new RegExp(
          `^ZBM UNKNOWN - another restore drill of pve1:main/bak-zbm is running: zbm pid ${pid} \\(drill of main/bak-zbm, since `,
        ),
      );

      const prune = await zbm('zbm-dest', PRUNE_DEST_KEEP_ONE);
      assert.equal(prune.code, 0, prune.stdout + prune.stderr);
      // Kept for the hold alone: the rules (--keep-last 1) would destroy it.
      assert.match(prune.stdout, new RegExp(`\\n  kept [^\\n]*${short}[^\\n]*: held by zbm-drill\\n`));
      assert.ok((await tree(ds)).includes(older), 'the restore point being read is still there');

      // Killed at the gate, as a reboot or the OOM killer would: its hold stays behind.
      await sh(`kill -KILL ${pid}`);
    } finally {
      await openGate('send');
    }
    assert.ok((await holds(ds)).includes(`${older}\tzbm-drill`), 'a killed drill leaves its hold');
    const next = await zbm('zbm-dest', [...DRILL, '--vmid', '104', '--snapshot', short, '--full-read']);
    assert.equal(next.code, 0, next.stdout + next.stderr);
    assert.match(
      next.stderr,
      new RegExp(`released the hold \\(zbm-drill\\) an interrupted drill left on ${older}`),
    );
    assert.ok(!(await holds(ds)).some((h) => h.endsWith('\tzbm-drill')), 'no drill hold left');
  });
});
