/**
 * Faults of the outside world and hostile input, on real ZFS: each gives a clear error naming the
 * dataset and the way out, a non-zero exit, nothing destroyed, and the other guests still done.
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE } from '../lab/commands.ts';
import { it, reset, sh, snapsOf, suite, tree, writeZvol, zbm, zvolHash } from '../lab/lab.ts';

const BACKUP = (vmids: string) => [...BACKUP_PVE, '--vmid', vmids];

/** Releases every hold under a dataset, as an admin would before deleting it by hand. */
const releaseAll = (ds: string) =>
  sh(
    `for s in $(zfs list -H -t snapshot -o name -r ${ds}); do zfs holds -H $s | cut -f2 | while read -r t; do zfs release "$t" $s; done; done`,
  );

/** Adds guests to the fake cluster's .vmlist (pmxcfs would do it on a real cluster). */
const addToVmlist = (ids: Record<string, 'qemu' | 'lxc'>) =>
  sh(
    `node -e 'const f="/etc/pve/.vmlist";const j=JSON.parse(require("fs").readFileSync(f,"utf8"));for(const [id,type] of Object.entries(${JSON.stringify(ids)}))j.ids[id]={node:"pve1",type,version:1};require("fs").writeFileSync(f,JSON.stringify(j))'`,
  );

suite('faults and hostile input (real ZFS)', 12, () => {
  before(async () => {
    await reset();
    const r = await zbm('pve1', BACKUP('102,104'));
    assert.equal(r.code, 0, r.stderr);
  });

  it('a snapshot name reused on the target with another guid is never taken as common', async () => {
    const ds = 'main/bak-zbm/vm-102-disk-0';
    const [snap] = await snapsOf(ds);
    assert.ok(snap);
    await releaseAll(ds);
    await sh(`zfs destroy -r ${ds} && zfs create -V 64M ${ds} && zfs snapshot ${snap}`);
    const before = await tree(ds);
    await writeZvol('rpool/data/vm-102-disk-0', 1);
    const r = await zbm('pve1', BACKUP('102,104'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vm-102-disk-0/);
    assert.match(r.stderr, /no (snapshot )?in common|no common/i);
    assert.deepEqual(await tree(ds), before, 'the target is untouched');
    // The other guest was still backed up.
    assert.equal((await snapsOf('main/bak-zbm/subvol-104-disk-0')).length, 2);
    await sh(`zfs destroy -r ${ds}`);
    assert.equal(
      (await zbm('pve1', BACKUP('102'))).code,
      0,
      'a fresh full backup after the admin removed it',
    );
  });

  it('a target that was mounted and written to is refused, untouched, with the way out', async () => {
    const ds = 'main/bak-zbm/subvol-104-disk-0';
    await sh(
      `zfs mount ${ds} && echo intruder > /main/bak-zbm/subvol-104-disk-0/intruder && sync && zfs unmount ${ds}`,
    );
    const before = await tree(ds);
    const r = await zbm('pve1', BACKUP('104'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /subvol-104-disk-0/);
    assert.match(r.stderr, /diverged|written|modified/i);
    assert.match(r.stderr, /rollback/);
    assert.deepEqual(await tree(ds), before);
    await sh(`zfs rollback ${(await snapsOf(ds)).at(-1)}`);
    assert.equal((await zbm('pve1', BACKUP('104'))).code, 0);
  });

  it('a full target: a clear error naming the dataset, nothing lost, and the next run converges', async () => {
    const used = Number((await sh('zfs get -H -p -o value used main/bak-zbm')).trim());
    await sh(`zfs set quota=${used + 2 * 1024 * 1024} main/bak-zbm`);
    await writeZvol('rpool/data/vm-102-disk-0', 8, 8);
    const before = await snapsOf('main/bak-zbm/vm-102-disk-0');
    const r = await zbm('pve1', BACKUP('102'));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /vm-102-disk-0/);
    assert.match(r.stderr, /quota|space/i);
    assert.deepEqual(await snapsOf('main/bak-zbm/vm-102-disk-0'), before, 'nothing destroyed');
    await sh('zfs set quota=none main/bak-zbm');
    const again = await zbm('pve1', BACKUP('102'));
    assert.equal(again.code, 0, again.stderr);
    // The failed run's snapshot arrives too (it stayed on the node), then this run's.
    assert.equal((await snapsOf('main/bak-zbm/vm-102-disk-0')).length, before.length + 2);
  });

  it('a remote that accepts but never answers: a time-out naming it, never a hang', async () => {
    await sh(`set -e
      nohup node -e 'require("net").createServer(() => {}).listen(2299, "127.0.0.1")' >/dev/null 2>&1 &
      grep -q zbm-silent /root/.ssh/config || { printf 'Host zbm-silent\\n    HostName 127.0.0.1\\n    Port 2299\\n\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config
      for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/2299) 2>/dev/null && exit 0; sleep 0.1; done; exit 1`);
    try {
      const started = Date.now();
      const r = await zbm(
        'pve1',
        BACKUP_PVE.map((a) => (a === 'zbm-dest' ? 'zbm-silent' : a)),
      );
      const seconds = (Date.now() - started) / 1000;
      assert.equal(r.code, 1);
      assert.match(r.stderr, /zbm-silent/);
      assert.ok(seconds < 120, `gave up after ${seconds} s`);
    } finally {
      await sh('pkill -f "listen\\(2299" || true');
    }
  });

  it('hostile names and descriptions execute nothing; a malformed config fails that guest only', async () => {
    await sh(`set -e; rm -f /tmp/pwned*
      zfs create -V 8M rpool/data/vm-105-disk-0
      zfs create -V 8M rpool/data/vm-106-disk-0
      cat > /etc/pve/nodes/pve1/qemu-server/105.conf <<'EOF'
#$(touch /tmp/pwned-comment) \`touch /tmp/pwned-backtick\`
cores: 1
description: $(touch /tmp/pwned-desc); touch /tmp/pwned-semi | x 'q' "dq" \\n
name: evil-$(touch%20/tmp/pwned)
tags: a;b$(id)
scsi0: local-zfs:vm-105-disk-0,size=8M
EOF
      printf 'cores: 1\\nscsi0 local-zfs vm-106-disk-0\\n\\001\\002garbage: :\\n' > /etc/pve/nodes/pve1/qemu-server/106.conf`);
    await addToVmlist({ '105': 'qemu', '106': 'qemu' });
    const r = await zbm('pve1', [...BACKUP('102,105,106'), '--json']);
    assert.equal(r.code, 1, 'guest 106 failed');
    assert.match(r.stderr, /106/);
    assert.equal(await sh('ls /tmp/pwned* 2>/dev/null || true'), '', 'nothing was executed');
    assert.equal((await snapsOf('main/bak-zbm/vm-105-disk-0')).length, 1, 'guest 105 was backed up');
    assert.equal((await snapsOf('main/bak-zbm/vm-102-disk-0')).length >= 1, true);
    const conf = await sh('cat /root/backups_metadata/105/*.conf');
    assert.match(conf, /description: \$\(touch \/tmp\/pwned-desc\); touch \/tmp\/pwned-semi/);
  });
  it('hostile names through the whole path: backup, replicate, prune, restore; nothing executes, text kept', async () => {
    // ZFS names allow spaces, colons and dots only; paths, guest names, descriptions and tags take anything.
    const root = 'main/bak zbm:x.1';
    const prefix = 'bak zbm:';
    const meta = `/root/meta $(touch /tmp/pwned-meta) 'q' "dq" \`id\``;
    const description = `$(touch /tmp/pwned-desc); touch /tmp/pwned-semi | x 'q' "dq" \`id\``;
    await sh(`set -e; rm -f /tmp/pwned*
      zfs create -V 8M rpool/data/vm-108-disk-0
      udevadm settle; for i in $(seq 300); do [ -b /dev/zvol/rpool/data/vm-108-disk-0 ] && break; sleep 0.1; done
      test -b /dev/zvol/rpool/data/vm-108-disk-0
      dd if=/dev/urandom of=/dev/zvol/rpool/data/vm-108-disk-0 bs=1M count=2 conv=fsync status=none
      cat > /etc/pve/nodes/pve1/qemu-server/108.conf <<'EOF'
cores: 1
description: ${description}
name: evil-$(touch%20/tmp/pwned-name)
tags: a;b$(touch%20/tmp/pwned-tag)
scsi0: local-zfs:vm-108-disk-0,size=8M
EOF`);
    await addToVmlist({ '108': 'qemu' });
    const backup = [
      'backup-pve',
      '--remote',
      'zbm-dest',
      '--prefix',
      prefix,
      '--local-zfs-root',
      'rpool/data',
      '--remote-zfs-root',
      root,
      '--remote-metadata-dir',
      meta,
      '--vmid',
      '108',
      '-y',
    ];
    const replicate = [
      'replicate',
      '--remote',
      'zbm-replica',
      '--remote-zfs-root',
      root,
      '--local-zfs-root',
      root,
      '--prefix',
      prefix,
    ];
    for (let i = 0; i < 3; i++) {
      const b = await zbm('pve1', backup);
      assert.equal(b.code, 0, b.stderr);
      const r = await zbm('zbm-dest', replicate);
      assert.equal(r.code, 0, r.stderr);
      await sh('sleep 1');
    }
    const p = await zbm('zbm-dest', [
      'prune',
      '--local-zfs-root',
      root,
      '--prefix',
      prefix,
      '--keep-last',
      '1',
      '--remote',
      'zbm-replica',
      '--remote-zfs-root',
      root,
      '-y',
    ]);
    assert.equal(p.code, 0, p.stderr);
    const snaps = await snapsOf(`${root}/vm-108-disk-0`);
    assert.equal(snaps.length, 1, 'pruned to the last one');
    assert.equal(
      (await sh(`ls ${shellJoin([`${meta}/108`])} | wc -l`)).trim(),
      '2',
      'the kept backup keeps its config and manifest',
    );

    const restored = await zbm('pve1', [
      'restore',
      '--remote',
      'zbm-replica',
      '--remote-zfs-root',
      root,
      '--vmid',
      '108',
      '--as-vmid',
      '308',
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await sh('ls /tmp/pwned* 2>/dev/null || true'), '', 'nothing was executed anywhere');
    assert.equal(await sh('ls /tmp/pwned* 2>/dev/null || true', 'zbm-replica'), '');
    const conf = await sh('cat /etc/pve/nodes/pve1/qemu-server/308.conf');
    assert.ok(conf.includes(`description: ${description}`), conf);
    assert.match(conf, /^scsi0: local-zfs:vm-308-disk-0,size=8M$/m);
    assert.equal(await zvolHash('rpool/data/vm-308-disk-0'), await zvolHash('rpool/data/vm-108-disk-0'));
  });
});
