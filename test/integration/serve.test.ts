/**
 * The append-only backup server: the node's key on zbm-dest is restricted to `zbm serve`. backup-pve
 * works through it unchanged (full, incremental, resumed), and a node that is taken over cannot
 * destroy, roll back, overwrite or read outside its root, nor run anything else.
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE } from '../lab/commands.ts';
import {
  holds,
  it,
  killMidStream,
  receivesDone,
  reset,
  sh,
  suite,
  tree,
  vm,
  writeZvol,
  zbm,
  zvolHash,
} from '../lab/lab.ts';

/** The original command, through the restricted key's ssh alias. */
const BACKUP = [...BACKUP_PVE.map((a) => (a === 'zbm-dest' ? 'zbm-dest-ro' : a)), '--vmid', '102,104'];
const FORCED = 'zbm serve --root main/bak-zbm --metadata-dir /root/backups_metadata';

/** Runs a command line through the restricted key, as a taken-over node could. */
const attack = (line: string) => vm(shellJoin(['ssh', 'zbm-dest-ro', line]));

suite('zbm serve: an append-only backup server (real ZFS, real sshd)', 12, () => {
  before(async () => {
    await reset();
    await sh(`set -e
      test -f /root/.ssh/node_key || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/node_key
      grep -q node_key /root/.ssh/config || { { printf 'Host zbm-dest-ro\\n    HostName 127.0.0.1\\n    User root\\n    IdentityFile /root/.ssh/node_key\\n    IdentitiesOnly yes\\n    StrictHostKeyChecking no\\n    UserKnownHostsFile /root/.ssh/known_hosts\\n    LogLevel ERROR\\n    KexAlgorithms curve25519-sha256\\n\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config; }
      grep -q 'zbm serve' /root/.ssh/authorized_keys || echo "command=\\"${FORCED}\\",restrict $(cat /root/.ssh/node_key.pub)" >> /root/.ssh/authorized_keys
      rm -f /tmp/pwned`);
  });

  it('backup-pve works through it unchanged: full, then incremental, with configs and the base held', async () => {
    const first = await zbm('pve1', BACKUP);
    assert.equal(first.code, 0, first.stderr);
    await writeZvol('rpool/data/vm-102-disk-0', 1);
    const second = await zbm('pve1', [...BACKUP, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const guest = (
      JSON.parse(second.stdout) as { guests: { vmid: number; disks: { mode: string }[] }[] }
    ).guests.find((g) => g.vmid === 102);
    assert.equal(guest?.disks[0]?.mode, 'incremental');
    const snaps = (await tree('main/bak-zbm/vm-102-disk-0')).filter((n) => n.includes('@'));
    assert.equal(snaps.length, 2);
    assert.match(await sh('ls /root/backups_metadata/102'), /bak-zbm-\d+T\d+Z\.conf/);
    assert.deepEqual(await holds('main/bak-zbm/vm-102-disk-0'), [`${snaps[1]}\tzbm-base:pve:zbm-dest-ro`]);
  });

  it('an interrupted backup resumes through it', async () => {
    await writeZvol('rpool/data/vm-102-disk-0', 6, 2);
    const killed = await killMidStream([...BACKUP, '--bwlimit', '1M'], 'main/bak-zbm/vm-102-disk-0');
    assert.equal(killed.code, 130, killed.stderr);
    await receivesDone('zbm-dest');
    assert.match(
      (await sh('zfs get -H -o value receive_resume_token main/bak-zbm/vm-102-disk-0')).trim(),
      /^1-/,
    );
    const r = await zbm('pve1', [...BACKUP, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"resumed": "resumed"/);
  });

  it('a taken-over node can neither destroy, roll back, force, overwrite, step outside, nor get a shell', async () => {
    const before = await tree('main/bak-zbm');
    const configs = await sh(
      'cd /root/backups_metadata && find . -type f | sort && cat 102/*.conf | sha256sum',
    );
    const newest = before.filter((n) => n.startsWith('main/bak-zbm/vm-102-disk-0@')).at(-1) ?? '';
    const conf = `/root/backups_metadata/102/${newest.split('@')[1]}.conf`;
    const attempts: [string, RegExp][] = [
      ['zfs destroy -r main/bak-zbm', /zfs destroy is not allowed/],
      [`zfs destroy ${newest}`, /not allowed/],
      [`zfs program -j main - destroy-snapshot ${newest}`, /not allowed/],
      [`zfs rollback -r ${newest}`, /not allowed/],
      ['zfs receive -F main/bak-zbm/vm-102-disk-0', /-F is not allowed/],
      ['zfs receive -o mountpoint=/root/.ssh main/bak-zbm/evil', /-o is not allowed/],
      ['zfs set readonly=off main/bak-zbm', /only zbm's own properties/],
      [
        `zfs release zbm-base:pve:zbm-dest-ro ${newest} && zfs destroy ${newest}`,
        /not a command line zbm sends/,
      ],
      ['zfs list -r rpool', /outside main\/bak-zbm/],
      ['zfs send main/bak-zbm/vm-102-disk-0@x', /not allowed/],
      ['sh -c "touch /tmp/pwned"', /not a command line zbm sends/],
      ["zfs list 'main/bak-zbm/$(touch /tmp/pwned)'", /no such dataset|does not exist|invalid/],
      ['bash -i', /only zfs commands/],
      [
        `sh -c 'set -e; mkdir -p -- "$(dirname -- "$1")"; t="$1.tmp.$$"; cat > "$t"; sync -- "$t"; mv -f -- "$t" "$1"' zbm-write ${conf}`,
        /exists: configs are append-only/,
      ],
      [
        `sh -c 'set -e; mkdir -p -- "$(dirname -- "$1")"; t="$1.tmp.$$"; cat > "$t"; sync -- "$t"; mv -f -- "$t" "$1"' zbm-write /root/.ssh/authorized_keys`,
        /not a guest config/,
      ],
    ];
    for (const [line, why] of attempts) {
      const r = await attack(line);
      assert.notEqual(r.code, 0, line);
      assert.match(r.stderr, why, line);
    }
    const shell = await vm('ssh -T zbm-dest-ro < /dev/null');
    assert.notEqual(shell.code, 0);
    assert.match(shell.stderr, /forced command/);
    assert.deepEqual(await tree('main/bak-zbm'), before);
    assert.equal(
      await sh('cd /root/backups_metadata && find . -type f | sort && cat 102/*.conf | sha256sum'),
      configs,
    );
    assert.equal((await vm('test -e /tmp/pwned')).code, 1, 'nothing was executed');
  });

  it('a stream that carries a mountpoint cannot mount itself over the server: it is received without it', async () => {
    await sh(
      'zfs create -o mountpoint=/root/.ssh-evil rpool/evil && zfs snapshot rpool/evil@a && zfs send -p rpool/evil@a | ssh zbm-dest-ro zfs receive -s -u main/bak-zbm/evil',
    );
    assert.match(
      (await sh('zfs get -H -o source mountpoint main/bak-zbm/evil')).trim(),
      /^inherited from main/,
    );
    await sh('zfs destroy -r rpool/evil && zfs destroy -r main/bak-zbm/evil');
  });
  it('--send-only: a replica pulls through it (full, incremental, resumed, configs too) and can change nothing', async () => {
    const PULL_FORCED = 'zbm serve --send-only --root main/bak-zbm --metadata-dir /root/backups_metadata';
    const key = (
      await sh(
        "test -f /root/.ssh/pull_key || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/pull_key; cat /root/.ssh/pull_key.pub",
        'zbm-replica',
      )
    ).trim();
    await sh(
      `grep -q 'send-only' /root/.ssh/authorized_keys || echo 'command="${PULL_FORCED}",restrict ${key}' >> /root/.ssh/authorized_keys`,
    );
    // The replica reaches the backup server as it reaches zbm-dest, with the restricted key.
    await sh(
      `grep -q zbm-dest-pull /root/.ssh/config || { ssh -G zbm-dest | grep -Ei '^(hostname|port|user|stricthostkeychecking|userknownhostsfile) ' | sed 's/^/    /' > /tmp/h
        { printf 'Host zbm-dest-pull\\n    IdentityFile /root/.ssh/pull_key\\n    IdentitiesOnly yes\\n'; cat /tmp/h; printf '\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config; }`,
      'zbm-replica',
    );
    const PULL = [
      'replicate',
      '--pull',
      '--remote',
      'zbm-dest-pull',
      '--remote-zfs-root',
      'main/bak-zbm',
      '--local-zfs-root',
      'main/bak-zbm',
      '--json',
    ];
    const first = await zbm('zbm-replica', PULL);
    assert.equal(first.code, 0, first.stderr);
    await writeZvol('rpool/data/vm-102-disk-0', 1, 5);
    assert.equal((await zbm('pve1', [...BACKUP_PVE, '--vmid', '102'])).code, 0);
    const second = await zbm('zbm-replica', PULL);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /"mode": "incremental"/);
    const ds = 'main/bak-zbm/vm-102-disk-0';
    const [src, dst] = [await tree(ds), await tree(ds, 'zbm-replica')];
    assert.equal(dst.filter((n) => n.includes('@')).at(-1), src.filter((n) => n.includes('@')).at(-1));
    assert.match(await sh('ls /root/backups_metadata/102', 'zbm-replica'), /bak-zbm-\d+T\d+Z\.conf/);
    // serve refuses channel programs: the bookmarks there were made one zfs call each.
    assert.match(second.stderr, /zfs program could not run/);
    assert.match(await sh(`zfs list -H -o name -t bookmark ${ds}`), /#bak-zbm-/);

    // A pull cut mid-stream resumes through serve's check of the token (`zfs send -nvt`).
    await writeZvol('rpool/data/vm-102-disk-0', 6, 2);
    assert.equal((await zbm('pve1', [...BACKUP_PVE, '--vmid', '102'])).code, 0);
    // Cut once the receive has read 1 MiB: before any data arrives there is nothing to resume.
    const script = `zbm "$@" & pid=$!
for i in $(seq 600); do r=$(pgrep -f '^/usr/sbin/zfs receive .*${ds}$') && break; sleep 0.1; done
for i in $(seq 600); do [ "$(awk '/^rchar/ {print $2}' /proc/$r/io 2>/dev/null || echo 0)" -gt 1048576 ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid`;
    const cut = await vm(
      shellJoin(['sh', '-c', script, 'zbm-kill', ...PULL, '--bwlimit', '1M']),
      undefined,
      'zbm-replica',
    );
    assert.notEqual(cut.code, 0);
    await receivesDone('zbm-replica');
    assert.match((await sh(`zfs get -H -o value receive_resume_token ${ds}`, 'zbm-replica')).trim(), /^1-/);
    const third = await zbm('zbm-replica', PULL);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stdout, /"resumed": "resumed"/);
    assert.equal(await zvolHash(ds, 'zbm-replica'), await zvolHash(ds));

    const before = await tree('main/bak-zbm');
    const newest = src.filter((n) => n.includes('@')).at(-1) ?? '';
    const pullAttack = (line: string) =>
      vm(shellJoin(['ssh', 'zbm-dest-pull', line]), undefined, 'zbm-replica');
    const attempts: [string, RegExp][] = [
      [`zfs destroy ${newest}`, /not allowed/],
      [`zfs program -j main - destroy-snapshot ${newest}`, /not allowed/],
      ['zfs receive -s -u main/bak-zbm/evil', /writes nothing/],
      ['zfs create main/bak-zbm/evil', /writes nothing/],
      [`zfs release zbm-base:pve:zbm-dest ${newest}`, /replica's base tag/],
      ['zfs send rpool/data/vm-102-disk-0@x', /outside main\/bak-zbm/],
      ['tar -C /etc -cf - -- shadow', /only guest configs/],
      [
        `sh -c 'set -e; mkdir -p -- "$(dirname -- "$1")"; t="$1.tmp.$$"; cat > "$t"; sync -- "$t"; mv -f -- "$t" "$1"' zbm-write /root/backups_metadata/102/x.conf`,
        /writes nothing/,
      ],
    ];
    for (const [line, why] of attempts) {
      const r = await pullAttack(line);
      assert.notEqual(r.code, 0, line);
      assert.match(r.stderr, why, line);
    }
    assert.deepEqual(await tree('main/bak-zbm'), before);
  });
});
