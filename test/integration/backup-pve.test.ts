import assert from 'node:assert/strict';
import { before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKED_UP, BACKUP_PVE } from '../lab/commands.ts';
import {
  closeGate,
  holds,
  it,
  killMidStream,
  openGate,
  receivesDone,
  reset,
  sh,
  suite,
  tree,
  vm,
  writeZvol,
  zbm,
  zbmReads,
  zvolHash,
} from '../lab/lab.ts';

const ORIGINAL = BACKUP_PVE;

interface JsonDisk {
  key: string;
  source: string;
  target: string;
  mode: string;
  resumed: string | null;
  bytes: number;
}
interface JsonGuest {
  vmid: number;
  snapshot: string;
  result: string;
  disks: JsonDisk[];
}

function guests(stdout: string): JsonGuest[] {
  return (JSON.parse(stdout) as { guests: JsonGuest[] }).guests;
}

function disk(gs: JsonGuest[], dataset: string): JsonDisk {
  const d = gs.flatMap((g) => g.disks).find((x) => x.source === `rpool/data/${dataset}`);
  assert.ok(d, `no result for ${dataset}`);
  return d;
}

const snapshotsOf = (names: string[], dataset: string) =>
  names.filter((n) => n.startsWith(`${dataset}@`)).map((n) => n.slice(dataset.length + 1));

suite('backup-pve on real ZFS', 15, () => {
  before(async () => {
    await reset();
    await sh('touch /etc/lab/log-invocations');
  });

  let first: JsonGuest[] = [];

  it("backs up every guest disk with the original design's exact command: full sends, one snapshot per disk", async () => {
    const r = await zbm('pve1', ORIGINAL);
    assert.equal(r.code, 0, r.stderr);
    const t = await tree('main/bak-zbm');
    const datasets = t.filter((n) => !n.includes('@') && n !== 'main/bak-zbm');
    assert.deepEqual(
      datasets,
      BACKED_UP.map((d) => `main/bak-zbm/${d}`),
    );
    for (const d of BACKED_UP) {
      const snaps = snapshotsOf(t, `main/bak-zbm/${d}`);
      assert.equal(snaps.length, 1, `${d}: ${snaps}`);
      assert.match(snaps[0] ?? '', /^bak-zbm-\d{8}T\d{6}Z$/);
    }
    // The guest's own Proxmox snapshots and the other node's guest stay where they are.
    assert.ok(!t.some((n) => n.includes('vm-200')));
    // A disk zbm cannot back up is named, never skipped silently.
    assert.match(r.stderr, /102.*sata0.*local:102\/vm-102-disk-0\.qcow2/);
    // Data arrives byte for byte.
    assert.equal(await zvolHash('main/bak-zbm/vm-100-disk-0'), await zvolHash('rpool/data/vm-100-disk-0'));
    const src = await sh('cat /rpool/data/subvol-103-disk-0/srv/data.bin | sha256sum');
    await sh(
      'zfs set mountpoint=/mnt/check main/bak-zbm/subvol-103-disk-0 && (zfs mount main/bak-zbm/subvol-103-disk-0 2>/dev/null || true)',
    );
    assert.equal(await sh('cat /mnt/check/srv/data.bin | sha256sum'), src);
    await sh(
      'zfs umount main/bak-zbm/subvol-103-disk-0 && zfs inherit mountpoint main/bak-zbm/subvol-103-disk-0',
    );
  });

  it('takes ONE atomic zfs snapshot call per frozen guest, frozen between freeze and thaw, and one for all the others', async () => {
    const zfsLog = (await sh('cat /var/log/lab/zfs.log')).split('\n');
    const snapCalls = zfsLog.filter((l) => / snapshot /.test(l));
    const vm100 = snapCalls.filter((l) => l.includes('vm-100-'));
    assert.equal(vm100.length, 1, `one call for VM 100: ${vm100.join('\n')}`);
    for (const n of [0, 1, 2, 3]) assert.ok(vm100[0]?.includes(`rpool/data/vm-100-disk-${n}@bak-zbm-`));
    // The guests that need no freeze (102 without agent, the containers 103 and 104) share one call;
    // 101 (agent configured, but dead) gets its own, as it is pinged first.
    const rest = snapCalls.filter((l) => /-(102|103|104)-disk/.test(l));
    assert.equal(rest.length, 1, `one call for 102, 103, 104: ${rest.join('\n')}`);
    for (const d of ['vm-102-disk-0', 'subvol-103-disk-0', 'subvol-103-disk-1', 'subvol-104-disk-0'])
      assert.ok(rest[0]?.includes(`rpool/data/${d}@bak-zbm-`), `${d} in ${rest[0]}`);
    assert.ok(!rest[0]?.includes('vm-101-'));
    const qm = (await sh('cat /var/log/lab/qm.log')).split('\n').filter((l) => l.split(' ')[1] === '100');
    const calls = qm.map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, ['ping', 'fsfreeze-freeze', 'fsfreeze-thaw']);
    const time = (l: string | undefined) => Number(l?.split(' ')[0]);
    const snapAt = time(vm100[0]);
    assert.ok(time(qm[1]) < snapAt && snapAt < time(qm[2]), 'freeze < snapshot < thaw');
    // VM 101's agent is dead: pinged, never frozen, still snapshotted (crash-consistent).
    const qm101 = (await sh('cat /var/log/lab/qm.log')).split('\n').filter((l) => l.split(' ')[1] === '101');
    assert.deepEqual(
      qm101.map((l) => l.split(' ')[2]),
      ['ping'],
    );
    // Containers and agent-less VMs are never sent to qm.
    assert.ok(!(await sh('cat /var/log/lab/qm.log')).split('\n').some((l) => / (102|103|104) /.test(l)));
  });

  it('keeps the config and a manifest beside the data', async () => {
    const t = await tree('main/bak-zbm/vm-100-disk-0');
    const snap = snapshotsOf(t, 'main/bak-zbm/vm-100-disk-0')[0] ?? '';
    const conf = await sh(`cat /root/backups_metadata/100/${snap}.conf`);
    assert.equal(conf, await sh('cat /etc/pve/nodes/pve1/qemu-server/100.conf'));
    const manifest = JSON.parse(await sh(`cat /root/backups_metadata/100/${snap}.json`)) as {
      vmid: number;
      name: string;
      node: string;
      snapshot: string;
      disks: { key: string; target: string; guid: string; volume: string }[];
    };
    assert.equal(manifest.vmid, 100);
    assert.equal(manifest.disks.find((d) => d.key === 'scsi0')?.volume, 'local-zfs:vm-100-disk-0');
    assert.equal(manifest.name, 'web');
    assert.equal(manifest.node, 'pve1');
    assert.deepEqual(manifest.disks.map((d) => d.key).sort(), ['efidisk0', 'scsi0', 'scsi1', 'tpmstate0']);
    const guid = (await sh(`zfs get -H -o value guid main/bak-zbm/vm-100-disk-0@${snap}`)).trim();
    assert.equal(manifest.disks.find((d) => d.key === 'scsi0')?.guid, guid);
    // The volume id, also from a CT's `acl=0,size=...,volume=...` form.
    const ct = JSON.parse(await sh('cat /root/backups_metadata/104/*.json')) as {
      disks: { key: string; volume: string }[];
    };
    assert.deepEqual(ct.disks, [{ ...ct.disks[0], key: 'rootfs', volume: 'local-zfs:subvol-104-disk-0' }]);
    assert.equal(
      (await sh('zfs get -H -o value zbm:metadata-dir main/bak-zbm')).trim(),
      '/root/backups_metadata',
    );
  });

  it('sends only the changed blocks the second time (1 MiB written into a 64 MiB zvol), four disks at a time, straight from zfs into ssh, its size exact', async () => {
    await writeZvol('rpool/data/vm-100-disk-0', 1, 8);
    await writeZvol('rpool/data/vm-100-disk-1', 12, 20);
    const r = await zbmReads('pve1', [...ORIGINAL, '--jobs', '4', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const gs = guests(r.stdout);
    const d = disk(gs, 'vm-100-disk-0');
    assert.equal(d.mode, 'incremental');
    assert.ok(d.bytes > 1024 * 1024 && d.bytes < 1.5 * 1024 * 1024, `sent ${d.bytes} bytes`);
    // The size reported is the stream's to the byte: the same increment, sent again here.
    const big = 'main/bak-zbm/vm-100-disk-1';
    const [older, newer] = snapshotsOf(await tree(big), big).slice(-2);
    const stream = Number(await sh(`zfs send -L -e -c -i @${older} ${big}@${newer} | wc -c`));
    assert.equal(disk(gs, 'vm-100-disk-1').bytes, stream);
    // node never read the stream: relayed through it, its 12 MiB would be in zbm's own reads.
    assert.ok(r.reads < stream / 2, `zbm read ${r.reads} bytes itself while ${stream} bytes went by`);
    // An unchanged disk moves almost nothing.
    assert.ok(disk(gs, 'vm-101-disk-0').bytes < 64 * 1024);
    assert.equal(await zvolHash('main/bak-zbm/vm-100-disk-0'), await zvolHash('rpool/data/vm-100-disk-0'));
    first = gs;
  });

  it('keeps only the newest zbm snapshot on the node, with no bookmark and no hold there (Proxmox destroys and rolls back freely); the backup server holds it; the Proxmox snapshot stays', async () => {
    const src = await tree('rpool/data/vm-100-disk-0');
    const snap = first.find((g) => g.vmid === 100)?.snapshot ?? '';
    assert.deepEqual(
      src.filter((n) => n.includes('bak-zbm-')),
      [`rpool/data/vm-100-disk-0@${snap}`],
    );
    assert.ok(src.includes('rpool/data/vm-100-disk-0@before-upgrade'));
    assert.deepEqual(await holds('rpool/data', 'pve1'), []);
    assert.deepEqual(await holds('main/bak-zbm/vm-100-disk-0'), [
      `main/bak-zbm/vm-100-disk-0@${snap}\tzbm-base:pve:zbm-dest`,
    ]);
    // The backup server keeps both backups.
    assert.equal(
      snapshotsOf(await tree('main/bak-zbm/vm-100-disk-0'), 'main/bak-zbm/vm-100-disk-0').length,
      2,
    );
    // The second run's destroys went through a channel program on the node, not one zfs call per
    // disk; nothing was ever bookmarked there.
    const zfsLog = (await sh('cat /var/log/lab/zfs.log')).split('\n');
    const node = zfsLog.filter((l) => l.includes(' rpool/data/'));
    assert.ok(
      zfsLog.some((l) => /^\S+ \d+ program -j rpool - /.test(l)),
      'the destroys in a program',
    );
    assert.deepEqual(
      node.filter((l) => /^\S+ \d+ (bookmark|hold|destroy) rpool\/data\//.test(l)),
      [],
      'no bookmark, no hold, no per-disk snapshot destroy on the node',
    );
  });

  it('resumes an interrupted transfer where it stopped, instead of starting over', async () => {
    await writeZvol('rpool/data/vm-102-disk-0', 8);
    // Interrupted (Ctrl-C) once 1 MiB of the 8 MiB increment has arrived (512 KiB/s).
    const killed = await killMidStream(
      [...ORIGINAL, '--vmid', '102', '--bwlimit', '512K'],
      'main/bak-zbm/vm-102-disk-0',
      { signal: 'INT' },
    );
    assert.equal(killed.code, 130, killed.stderr);
    await receivesDone('zbm-dest');
    const token = (await sh('zfs get -H -o value receive_resume_token main/bak-zbm/vm-102-disk-0')).trim();
    assert.match(token, /^1-/, 'a partial receive was kept');
    assert.equal((await vm('pgrep -f "[z]fs (send|receive)"')).code, 1, 'no zfs process outlived zbm');

    const r = await zbm('pve1', [...ORIGINAL, '--vmid', '102', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const d = disk(guests(r.stdout), 'vm-102-disk-0');
    assert.equal(d.resumed, 'resumed');
    // The 8 MiB increment is a little more than 8 MiB as a stream; 1 MiB of it had arrived.
    assert.ok(d.bytes < 7.5 * 1024 * 1024, `resumed run moved ${d.bytes} bytes, not the whole 8 MiB again`);
    assert.equal(await zvolHash('main/bak-zbm/vm-102-disk-0'), await zvolHash('rpool/data/vm-102-disk-0'));
    assert.equal(
      (await sh('zfs get -H -o value receive_resume_token main/bak-zbm/vm-102-disk-0')).trim(),
      '-',
    );
  });

  it('a SIGKILLed run leaves no transfer running: the stream, which bypasses zbm, stops with it', async () => {
    const ds = 'main/bak-zbm/vm-102-disk-0';
    const newestBefore = snapshotsOf(await tree(ds), ds).at(-1);
    await writeZvol('rpool/data/vm-102-disk-0', 4);
    // The receive is held at its start: the stream fills the pipes and waits, zbm is killed then.
    await closeGate('receive');
    try {
      const killed = await vm(
        `zbm ${shellJoin([...ORIGINAL, '--vmid', '102'])} >/dev/null 2>&1 & pid=$!
        for i in $(seq 1200); do [ -e /run/lab/gated-receive ] && break; sleep 0.1; done
        kill -KILL $pid; wait $pid`,
      );
      assert.equal(killed.code, 137, killed.stderr);
    } finally {
      await openGate('receive');
    }
    await receivesDone('zbm-dest');
    // The send ended with zbm, so the receive got a cut stream: nothing new arrived.
    assert.equal(
      (await vm('for i in $(seq 600); do pgrep -f "[z]fs (send|receive)" || exit 1; sleep 0.1; done')).code,
      1,
      'a zfs send or receive outlived zbm',
    );
    assert.equal(snapshotsOf(await tree(ds), ds).at(-1), newestBefore);
    const r = await zbm('pve1', [...ORIGINAL, '--vmid', '102']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await zvolHash(ds), await zvolHash('rpool/data/vm-102-disk-0'));
  });

  it('clears a stale resume token (its snapshot is gone) and continues from the common base, saying so', async () => {
    await writeZvol('rpool/data/vm-102-disk-0', 8);
    // The terminal it ran in went away (SIGHUP).
    const hungUp = await killMidStream(
      [...ORIGINAL, '--vmid', '102', '--bwlimit', '512K'],
      'main/bak-zbm/vm-102-disk-0',
      { signal: 'HUP' },
    );
    assert.equal(hungUp.code, 130, hungUp.stderr);
    await receivesDone('zbm-dest');
    assert.match(
      (await sh('zfs get -H -o value receive_resume_token main/bak-zbm/vm-102-disk-0')).trim(),
      /^1-/,
    );
    // The interrupted snapshot disappears on the node (an admin, or a crash before it was protected).
    const src = await tree('rpool/data/vm-102-disk-0');
    const newest = src.filter((n) => n.includes('@bak-zbm-')).at(-1) ?? '';
    await sh(shellJoin(['zfs', 'destroy', newest]));

    const r = await zbm('pve1', [...ORIGINAL, '--vmid', '102', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /cannot resume/);
    const d = disk(guests(r.stdout), 'vm-102-disk-0');
    assert.equal(d.resumed, 'stale-token-cleared');
    assert.equal(d.mode, 'incremental');
    assert.equal(await zvolHash('main/bak-zbm/vm-102-disk-0'), await zvolHash('rpool/data/vm-102-disk-0'));
  });

  it('refuses a diverged target and leaves it untouched; the other guests still get backed up', async () => {
    await sh('zfs snapshot main/bak-zbm/vm-102-disk-0@intruder');
    const before = await tree('main/bak-zbm/vm-102-disk-0');
    const r = await zbm('pve1', [...ORIGINAL, '--vmid', '102,104', '--json']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /main\/bak-zbm\/vm-102-disk-0 has diverged/);
    assert.match(r.stderr, /intruder/);
    assert.match(r.stderr, /zfs rollback -r main\/bak-zbm\/vm-102-disk-0@bak-zbm-/);
    assert.deepEqual(await tree('main/bak-zbm/vm-102-disk-0'), before);
    const gs = guests(r.stdout);
    assert.equal(gs.find((g) => g.vmid === 102)?.result, 'failed');
    assert.equal(gs.find((g) => g.vmid === 104)?.result, 'ok');
  });

  it('changes nothing with --dry-run and prints the plan', async () => {
    const before = [...(await tree('rpool')), ...(await tree('main'))];
    const r = await zbm('pve1', [...ORIGINAL, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /vm-100-disk-0 → main\/bak-zbm\/vm-100-disk-0: incremental from rpool\/data\/vm-100-disk-0@bak-zbm-/,
    );
    assert.deepEqual([...(await tree('rpool')), ...(await tree('main'))], before);
  });

  it('a backup server that cannot take the backups leaves the node as it was: the snapshots taken meanwhile are destroyed', async () => {
    const before = await tree('rpool');
    const args = ORIGINAL.map((a) => (a === 'main/bak-zbm' ? 'nopool/bak-zbm' : a));
    const r = await zbm('pve1', [...args, '--vmid', '100']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /on zbm-dest: .*nopool/);
    // Taken while the server was listed, then destroyed: the node is as the run found it.
    assert.match(r.stderr, /destroyed the 4 snapshot\(s\) this run took: nothing could be sent/);
    assert.deepEqual(await tree('rpool'), before);
  });

  it('without -y and without a terminal destroys nothing on the node, and says so', async () => {
    const args = ORIGINAL.filter((a) => a !== '-y');
    const r = await zbm('pve1', [...args, '--vmid', '104']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /kept on this node: run with -y/);
    assert.equal(
      snapshotsOf(await tree('rpool/data/subvol-104-disk-0'), 'rpool/data/subvol-104-disk-0').length,
      2,
    );
  });

  it('continues incrementally from the new node after the guest migrates, with one hold on the backup server', async () => {
    // Proxmox moves the config to the new node and the datasets with their snapshots (guids kept).
    // In the lab the pool stays where it is, which is what zbm sees on the new node: the same
    // dataset names and guids.
    await sh(
      `sed -i 's/"104": { "node": "pve1"/"104": { "node": "pve2"/' /etc/pve/.vmlist && mv /etc/pve/nodes/pve1/lxc/104.conf /etc/pve/nodes/pve2/lxc/`,
    );
    const r = await zbm('pve1', [...ORIGINAL, '--node', 'pve2', '--vmid', '104', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const d = disk(guests(r.stdout), 'subvol-104-disk-0');
    assert.equal(d.mode, 'incremental');
    const newest = (await tree('main/bak-zbm/subvol-104-disk-0')).at(-1) ?? '';
    assert.deepEqual(await holds('main/bak-zbm/subvol-104-disk-0'), [`${newest}\tzbm-base:pve:zbm-dest`]);
    // The old node no longer backs it up.
    const old = await zbm('pve1', [...ORIGINAL, '--vmid', '104', '--json']);
    assert.match(old.stderr, /104/);
    assert.equal(guests(old.stdout).length, 0);
  });
});
