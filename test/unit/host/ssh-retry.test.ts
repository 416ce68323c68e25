/**
 * A connection sshd turned away before authentication (MaxStartups, a refused port) is tried
 * again; anything that may have reached the remote shell is not. The classification against ssh's
 * own words, then run() and pipe() against a stand-in `ssh` on PATH that turns the first tries away.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { liveChildren } from '../../../src/host/children.ts';
import { CommandError } from '../../../src/host/failure.ts';
import { LocalHost } from '../../../src/host/local.ts';
import { type Endpoint, PipeError, pipe } from '../../../src/host/pipe.ts';
import { run } from '../../../src/host/process.ts';
import { backoffDelays, retriesFromEnv, turnedAway } from '../../../src/host/retry.ts';
import { splice } from '../../../src/host/splice.ts';
import { SshHost, type SshOptions } from '../../../src/host/ssh.ts';
import { countedSendArgv, streamBytes } from '../../../src/zfs/counted-send.ts';
import { hostileStrings } from '../../support/hostile.ts';

describe('turnedAway: which ssh failures are retried', () => {
  const retried: readonly (readonly [string, string, string])[] = [
    [
      'MaxStartups drop (reset)',
      'kex_exchange_identification: read: Connection reset by peer\r\nConnection reset by 192.0.2.10 port 22\r\n',
      'kex_exchange_identification: read: Connection reset by peer',
    ],
    [
      'MaxStartups drop (closed)',
      'kex_exchange_identification: Connection closed by remote host\r\nConnection closed by 192.0.2.10 port 22\r\n',
      'kex_exchange_identification: Connection closed by remote host',
    ],
    [
      'OpenSSH before 8.0',
      'ssh_exchange_identification: read: Connection reset by peer\r\n',
      'ssh_exchange_identification: read: Connection reset by peer',
    ],
    [
      'nothing listens',
      'ssh: connect to host backup1 port 22: Connection refused\r\n',
      'ssh: connect to host backup1 port 22: Connection refused',
    ],
    [
      'IPv6 peer',
      'kex_exchange_identification: read: Connection reset by peer\r\nConnection reset by 2001:db8::10 port 22\r\n',
      'kex_exchange_identification: read: Connection reset by peer',
    ],
  ];
  for (const [name, stderr, line] of retried) {
    it(`retries: ${name}`, () => assert.equal(turnedAway(stderr), line));
  }

  const notRetried: readonly (readonly [string, string])[] = [
    // Time-outs: that try already waited ConnectTimeout on a host that is down or hung.
    ['no answer to the SYN', 'ssh: connect to host 192.0.2.10 port 2222: Connection timed out\n'],
    [
      'no banner in time',
      'Connection timed out during banner exchange\r\nConnection to 192.0.2.10 port 22 timed out\r\n',
    ],
    ['DNS failure (configuration)', 'ssh: Could not resolve hostname backup1: Name or service not known\r\n'],
    [
      'DNS failure, temporary',
      'ssh: Could not resolve hostname backup1: Temporary failure in name resolution\r\n',
    ],
    ['key refused', 'root@backup1: Permission denied (publickey).\r\n'],
    ['password only, BatchMode', 'root@backup1: Permission denied (publickey,password).\r\n'],
    [
      'host key changed',
      '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n' +
        '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n' +
        '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n' +
        'Host key for backup1 has changed and you have requested strict checking.\r\n' +
        'Host key verification failed.\r\n',
    ],
    ['unknown host key', 'Host key verification failed.\r\n'],
    ['closed after the command ran', 'Connection to backup1 closed by remote host.\r\n'],
    ['closed with no sign of when', 'Connection closed by 192.0.2.10 port 22\r\n'],
    ['reset with no sign of when', 'Connection reset by 192.0.2.10 port 22\r\n'],
    ['dead link during the command', 'Timeout, server backup1 not responding.\r\n'],
    ['broken pipe during the command', 'client_loop: send disconnect: Broken pipe\r\n'],
    [
      'the remote command wrote first',
      'cannot receive incremental stream: destination has been modified\nkex_exchange_identification: read: Connection reset by peer\n',
    ],
    [
      'the remote command said it (nested ssh)',
      'zbm: pulling\nssh: connect to host backup2 port 22: Connection refused\n',
    ],
    [
      'too many keys offered',
      'Received disconnect from 192.0.2.10 port 22:2: Too many authentication failures\r\n',
    ],
    ['banner garbage', 'kex_exchange_identification: banner line contains invalid characters\r\n'],
    ['network unreachable', 'ssh: connect to host 192.0.2.10 port 22: Network is unreachable\r\n'],
    ['nothing at all', ''],
  ];
  for (const [name, stderr] of notRetried) {
    it(`does not retry: ${name}`, () => assert.equal(turnedAway(stderr), null));
  }
});

describe('backoffDelays', () => {
  it('grows from 2-5 s to 8-20 s, random within each range', () => {
    assert.deepEqual(
      backoffDelays(() => 0),
      [2000, 4000, 8000],
    );
    assert.deepEqual(
      backoffDelays(() => 0.999999),
      [5000, 10000, 20000],
    );
    assert.deepEqual(
      backoffDelays(() => 0.5),
      [3500, 7000, 14000],
    );
  });
});

describe('ZBM_SSH_RETRIES', () => {
  it('3 unless set; 0 to 3; anything else refused', () => {
    assert.equal(retriesFromEnv(undefined), 3);
    assert.equal(retriesFromEnv(''), 3);
    assert.equal(retriesFromEnv('0'), 0);
    assert.equal(retriesFromEnv('2'), 2);
    for (const bad of ['4', '-1', 'yes', ' 1', '1.5'])
      assert.throws(() => retriesFromEnv(bad), /^Error: ZBM_SSH_RETRIES=".*": expected 0, 1, 2 or 3$/);
  });
});

/**
 * A stand-in for ssh: turns the first $FAKE_SSH_TURN_AWAY connections to each destination away
 * with $FAKE_SSH_SAYS (exit 255), then runs the command as a remote shell would, then says
 * $FAKE_SSH_AFTER if set (exit 255, as a connection lost after the command).
 */
const FAKE_SSH = `#!/bin/sh
dest=
for a; do
  [ "$a" = "-O" ] && exit 0
  dest=$cmd; cmd=$a
done
count="$FAKE_SSH_STATE/$dest.count"
n=$(cat "$count" 2>/dev/null || echo 0)
echo $((n + 1)) > "$count"
if [ "$n" -lt "$FAKE_SSH_TURN_AWAY" ]; then
  printf '%b' "$FAKE_SSH_SAYS" >&2
  exit 255
fi
sh -c "$cmd"
status=$?
if [ -n "$FAKE_SSH_AFTER" ]; then printf '%b' "$FAKE_SSH_AFTER" >&2; exit 255; fi
exit $status
`;

const KEX =
  'kex_exchange_identification: read: Connection reset by peer\\r\\nConnection reset by 192.0.2.10 port 22\\r\\n';

describe('ssh commands turned away before authentication', () => {
  let dir = '';
  let state = '';
  const saved = { ...process.env };
  const retries: string[] = [];
  const hosts: SshHost[] = [];
  const host = (name: string, opts: SshOptions = {}) => {
    const h = new SshHost(name, {
      connectRetry: { delays: () => [0, 0, 0], onRetry: (m) => retries.push(m) },
      ...opts,
    });
    hosts.push(h);
    return h;
  };
  const attempts = (name: string) => Number(readFileSync(join(state, `${name}.count`), 'utf8'));
  const fake = (turnAway: number, says: string, after = '') => {
    process.env.FAKE_SSH_TURN_AWAY = String(turnAway);
    process.env.FAKE_SSH_SAYS = says;
    process.env.FAKE_SSH_AFTER = after;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'zbm-ssh-retry-'));
    writeFileSync(join(dir, 'ssh'), FAKE_SSH);
    chmodSync(join(dir, 'ssh'), 0o755);
    process.env.PATH = `${dir}:${process.env.PATH}`;
  });
  beforeEach(() => {
    retries.length = 0;
    state = mkdtempSync(join(dir, 'state-'));
    process.env.FAKE_SSH_STATE = state;
  });
  after(async () => {
    for (const h of hosts) await h.close();
    for (const k of ['PATH', 'FAKE_SSH_STATE', 'FAKE_SSH_TURN_AWAY', 'FAKE_SSH_SAYS', 'FAKE_SSH_AFTER']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('run: turned away twice at the key exchange, the command then runs exactly once', async () => {
    fake(2, KEX);
    const ran = join(state, 'ran');
    const res = await run(host('backup1'), ['sh', '-c', 'echo x >> "$1"; echo done', 'sh', ran]);
    assert.equal(res.stdout, 'done\n');
    assert.equal(readFileSync(ran, 'utf8'), 'x\n');
    assert.equal(attempts('backup1'), 3);
    assert.deepEqual(retries, [
      'backup1 turned the ssh connection away before sh could start (kex_exchange_identification: read: Connection reset by peer): retry 1 of 3 in 0.0 s',
      'backup1 turned the ssh connection away before sh could start (kex_exchange_identification: read: Connection reset by peer): retry 2 of 3 in 0.0 s',
    ]);
  });

  it('run: the command line reaches the shell intact on the try that runs it', async () => {
    fake(1, 'ssh: connect to host backup1 port 22: Connection refused\\r\\n');
    const names = hostileStrings(join(state, 'pwned'));
    const res = await run(host('backup1'), ['printf', '%s\\n', ...names]);
    assert.equal(res.stdout, names.map((n) => `${n}\n`).join(''));
    assert.equal(attempts('backup1'), 2);
    assert.equal(retries.length, 1);
  });

  it('run: "Permission denied (publickey)" is not retried', async () => {
    fake(9, 'root@backup1: Permission denied (publickey).\\r\\n');
    await assert.rejects(
      run(host('root@backup1'), ['zfs', 'list']),
      (err: unknown) =>
        err instanceof CommandError &&
        err.message === 'cannot reach root@backup1 over ssh: root@backup1: Permission denied (publickey).',
    );
    assert.equal(attempts('root@backup1'), 1);
    assert.deepEqual(retries, []);
  });

  it('run: a connection lost after the command ran is not retried', async () => {
    fake(0, '', 'Connection to backup1 closed by remote host.\\r\\n');
    const ran = join(state, 'ran');
    await assert.rejects(
      run(host('backup1'), ['sh', '-c', 'echo x >> "$1"', 'sh', ran]),
      /closed by remote host/,
    );
    assert.equal(readFileSync(ran, 'utf8'), 'x\n');
    assert.equal(attempts('backup1'), 1);
    assert.deepEqual(retries, []);
  });

  it('run: after three retries the refusal stands, as ssh said it', async () => {
    fake(9, KEX);
    await assert.rejects(
      run(host('backup1'), ['zfs', 'list']),
      /cannot reach backup1 over ssh: Connection reset by 192\.0\.2\.10 port 22$/,
    );
    assert.equal(attempts('backup1'), 4);
    assert.equal(retries.length, 3);
  });

  it('run: no retry without a retry policy', async () => {
    fake(9, KEX);
    await assert.rejects(run(host('backup1', { connectRetry: null }), ['true']), /cannot reach backup1/);
    assert.equal(attempts('backup1'), 1);
  });

  // Both paths of a stream: through node (pipe, with --bwlimit) and through the kernel (splice, the
  // sender counted). The sender writes its stream in one process after a second, as zfs send does:
  // a turned-away receiver has been retried by then.
  const paths = {
    pipe: (from: Endpoint, to: Endpoint) => pipe(from, to),
    splice: (from: Endpoint, to: Endpoint) =>
      splice({ ...from, argv: countedSendArgv(from.argv) }, to, { measure: streamBytes }),
  };
  const zeros = (n: number) => ['sh', '-c', `sleep 1; exec head -c ${n} /dev/zero`];
  for (const [name, move] of Object.entries(paths)) {
    it(`${name}: a sender turned away twice, then every byte arrives once`, async () => {
      fake(2, KEX);
      const out = join(state, 'out');
      const res = await move(
        { host: host('node1'), argv: zeros(100_000) },
        // Each try's receiver appends: the turned-away tries must have brought it nothing.
        { host: new LocalHost('here'), argv: ['sh', '-c', 'cat >> "$1"', 'sh', out] },
      );
      assert.equal(res.bytes, 100_000);
      assert.equal(readFileSync(out, 'utf8'), '\0'.repeat(100_000));
      assert.equal(attempts('node1'), 3);
      assert.equal(retries.length, 2);
      assert.match(
        retries[0] ?? '',
        /^node1 turned the ssh connection away before (sh|zbm-send) could start/,
      );
      assert.equal(liveChildren(), 0);
    });

    it(`${name}: a receiver turned away twice, then it receives the whole stream once`, async () => {
      fake(2, 'ssh: connect to host backup1 port 22: Connection refused\\r\\n');
      const out = join(state, 'out');
      const res = await move(
        { host: new LocalHost('here'), argv: zeros(100_000) },
        { host: host('backup1'), argv: ['sh', '-c', 'cat >> "$1"', 'sh', out] },
      );
      assert.equal(res.bytes, 100_000);
      assert.equal(readFileSync(out, 'utf8'), '\0'.repeat(100_000));
      assert.equal(attempts('backup1'), 3);
      assert.equal(retries.length, 2);
      assert.equal(liveChildren(), 0);
    });

    it(`${name}: a receiver lost after bytes passed is not retried, and the transfer fails`, async () => {
      fake(0, '', 'Connection to backup1 closed by remote host.\\r\\n');
      const out = join(state, 'out');
      await assert.rejects(
        move(
          { host: new LocalHost('here'), argv: ['head', '-c', '1000', '/dev/zero'] },
          { host: host('backup1'), argv: ['sh', '-c', 'cat >> "$1"', 'sh', out] },
        ),
        (err: unknown) =>
          err instanceof PipeError &&
          /receiver: on backup1: Connection to backup1 closed by remote host/.test(err.message),
      );
      assert.equal(attempts('backup1'), 1);
      assert.deepEqual(retries, []);
      assert.equal(liveChildren(), 0);
    });
  }

  it('pipe: a sender turned away for good stops the waiting receiver', async () => {
    fake(9, KEX);
    await assert.rejects(
      pipe(
        { host: host('node1'), argv: ['zfs', 'send', 'tank/a@1'] },
        { host: new LocalHost('here'), argv: ['sh', '-c', 'cat >/dev/null; sleep 599'] },
      ),
      (err: unknown) => err instanceof PipeError && /sender: cannot reach node1 over ssh/.test(err.message),
    );
    assert.equal(attempts('node1'), 4);
    assert.equal(liveChildren(), 0);
  });
});
