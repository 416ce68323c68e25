/**
 * The append-only backup server: the node's key on zbm-dest is restricted to `zbm serve`. backup-pve
 * works through it unchanged (full, incremental, resumed), and a node that is taken over cannot
 * destroy, roll back, overwrite or read outside its root, nor run anything else. A pulling replica
 * works through `zbm serve --send-only`. The last part replays issue 18's reproductions through
 * the restricted keys: what a client supplies (names, properties, tokens, streams, configs)
 * decides nothing on the server.
 */
import assert from 'node:assert/strict';
import { before, describe } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { lockedArgv } from '../../src/lock/remote.ts';
import { WRITE_FILE_ARGV, writeFilesCommands } from '../../src/metadata/write.ts';
import { receiveArgv } from '../../src/zfs/argv.ts';
import { BACKUP_PVE, PRUNE_DEST, verifyCommand } from '../lab/commands.ts';
import {
  holds,
  it,
  killMidStream,
  prop,
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
const FORCED =
  'zbm serve --root main/bak-zbm --metadata-dir /root/backups_metadata --tag zbm-base:pve:zbm-dest-ro';

/** Runs a command line through the restricted key, as a taken-over node could. */
const attack = (line: string, input?: string) => vm(shellJoin(['ssh', 'zbm-dest-ro', line]), input);
/** The same through the pulling replica's restricted key. */
const pullAttack = (line: string) => vm(shellJoin(['ssh', 'zbm-dest-pull', line]), undefined, 'zbm-replica');
/** Set by the --send-only test, which installs that key. */
let PULL_TAG = '';

suite('zbm serve: an append-only backup server (real ZFS, real sshd)', 25, () => {
  before(async () => {
    await reset();
    await sh(`set -e
      test -f /root/.ssh/node_key || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/node_key
      grep -q node_key /root/.ssh/config || { { printf 'Host zbm-dest-ro\\n    HostName 127.0.0.1\\n    User root\\n    IdentityFile /root/.ssh/node_key\\n    IdentitiesOnly yes\\n    StrictHostKeyChecking no\\n    UserKnownHostsFile /root/.ssh/known_hosts\\n    LogLevel ERROR\\n    KexAlgorithms curve25519-sha256\\n\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config; }
      # The forced commands of this file only, as they are now (a rerun on the same lab replaces them).
      sed -i '/command="zbm serve /d' /root/.ssh/authorized_keys
      echo "command=\\"${FORCED}\\",restrict $(cat /root/.ssh/node_key.pub)" >> /root/.ssh/authorized_keys
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
    const killed = await killMidStream([...BACKUP, '--bwlimit', '512K'], 'main/bak-zbm/vm-102-disk-0');
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
      [
        'zfs receive -o mountpoint=/root/.ssh main/bak-zbm/evil',
        /-o mountpoint=\/root\/.ssh: value not allowed/,
      ],
      // -o names only a later chain's origin, and only inside the root.
      ['zfs receive -o origin=rpool/data/vm-102-disk-0@x main/bak-zbm/evil', /value not allowed/],
      ['zfs set readonly=off main/bak-zbm', /only zbm:metadata-dir=\/root\/backups_metadata/],
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

  it('a stream with properties (zfs send -p, a package stream) is refused before zfs reads it', async () => {
    const r = await vm(
      'zfs create -o mountpoint=/root/.ssh-evil rpool/evil && zfs snapshot rpool/evil@a && zfs send -p rpool/evil@a | ssh zbm-dest-ro zfs receive -s -u main/bak-zbm/evil; rc=$?; zfs destroy -r rpool/evil; exit $rc',
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /refused the stream into main\/bak-zbm\/evil: a replication or package stream \(zfs send -R, -I, -p/,
    );
    assert.deepEqual(await tree('main/bak-zbm/evil'), []);
  });

  it("a rolled-back disk starts its new chain through it, as a clone of the snapshot it still shares (serve checks that snapshot's guid itself)", async () => {
    const ct = 'rpool/data/subvol-104-disk-0';
    const copy = 'main/bak-zbm/subvol-104-disk-0';
    const ours = async () => (await tree(ct, 'pve1')).filter((n) => n.includes('@bak-zbm-'));
    const [anchor] = await ours();
    assert.ok(anchor);
    await sh(`zfs snapshot ${ct}@admin1 && echo changed > /${ct}/after-admin1`, 'pve1');
    const b = await zbm('pve1', [...BACKUP.slice(0, -1), '104']);
    assert.equal(b.code, 0, b.stderr);
    await sh(`zfs rollback -r ${ct}@admin1`, 'pve1');
    assert.deepEqual(await ours(), [anchor], 'the anchor before admin1 stays on the node');
    const server = await tree('main/bak-zbm');

    const r = await zbm('pve1', [...BACKUP.slice(0, -1), '104', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const g = (
      JSON.parse(r.stdout) as { guests: { snapshot: string; disks: { mode: string; target: string }[] }[] }
    ).guests[0];
    const chain = `${copy}.${g?.snapshot}`;
    assert.deepEqual(
      g?.disks.map((d) => [d.mode, d.target]),
      [['incremental', chain]],
    );
    assert.deepEqual(await tree('main/bak-zbm'), [...server, chain, `${chain}@${g?.snapshot}`].sort());
    assert.equal(await prop(chain, 'origin'), anchor.replace(ct, copy));
  });

  it('--send-only: a replica pulls through it (full, incremental, resumed, configs too) and can change nothing', async () => {
    // The tag replicate --pull holds with: the backup server as the replica names it, the replica's hostname.
    PULL_TAG = `zbm-base:zbm-dest-pull:${(await sh('hostname', 'zbm-replica')).trim()}`;
    const PULL_FORCED = `zbm serve --send-only --root main/bak-zbm --metadata-dir /root/backups_metadata --tag ${PULL_TAG}`;
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
    // The new chain of 104 came as a clone of the replica's own copy of its origin, through
    // serve's `zfs send -i <origin> <chain>@<first>`.
    const chain = (await tree('main/bak-zbm')).find((n) => /subvol-104-disk-0\.bak-zbm-[^@]*$/.test(n)) ?? '';
    assert.ok(chain);
    assert.equal(await prop(chain, 'origin', 'zbm-replica'), await prop(chain, 'origin'));
    await writeZvol('rpool/data/vm-102-disk-0', 1, 5);
    assert.equal((await zbm('pve1', [...BACKUP_PVE, '--vmid', '102'])).code, 0);
    const second = await zbm('zbm-replica', PULL);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /"mode": "incremental"/);
    const ds = 'main/bak-zbm/vm-102-disk-0';
    const [src, dst] = [await tree(ds), await tree(ds, 'zbm-replica')];
    assert.equal(dst.filter((n) => n.includes('@')).at(-1), src.filter((n) => n.includes('@')).at(-1));
    // serve ran zbm's counted send in its own script: the size the replica reports is exact.
    const [prev, last] = dst.filter((n) => n.includes('@')).slice(-2);
    const pulled = (JSON.parse(second.stdout) as { datasets: { source: string; bytes: number }[] }).datasets;
    assert.equal(
      pulled.find((d) => d.source === ds)?.bytes,
      Number(await sh(`zfs send -L -e -c -i ${prev} ${last} | wc -c`)),
    );
    assert.match(await sh('ls /root/backups_metadata/102', 'zbm-replica'), /bak-zbm-\d+T\d+Z\.conf/);
    // serve runs zbm's own bookmark batch (its own copy of the script): one call, no fallback.
    assert.doesNotMatch(second.stderr, /zfs program could not run/);
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
      shellJoin(['sh', '-c', script, 'zbm-kill', ...PULL, '--bwlimit', '512K']),
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
    const attempts: [string, RegExp][] = [
      [`zfs destroy ${newest}`, /not allowed/],
      [`zfs program -j main - destroy-snapshot ${newest}`, /only zbm's bookmark batch/],
      ['zfs receive -s -u main/bak-zbm/evil', /writes nothing/],
      ['zfs create main/bak-zbm/evil', /writes nothing/],
      [`zfs release zbm-base:pve:zbm-dest ${newest}`, /only the tag zbm-base:zbm-dest-pull:/],
      // Another replica's tag, or the server's own push tag.
      [`zfs release zbm-base:zbm-dest-pull:replica2 ${newest}`, /only the tag zbm-base:zbm-dest-pull:/],
      [`zfs release zbm-base:zbm-dest:zbm-replica ${newest}`, /only the tag zbm-base:zbm-dest-pull:/],
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
  }, 12);

  /**
   * Issue 18: each reproduction of the review, through the restricted keys. Each shows the refusal,
   * then the same tree, holds, resume tokens, zbm:metadata-dir and metadata directory as before it.
   * The last test runs the server's ordinary prune and verify: prune destroys exactly what it
   * planned before the attacks. Items the review only read in OpenZFS's source are confirmed (or
   * refuted) with the administrator's own zfs on scratch datasets outside main/bak-zbm.
   */
  describe('issue 18: what a taken-over node or replica supplies decides nothing', () => {
    const DS = 'main/bak-zbm/vm-102-disk-0';
    const SRC = 'rpool/data/vm-102-disk-0';
    const META = '/root/backups_metadata';
    /** Everything an attack could change on the backup server, in one call. */
    const STATE = `zfs list -H -t all -r -o name -s name main/bak-zbm
echo ---
zfs get -H -r -o name,value receive_resume_token main/bak-zbm | awk -F'\t' '$2 != "-"'
echo ---
zfs get -H -o value,source zbm:metadata-dir main/bak-zbm
echo ---
zfs list -H -t snapshot -r -o name main/bak-zbm | xargs -r zfs holds -H | sort
echo ---
cd ${META} && find . | sort && find . -type f -exec sha256sum {} + | sort`;
    const serverState = () => sh(STATE);
    const planArgs = [...PRUNE_DEST, '--dry-run', '--json'];
    type Report = {
      datasets: {
        dataset: string;
        destroy: string[];
        destroyed: string[];
        kept: { snapshot: string; why: string }[];
        anomalies: { snapshot: string; why: string }[];
      }[];
    };
    const planOf = async (args: readonly string[]): Promise<Report> => {
      const r = await zbm('zbm-dest', args);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Report;
    };
    const destroys = (r: Report, key: 'destroy' | 'destroyed') =>
      Object.fromEntries(r.datasets.map((d) => [d.dataset, d[key]]));
    let baseline: Record<string, string[]> = {};
    /** The newest backup of 102, on the node and the server alike (the node keeps only its base). */
    let newest = '';

    before(async () => {
      newest =
        (await sh(`zfs list -H -t snapshot -o name -s createtxg ${DS} | tail -n 1`)).trim().split('@')[1] ??
        '';
      assert.match(newest, /^bak-zbm-\d{8}T\d{6}Z$/);
      assert.equal(
        (await sh(`zfs list -H -t snapshot -o name -s createtxg ${SRC} | tail -n 1`)).trim(),
        `${SRC}@${newest}`,
      );
      baseline = destroys(await planOf(planArgs), 'destroy');
      await sh(
        'rm -rf /srv/victim && mkdir -p /srv/victim/102 && touch /srv/victim/102/bak-zbm-20200101T000000Z.conf /srv/victim/102/bak-zbm-20200101T000000Z.json',
      );
    });

    it('1: a snapshot named for the future, or older than the newest, is refused before zfs reads it', async () => {
      const before = await serverState();
      const send = (short: string) =>
        vm(`zfs snapshot ${SRC}@${short} || exit 9
zfs send -i ${SRC}@${newest} ${SRC}@${short} | ssh zbm-dest-ro zfs receive -s -u ${DS}; rc=$?
zfs destroy ${SRC}@${short}; exit $rc`);
      const future = await send('bak-zbm-20991225T000000Z');
      assert.equal(future.code, 1, future.stderr);
      assert.match(
        future.stderr,
        /refused the stream into main\/bak-zbm\/vm-102-disk-0: bak-zbm-20991225T000000Z lies in the future/,
      );
      const older = await send('bak-zbm-20200101T000000Z');
      assert.equal(older.code, 1, older.stderr);
      assert.match(older.stderr, new RegExp(`bak-zbm-20200101T000000Z is not newer than ${newest}`));
      assert.deepEqual(await serverState(), before);
    });

    it('1 (server side, real createtxg): a future or out-of-order snapshot already there is an anomaly: kept, counted for no rule, CRITICAL in verify', async () => {
      // As the administrator could find them after an attack from before zbm serve checked names.
      await sh(`zfs snapshot ${DS}@bak-zbm-20991225T000000Z && zfs snapshot ${DS}@bak-zbm-20200101T000000Z`);
      try {
        const r = await zbm('zbm-dest', planArgs);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stderr,
          /vm-102-disk-0@bak-zbm-20991225T000000Z is an anomaly: named for 2099-12-25T00:00:00Z, in the future/,
        );
        const plan = JSON.parse(r.stdout) as Report;
        assert.deepEqual(
          destroys(plan, 'destroy'),
          baseline,
          'the anomalies make prune destroy nothing else',
        );
        const ds = plan.datasets.find((d) => d.dataset === DS);
        assert.deepEqual(
          ds?.anomalies.map((a) => a.snapshot),
          ['bak-zbm-20991225T000000Z', 'bak-zbm-20200101T000000Z'],
        );
        assert.match(
          ds?.kept.find((k) => k.snapshot === 'bak-zbm-20200101T000000Z')?.why ?? '',
          /^ANOMALY: named for 2020-01-01T00:00:00Z, earlier than bak-zbm-/,
        );
        const v = await zbm('zbm-dest', verifyCommand(1));
        assert.equal(v.code, 2, v.stdout);
        assert.match(v.stdout, /^CRITICAL main\/bak-zbm\/vm-102-disk-0: 2 snapshot\(s\) not to be trusted/m);
      } finally {
        await sh(`zfs destroy ${DS}@bak-zbm-20991225T000000Z,bak-zbm-20200101T000000Z`);
      }
    });

    it('2: zbm:metadata-dir cannot be pointed elsewhere, on the root or below it', async () => {
      const before = await serverState();
      for (const target of ['main/bak-zbm', DS]) {
        const r = await attack(`zfs set zbm:metadata-dir=/srv/victim ${target}`);
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /only zbm:metadata-dir=\/root\/backups_metadata, the --metadata-dir of zbm serve/,
        );
      }
      assert.deepEqual(await serverState(), before);
      assert.equal((await sh('ls /srv/victim/102')).trim().split('\n').length, 2);
    });

    it('3: a resume token sends only the snapshot it names under the root, and only one token (confirms what zfs does)', async () => {
      const before = await serverState();
      const t = 'bak-zbm-20260101T000000Z';
      // A token naming main/bak-zbm/tok@<t>, whose guid then lives only outside the root.
      const tokens = (
        await sh(`set -e
zfs create -o mountpoint=/tmp/zbm-tok main/bak-zbm/tok
head -c 2097152 /dev/urandom > /tmp/zbm-tok/f
zfs snapshot main/bak-zbm/tok@${t}
zfs send main/bak-zbm/tok@${t} | head -c 400000 | zfs receive -s -u main/tok-a || true
zfs rename main/bak-zbm/tok main/tok-outside
zfs create main/bak-zbm/tok
zfs snapshot main/bak-zbm/tok@${t}
zfs send ${DS}@${newest} | head -c 400000 | zfs receive -s -u main/tok-b || true
zfs get -H -o value receive_resume_token main/tok-a main/tok-b`)
      )
        .trim()
        .split('\n');
      const [outside = '', honest = ''] = tokens;
      try {
        assert.match(outside, /^1-/);
        assert.match(honest, /^1-/);
        // (read) confirmed: zfs sends the snapshot it finds by guid, outside the dataset the token names.
        const resolved = await sh(`zfs send -n -v -P -t ${outside}`);
        assert.match(resolved, /^\ttoname = main\/bak-zbm\/tok@bak-zbm-20260101T000000Z$/m);
        assert.match(resolved, /^full\tmain\/tok-outside@bak-zbm-20260101T000000Z\t/m);
        // (read) confirmed: of two -t, zfs uses the last.
        assert.match(await sh(`zfs send -n -v -P -t ${honest} -t ${outside}`), /^full\tmain\/tok-outside@/m);
        const forged = await pullAttack(`zfs send -t ${outside}`);
        assert.equal(forged.code, 1);
        assert.equal(forged.stdout, '');
        assert.match(
          forged.stderr,
          /has guid \d+: zfs would send another snapshot, found by that guid elsewhere in the pool/,
        );
        const two = await pullAttack(`zfs send -t ${honest} -t ${outside}`);
        assert.equal(two.code, 1);
        assert.match(two.stderr, /zfs send takes one -t/);
        // The honest token (an interrupted pull) still passes.
        const ok = await pullAttack(`zfs send -n -v -t ${honest}`);
        assert.equal(ok.code, 0, ok.stderr);
      } finally {
        await sh(
          'for d in main/tok-a main/tok-b; do zfs receive -A $d 2>/dev/null; zfs destroy -r $d 2>/dev/null; done; zfs destroy -r main/tok-outside && zfs destroy -r main/bak-zbm/tok',
        );
      }
      assert.deepEqual(await serverState(), before);
    });

    it('4: replication, package and clone streams are refused (confirms what zfs would have done with them)', async () => {
      const before = await serverState();
      const stamp = `bak-zbm-${new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}`;
      const replication = await vm(
        `zfs send -R ${SRC}@${newest} | ssh zbm-dest-ro zfs receive -s -u main/bak-zbm/vm-102-disk-9`,
      );
      assert.equal(replication.code, 1);
      assert.match(replication.stderr, /a replication or package stream \(zfs send -R, -I, -p/);
      // An incremental from a snapshot of another dataset: zfs marks it a clone stream.
      const clone =
        await vm(`zfs create rpool/evil && zfs snapshot rpool/evil@a && zfs clone rpool/evil@a rpool/evilc && zfs snapshot rpool/evilc@${stamp} || exit 9
zfs send -i rpool/evil@a rpool/evilc@${stamp} | ssh zbm-dest-ro zfs receive -s -u main/bak-zbm/vm-999-disk-0; rc=$?
zfs destroy -R rpool/evil; exit $rc`);
      assert.equal(clone.code, 1, clone.stderr);
      assert.match(
        clone.stderr,
        /a clone stream \(its origin would be looked up by guid in the whole pool\)/,
      );
      assert.deepEqual(await serverState(), before);

      // (read) What zfs itself does with such streams, on scratch datasets with the admin's zfs:
      const scratch = await sh(`set -e
zfs create -p main/scr/a
zfs set zbm:x=1 main/scr/a
zfs snapshot main/scr/a@s1
zfs send main/scr/a@s1 | zfs receive -u main/scr/b
zfs rename main/scr/a@s1 main/scr/a@renamed
zfs snapshot main/scr/a@s2
zfs send -R -I main/scr/a@renamed main/scr/a@s2 | zfs receive -u main/scr/b
echo "b: $(zfs list -H -t snapshot -o name -s createtxg -r main/scr/b | tr '\n' ' ')"
echo "x: $(zfs get -H -o value,source zbm:x main/scr/b)"
zfs create main/scr/o
zfs snapshot main/scr/o@s
zfs clone main/scr/o@s main/scr/oc
zfs snapshot main/scr/oc@t
zfs create main/scr/root
zfs send -i main/scr/o@s main/scr/oc@t | zfs receive -u main/scr/root/d
echo "origin: $(zfs get -H -o value origin main/scr/root/d)"
zfs snapshot main/scr/o@s2
zfs send -i main/scr/o@s main/scr/o@s2 | zfs receive -u main/scr/root/e 2>&1 || echo "incremental into a new name: refused"`).finally(
        () => sh('zfs destroy -R main/scr'),
      );
      // confirmed: a -R -I stream renames the target's snapshot found by guid, and sets properties.
      assert.match(scratch, /^b: main\/scr\/b@renamed main\/scr\/b@s2 $/m);
      assert.match(scratch, /^x: 1\treceived$/m);
      // confirmed: a clone stream into a new name under a "root" takes its origin, by guid, from outside it.
      assert.match(scratch, /^origin: main\/scr\/o@s$/m);
      // refuted: a plain incremental into a name that does not exist is refused by zfs itself.
      assert.match(scratch, /does not exist[\s\S]*incremental into a new name: refused/);
    });

    it('5, 6 and the batch: configs are bounded, only for a backup that arrived, never over a file, all or none', async () => {
      const before = await serverState();
      const write = (path: string) => shellJoin([...WRITE_FILE_ARGV, path]);
      const big = await attack(write(`${META}/999/${newest}.conf`), 'x'.repeat(2 * 1024 * 1024));
      assert.notEqual(big.code, 0);
      assert.match(big.stderr, /more than 1048576 bytes/);
      const later = new Date(Date.now() + 3600_000)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
      const ahead = await attack(
        write(`${META}/102/bak-zbm-${later}.conf`),
        'hookscript: local:snippets/owned.sh\n',
      );
      assert.notEqual(ahead.code, 0);
      assert.match(ahead.stderr, /a config is written only for a backup that arrived/);
      const zero = await attack(write(`${META}/0102/${newest}.conf`), 'name: x\n');
      assert.match(zero.stderr, /is not a guest config or manifest/);
      const [batch] = writeFilesCommands([
        { path: `${META}/999/${newest}.conf`, content: 'name: new\n' },
        { path: `${META}/102/${newest}.conf`, content: 'hookscript: local:snippets/owned.sh\n' },
      ]);
      const mixed = await attack(shellJoin(batch?.argv ?? []), batch?.input);
      assert.equal(mixed.code, 1);
      assert.match(mixed.stderr, /102\/bak-zbm-\d+T\d+Z\.conf exists: configs are append-only/);
      assert.deepEqual(await serverState(), before);
    });

    it('tags and lock holders: a node touches only its exact tag, and its text reaches no terminal raw', async () => {
      const before = await serverState();
      for (const tag of [
        'zbm-base:pve:zbm-dest',
        'zbm-base:pve:zbm-dest-r',
        `zbm-base:zbm-dest-pull:${PULL_TAG.split(':')[2] ?? ''}`,
      ]) {
        const r = await attack(shellJoin(['zfs', 'release', tag, `${DS}@${newest}`]));
        assert.equal(r.code, 1, tag);
        assert.match(r.stderr, /only the tag zbm-base:pve:zbm-dest-ro is allowed/);
      }
      const locked = lockedArgv(DS, 5, 'backup-pve', receiveArgv({ target: DS }));
      locked[6] = 'backup-pve\u001b]0;owned\u0007';
      const r = await attack(shellJoin(locked));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /lock holder may only hold/);
      assert.ok(!r.stderr.includes('\u001b'), 'the escape character was printed raw');
      assert.deepEqual(await serverState(), before);
    });

    it('restore shows a hookscript from the backed-up config and leaves it out', async () => {
      const conf = `${META}/102/${newest}.conf`;
      await sh(`cp ${conf} /tmp/zbm-conf.bak && printf 'hookscript: local:snippets/owned.sh\\n' >> ${conf}`);
      let r: Awaited<ReturnType<typeof zbm>>;
      try {
        r = await zbm('pve1', [
          'restore',
          '--remote',
          'zbm-dest',
          '--remote-zfs-root',
          'main/bak-zbm',
          '--vmid',
          '102',
          '--as-vmid',
          '9102',
          '--dry-run',
        ]);
      } finally {
        await sh(`mv /tmp/zbm-conf.bak ${conf}`);
      }
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        /hookscript left out of the restored config: "hookscript: local:snippets\/owned.sh" runs code/,
      );
      assert.match(r.stdout, /^ {2}\| name: noagent$/m);
      assert.doesNotMatch(r.stdout, /hookscript/);
    });

    it("after every attack, the server's ordinary prune destroys exactly what it planned before them, and verify finds nothing amiss", async () => {
      const pruned = await planOf([...PRUNE_DEST, '--json']);
      assert.deepEqual(destroys(pruned, 'destroyed'), baseline);
      assert.ok(pruned.datasets.every((d) => d.anomalies.length === 0));
      assert.equal(
        (await sh('ls /srv/victim/102')).trim().split('\n').length,
        2,
        'nothing removed outside the metadata directory',
      );
      const v = await zbm('zbm-dest', verifyCommand(1));
      assert.doesNotMatch(v.stdout, /^ZBM CRITICAL|not to be trusted/m);
      assert.match(v.stdout, /^OK main\/bak-zbm\/vm-102-disk-0: newest /m);
    });
  });
});
