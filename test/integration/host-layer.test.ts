import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { pipe } from '../../src/host/pipe.ts';
import { run } from '../../src/host/process.ts';
import { SshHost } from '../../src/host/ssh.ts';
import { receiveArgv, sendArgv } from '../../src/zfs/argv.ts';
import { Zfs } from '../../src/zfs/zfs.ts';
import { it, reset, sh, suite, tree, vm, zvolHash } from '../lab/lab.ts';
import { hostileStrings } from '../support/hostile.ts';

/**
 * The project's own host and ZFS layers, driven from this machine against the lab VM through the
 * system ssh: two Host objects stand for two machines, and a stream goes remote → remote through here.
 */
function labHost(): SshHost {
  return new SshHost('127.0.0.1', {
    options: [
      `Port=${process.env.LAB_SSH_PORT}`,
      `IdentityFile=${process.env.LAB_SSH_KEY}`,
      'User=root',
      'IdentitiesOnly=yes',
      'StrictHostKeyChecking=no',
      'UserKnownHostsFile=/dev/null',
      'LogLevel=ERROR',
      'Ciphers=aes128-gcm@openssh.com',
    ],
  });
}

suite('host and ZFS layers against real OpenZFS', 5, () => {
  let a: SshHost;
  let b: SshHost;
  before(async () => {
    await reset({ empty: true });
    a = labHost();
    b = labHost();
  });
  after(async () => {
    await a?.close();
    await b?.close();
  });

  it('creates, sends and receives a zvol snapshot, full then incremental, remote to remote', async () => {
    const src = new Zfs(a);
    const dst = new Zfs(b);
    await run(a, ['zfs', 'create', '-s', '-V', '16M', 'rpool/data/vm-900-disk-0']);
    await run(a, ['udevadm', 'settle']);
    await sh('dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-900-disk-0 bs=1M count=4 status=none');
    await src.snapshot(['rpool/data/vm-900-disk-0@s1']);
    await dst.create('main/smoke');

    const full = await pipe(
      { host: a, argv: sendArgv({ snapshot: 'rpool/data/vm-900-disk-0@s1' }) },
      { host: b, argv: receiveArgv({ target: 'main/smoke/vm-900-disk-0' }) },
    );
    await sh('dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-900-disk-0 bs=1M count=1 seek=8 status=none');
    await src.snapshot(['rpool/data/vm-900-disk-0@s2']);
    const inc = await pipe(
      {
        host: a,
        argv: sendArgv({ snapshot: 'rpool/data/vm-900-disk-0@s2', from: 'rpool/data/vm-900-disk-0@s1' }),
      },
      { host: b, argv: receiveArgv({ target: 'main/smoke/vm-900-disk-0' }) },
    );

    assert.deepEqual(await tree('main/smoke'), [
      'main/smoke',
      'main/smoke/vm-900-disk-0',
      'main/smoke/vm-900-disk-0@s1',
      'main/smoke/vm-900-disk-0@s2',
    ]);
    assert.ok(full.bytes > 4 * 1024 * 1024, `full stream ${full.bytes}`);
    assert.ok(inc.bytes > 1024 * 1024 && inc.bytes < 1.5 * 1024 * 1024, `incremental stream ${inc.bytes}`);
    assert.equal(await zvolHash('main/smoke/vm-900-disk-0'), await zvolHash('rpool/data/vm-900-disk-0'));

    const listed = await dst.list({ roots: ['main/smoke'] });
    const vol = listed.find((d) => d.name === 'main/smoke/vm-900-disk-0');
    const srcVol = (await src.list({ roots: ['rpool/data/vm-900-disk-0'] }))[0];
    assert.equal(vol?.type, 'volume');
    assert.deepEqual(
      vol?.snapshots.map((s) => s.guid),
      srcVol?.snapshots.map((s) => s.guid),
      'guids survive send/receive',
    );
    const estimate = await src.estimateSend({
      snapshot: 'rpool/data/vm-900-disk-0@s2',
      from: 'rpool/data/vm-900-disk-0@s1',
    });
    assert.ok(
      Math.abs(estimate.bytes - inc.bytes) < 256 * 1024,
      `estimate ${estimate.bytes} vs ${inc.bytes}`,
    );
  });

  it('passes hostile arguments through ssh unchanged, executing nothing on the remote side', async () => {
    await sh('rm -f /tmp/zbm-pwned');
    const hostile = hostileStrings('/tmp/zbm-pwned');
    const { stdout } = await run(a, ['printf', '%s\\0', ...hostile]);
    assert.deepEqual(stdout.split('\0').slice(0, -1), hostile);
    assert.equal((await vm('test -e /tmp/zbm-pwned')).code, 1, 'a hostile argument executed a command');
  });

  it('handles dataset names with spaces and odd characters ZFS allows', async () => {
    const zfs = new Zfs(a);
    const odd = 'main/odd name:with.dots_and-dashes';
    await zfs.create(odd);
    await zfs.snapshot([`${odd}@snap one`]);
    const [d] = await zfs.list({ roots: [odd] });
    assert.equal(d?.name, odd);
    assert.deepEqual(
      d?.snapshots.map((s) => s.short),
      ['snap one'],
    );
  });

  it('retries an ssh connection refused before authentication: sshd comes up on the port after the refusal', async () => {
    // zbm runs on the VM as an administrator would, against an alias whose port nothing listens on
    // yet; a second sshd starts on it only once zbm has logged its first retry, so the refusal is
    // real (ssh's own "Connection refused") and only the retry can bring the two together.
    const late = `printf 'Host zbm-late\\n    HostName 127.0.0.1\\n    Port 2222\\n    User root\\n    IdentityFile /root/.ssh/id_ed25519\\n    IdentitiesOnly yes\\n    StrictHostKeyChecking no\\n    UserKnownHostsFile /dev/null\\n    LogLevel ERROR\\n    KexAlgorithms curve25519-sha256\\n\\n'`;
    const out = await sh(`set -e
      rm -f /tmp/late.out /tmp/late.err
      zfs create -p main/late
      mkdir -p /tmp/zbm-late-meta
      grep -q zbm-late /root/.ssh/config || { ${late}; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config
      if (exec 3<>/dev/tcp/127.0.0.1/2222) 2>/dev/null; then echo 'port 2222 is taken' >&2; exit 1; fi
      zbm list-backups --remote zbm-late --remote-zfs-root main/late --remote-metadata-dir /tmp/zbm-late-meta --json >/tmp/late.out 2>/tmp/late.err &
      pid=$!
      for i in $(seq 600); do grep -q 'retry 1 of 3' /tmp/late.err && break; sleep 0.1; done
      /usr/sbin/sshd -p 2222 -o PidFile=/run/zbm-late-sshd.pid
      code=0; wait $pid || code=$?
      kill "$(cat /run/zbm-late-sshd.pid)"
      echo "exit=$code"`);
    try {
      const stderr = await sh('cat /tmp/late.err');
      assert.equal(out.trim(), 'exit=0', stderr);
      assert.match(
        stderr,
        /^zbm-late turned the ssh connection away before .+ could start \(connect to host 127\.0\.0\.1 port 2222: Connection refused\): retry 1 of 3 in \d+\.\d s$/m,
      );
      assert.deepEqual(JSON.parse(await sh('cat /tmp/late.out')), {
        host: 'zbm-late',
        root: 'main/late',
        metadataDir: '/tmp/zbm-late-meta',
        backups: [],
      });
    } finally {
      await sh(
        "sed -i '/^Host zbm-late$/,/^$/d' /root/.ssh/config; zfs destroy -r main/late; rm -rf /tmp/zbm-late-meta",
      );
    }
  });

  it('reports a failing remote command with the host, its stderr first, and the command', async () => {
    await assert.rejects(
      new Zfs(a).snapshot(['rpool/nonexistent@x']),
      /on 127\.0\.0\.1: .*does not exist.* \(zfs snapshot, exit code \d+\)$/,
    );
  });
});
