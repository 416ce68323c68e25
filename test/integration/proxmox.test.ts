/**
 * Proxmox's own operations on guests that zbm backs up, in the middle of a chain of backups, with
 * exactly the zfs commands Proxmox runs (test/lab/pve-ops.ts): a rollback to an admin's snapshot,
 * `qm destroy`, pvesr storage replication, a guest locked by vzdump; then one replicate and one
 * prune. Each case goes on from the state the one before left (one lab reset for the file).
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { snapshotName } from '../../src/conventions/names.ts';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE, verifyCommand } from '../lab/commands.ts';
import {
  holds,
  it,
  type LabHost,
  prop,
  reset,
  sh,
  suite,
  tree,
  writeZvol,
  zbm,
  zvolHash,
} from '../lab/lab.ts';
import * as pve from '../lab/pve-ops.ts';
import { keptByRules } from '../lab/retention.ts';

const disks = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `rpool/data/${prefix}-disk-${i}`);
const VM100: pve.PveGuest = { vmid: 100, type: 'qemu', disks: disks('vm-100', 4) };
/** Every volume qm destroy removes: scsi0, scsi1 (backup=0) and unused0. */
const VM101: pve.PveGuest = { vmid: 101, type: 'qemu', disks: disks('vm-101', 3) };
const VM102: pve.PveGuest = { vmid: 102, type: 'qemu', disks: disks('vm-102', 1) };
const CT104: pve.PveGuest = { vmid: 104, type: 'lxc', disks: disks('subvol-104', 1) };
/** prepare-rollback's backup server: where BACKUP_PVE sends the disks. */
const SERVER = ['--remote', 'zbm-dest', '--remote-zfs-root', 'main/bak-zbm'] as const;

interface JsonGuest {
  vmid: number;
  snapshot: string | null;
  result: string;
  error?: string;
  disks: { source: string; mode: string }[];
}

const guests = (stdout: string) => (JSON.parse(stdout) as { guests: JsonGuest[] }).guests;
const guest = (gs: JsonGuest[], vmid: number) => {
  const g = gs.find((x) => x.vmid === vmid);
  assert.ok(g, `guest ${vmid} in ${JSON.stringify(gs.map((x) => x.vmid))}`);
  return g;
};

/** backup-pve with the original design's command and --json; the exit code as expected. */
async function backup(extra: readonly string[], code = 0): Promise<JsonGuest[]> {
  const r = await zbm('pve1', [...BACKUP_PVE, ...extra, '--json']);
  assert.equal(r.code, code, `backup-pve ${extra.join(' ')} exited ${r.code}\n${r.stderr}`);
  return guests(r.stdout);
}

/** The whole tree under root, sorted here so that the expected lists need no zfs sort order. */
const sorted = async (root: string, host: LabHost = 'zbm-dest') => (await tree(root, host)).sort();
const snapsOf = (t: readonly string[], ds: string) =>
  t.filter((n) => n.startsWith(`${ds}@`)).map((n) => n.slice(ds.length + 1));
const withSnaps = (ds: string, shorts: readonly string[]) => [ds, ...shorts.map((s) => `${ds}@${s}`)].sort();

suite('Proxmox operations in the middle of a chain of backups (real ZFS)', 25, () => {
  before(async () => {
    await reset();
  });

  it("rollback: Proxmox refuses while zbm's newer snapshot is there; after zbm prepare-rollback, qm rollback's check and zfs rollback succeed, the guest is unlocked and back at the snapshot, every restore point stays; the next backups go on in a new chain beside the old one, a clone of the snapshot the disk still shares", async () => {
    const first = await backup([]);
    await writeZvol('rpool/data/vm-100-disk-0', 1, 8);
    await pve.snapshot(VM100, 'admin1');
    const atAdmin = await zvolHash('rpool/data/vm-100-disk-0');
    await writeZvol('rpool/data/vm-100-disk-0', 1, 16);
    const second = await backup(['--vmid', '100']);
    const bak1 = guest(first, 100).snapshot ?? '';
    const bak2 = guest(second, 100).snapshot ?? '';
    assert.match(bak2, /^bak-zbm-/);

    // On the node: zbm's newest snapshot and, before admin1, the newest one the server has (the
    // anchor the next backup after a rollback can start from); no hold, no bookmark.
    const d0 = 'rpool/data/vm-100-disk-0';
    assert.deepEqual(await sorted(d0, 'pve1'), withSnaps(d0, ['before-upgrade', bak1, 'admin1', bak2]));
    assert.deepEqual(await holds('rpool/data', 'pve1'), []);
    const server = await sorted('main/bak-zbm');
    const live = await zvolHash(d0);

    // What an admin meets without zbm's step: Proxmox's check refuses, before anything changes.
    await assert.rejects(
      pve.rollback(VM100, 'admin1'),
      /can't rollback, 'admin1' is not most recent snapshot on 'local-zfs:vm-100-disk-0'/,
    );
    assert.equal(await pve.lockOf(VM100), null);
    assert.equal(await zvolHash(d0), live);

    const prep = await zbm('pve1', [
      'prepare-rollback',
      '--vmid',
      '100',
      '--snapshot',
      'admin1',
      ...SERVER,
      '-y',
    ]);
    assert.equal(prep.code, 0, prep.stderr);
    assert.match(prep.stdout, /zbm is out of the way: qm rollback 100 admin1/);
    // It says what comes next: a new chain beside the old one.
    assert.match(
      prep.stderr,
      /^warning: guest 100: the backup server keeps every restore point, .* the next backup of each of its disks starts a new chain beside the old one/m,
    );
    await pve.rollback(VM100, 'admin1');
    assert.equal(await pve.lockOf(VM100), null, 'the guest is not left locked');
    // The zvol's cached pages still hold what was written before the rollback.
    await sh('blockdev --flushbufs /dev/zvol/rpool/data/vm-100-disk-0', 'pve1');
    assert.equal(await zvolHash(d0), atAdmin, 'the disk is back at the snapshot');
    for (const ds of VM100.disks)
      assert.deepEqual(
        await sorted(ds, 'pve1'),
        withSnaps(ds, [...(ds === d0 ? ['before-upgrade'] : []), bak1, 'admin1']),
        ds,
      );
    assert.deepEqual(await sorted('main/bak-zbm'), server, 'every restore point stays on the backup server');

    // The server's chain has bak2 after bak1, which the disk no longer has: each disk's backups go
    // on in a new chain named for its first snapshot, a clone of bak1 and one increment from it.
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const third = guest(guests(r.stdout), 100);
    const bak3 = third.snapshot ?? '';
    assert.deepEqual(
      third.disks.map((d) => d.mode),
      VM100.disks.map(() => 'incremental'),
    );
    const chains = VM100.disks.map((ds) => `main/bak-zbm/${ds.slice('rpool/data/'.length)}.${bak3}`);
    assert.match(
      r.stderr,
      new RegExp(
        `^warning: guest 100[^:]*: disk \\w+: zbm-dest:main/bak-zbm/vm-100-disk-0 has diverged from pve1:rpool/data/vm-100-disk-0: snapshots the source never had after the common one: ${bak2} .*Its backups go on in a new chain, main/bak-zbm/vm-100-disk-0\\.${bak3}, a clone of main/bak-zbm/vm-100-disk-0@${bak1}; the older chain stays`,
        'm',
      ),
    );
    assert.deepEqual(
      await sorted('main/bak-zbm'),
      [...server, ...chains.flatMap((c) => withSnaps(c, [bak3]))].sort(),
      'the old chains untouched, one new chain per disk',
    );
    for (const c of chains)
      assert.equal(await prop(c, 'origin'), `${c.slice(0, c.lastIndexOf('.'))}@${bak1}`, c);
    assert.equal(await zvolHash(chains[0] ?? ''), atAdmin, 'the new chain holds the rolled-back disk');

    // And the next backup goes on in the new chain, incrementally: no "diverged" on every run.
    await writeZvol(d0, 1, 24);
    const fourth = guest(await backup(['--vmid', '100']), 100);
    assert.deepEqual(
      fourth.disks.map((d) => d.mode),
      VM100.disks.map(() => 'incremental'),
    );
    assert.deepEqual(
      await sorted(chains[0] ?? ''),
      withSnaps(chains[0] ?? '', [bak3, fourth.snapshot ?? '']),
    );
    assert.equal(await zvolHash(chains[0] ?? ''), await zvolHash(d0, 'pve1'));
  });

  it("rollback with a zbm snapshot the backup server never received: prepare-rollback refuses, naming the server and each dataset, and changes nothing; with --force it destroys it and Proxmox's check passes", async () => {
    const d0 = 'rpool/data/vm-100-disk-0';
    // What backup-pve leaves when its send fails after the snapshot (as the refused run above did
    // on every disk): a zbm snapshot newer than admin1 that only the node has.
    const made = `${d0}@${snapshotName('bak-zbm-', new Date())}`;
    await sh(`zfs snapshot ${made}`, 'pve1');
    const node = await sorted('rpool/data', 'pve1');
    const server = await sorted('main/bak-zbm');
    const unsent = VM100.disks.map((ds) => {
      // In any chain of the disk: its first one, and the new one the backup after the rollback began.
      const copy = `main/bak-zbm/${ds.slice('rpool/data/'.length)}`;
      const there = new Set(
        server
          .filter((n) => n.startsWith(`${copy}@`) || n.startsWith(`${copy}.`))
          .map((n) => n.split('@')[1]),
      );
      return { ds, snaps: snapsOf(node, ds).filter((x) => x.startsWith('bak-zbm-') && !there.has(x)) };
    });
    assert.ok(
      unsent.find((u) => u.ds === d0)?.snaps.includes(made.slice(d0.length + 1)),
      JSON.stringify(unsent),
    );

    const args = ['prepare-rollback', '--vmid', '100', '--snapshot', 'admin1', ...SERVER, '-y'];
    const refused = await zbm('pve1', args);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /^error: guest 100 on pve1: nothing destroyed: zbm snapshots the backup server zbm-dest does not have/m,
    );
    for (const { ds, snaps } of unsent.filter((u) => u.snaps.length > 0)) {
      const line = refused.stderr.split('\n').find((l) => l.includes(`pve1:${ds}: `)) ?? '';
      assert.match(
        line,
        new RegExp(`not on zbm-dest:main/bak-zbm/${ds.slice('rpool/data/'.length)}$`),
        refused.stderr,
      );
      for (const x of snaps) assert.match(line, new RegExp(`${x} \\(guid \\d+\\)`), refused.stderr);
    }
    assert.deepEqual(await sorted('rpool/data', 'pve1'), node, "the node's tree is unchanged");

    // zbm's snapshots newer than admin1, by the pool's order: the ones the server has in the new
    // chain go without --force, the unsent one only with it.
    const order = (await sh('zfs list -H -t snapshot -o name -s createtxg -r rpool/data', 'pve1')).split(
      '\n',
    );
    const newer = VM100.disks.flatMap((ds) => {
      const mine = order.filter((n) => n.startsWith(`${ds}@`));
      return mine.slice(mine.indexOf(`${ds}@admin1`) + 1).filter((n) => n.includes('@bak-zbm-'));
    });
    const forced = await zbm('pve1', [...args, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /zbm is out of the way: qm rollback 100 admin1/);
    const lost = new Set(unsent.flatMap((u) => u.snaps.map((x) => `${u.ds}@${x}`)));
    assert.ok(
      [...lost].every((n) => newer.includes(n)),
      `${[...lost]} in ${newer}`,
    );
    assert.match(
      forced.stderr,
      new RegExp(
        `warning: guest 100: --force destroyed restore points zbm-dest does not have, which exist nowhere else now: ${made}$`,
        'm',
      ),
    );
    assert.deepEqual(
      await sorted('rpool/data', 'pve1'),
      node.filter((n) => !newer.includes(n)),
    );
    for (const ds of VM100.disks) assert.deepEqual(await pve.rollbackBlockers(ds, 'admin1'), [], ds);
    assert.deepEqual(await sorted('main/bak-zbm'), server);
  });

  it("qm destroy: zfs destroy -r of every volume succeeds with zbm's snapshot on the disk; the guest's restore points stay on the backup server and the next backup goes on without it", async () => {
    const ds = 'rpool/data/vm-101-disk-0';
    assert.ok(
      snapsOf(await tree(ds, 'pve1'), ds).some((s) => s.startsWith('bak-zbm-')),
      "zbm's snapshot is there",
    );
    const kept = await sorted('main/bak-zbm/vm-101-disk-0');
    assert.ok(kept.some((n) => n.includes('@bak-zbm-')));

    assert.deepEqual(await pve.destroyGuest(VM101), [], 'every volume removed');
    assert.deepEqual(
      (await tree('rpool/data', 'pve1')).filter((n) => n.includes('vm-101-')),
      [],
    );
    const gs = await backup(['--exclude', '100']);
    assert.deepEqual(
      gs.map((g) => [g.vmid, g.result]),
      [
        [102, 'ok'],
        [103, 'ok'],
        [104, 'ok'],
      ],
    );
    assert.deepEqual(await sorted('main/bak-zbm/vm-101-disk-0'), kept);
  });

  it("pvesr: two replication runs (zfs send -RpvU -I into zfs recv -F) succeed with zbm's snapshots on the disk, which travel and are destroyed there again as the source loses them; zbm's next backups stay incremental and match the disk", async () => {
    const ds = VM102.disks[0] as string;
    const copy = 'replica/data/vm-102-disk-0';
    await sh('zfs create replica/data', 'pve1');
    const job: pve.ReplicationJob = { id: '102-0', targetRoot: 'replica/data', last: null };

    const zbmBefore = snapsOf(await tree(ds, 'pve1'), ds);
    assert.equal(zbmBefore.length, 1, `${zbmBefore}`);
    const r1 = await pve.replicateGuest(VM102, job);
    assert.deepEqual(await sorted(copy, 'pve1'), withSnaps(copy, [...zbmBefore, r1]));

    await writeZvol(ds, 1, 4);
    const b = guest(await backup(['--vmid', '102']), 102);
    assert.equal(b.disks[0]?.mode, 'incremental');
    const bak = b.snapshot ?? '';
    const r2 = await pve.replicateGuest(VM102, job);
    // recv -F removed the zbm snapshot the source no longer has; pvesr's older snapshot goes on its next run.
    assert.deepEqual(await sorted(copy, 'pve1'), withSnaps(copy, [r1, bak, r2]));
    assert.deepEqual(await sorted(ds, 'pve1'), withSnaps(ds, [bak, r2]));
    assert.deepEqual(await holds(copy, 'pve1'), []);

    await writeZvol(ds, 1, 12);
    const c = guest(await backup(['--vmid', '102']), 102);
    assert.equal(c.disks[0]?.mode, 'incremental');
    assert.deepEqual(await sorted(ds, 'pve1'), withSnaps(ds, [r2, c.snapshot ?? '']));
    assert.equal(await zvolHash('main/bak-zbm/vm-102-disk-0'), await zvolHash(ds));
  });

  it('a guest vzdump holds (lock: backup) is skipped, named with its lock, never snapshotted; the others are backed up; exit code 1', async () => {
    await pve.setLock(CT104, 'backup');
    const ds = CT104.disks[0] as string;
    const before104 = await sorted(ds, 'pve1');
    const r = await zbm('pve1', [...BACKUP_PVE, '--exclude', '100', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /guest 104: skipped: locked by Proxmox \(lock: backup\).*retried on the next run/);
    const gs = guests(r.stdout);
    assert.deepEqual(
      gs.map((g) => [g.vmid, g.result]),
      [
        [102, 'ok'],
        [103, 'ok'],
        [104, 'skipped'],
      ],
    );
    assert.match(guest(gs, 104).error ?? '', /lock: backup/);
    assert.deepEqual(await sorted(ds, 'pve1'), before104, 'no snapshot of the locked guest');
    assert.equal(await zvolHash('main/bak-zbm/vm-102-disk-0'), await zvolHash('rpool/data/vm-102-disk-0'));
    await pve.unlock(CT104);
    assert.equal(await pve.lockOf(CT104), null);
  });

  it("failover onto pvesr's copy, which missed the newest backup: the next backup goes on in a new chain, a clone of the last backup the copy has; a disk moved to a fresh zvol (qm disk move) starts one as a full copy", async () => {
    const ds = VM102.disks[0] as string;
    const server = await sorted('main/bak-zbm');
    const copyHas = snapsOf(await sorted('replica/data/vm-102-disk-0', 'pve1'), 'replica/data/vm-102-disk-0');
    const shared = copyHas.filter((s) => s.startsWith('bak-zbm-')).at(-1) ?? '';
    assert.ok(snapsOf(server, 'main/bak-zbm/vm-102-disk-0').includes(shared), shared);
    await pve.failover(VM102, { id: '102-0', targetRoot: 'replica/data', last: null });
    // Guest 100 is at admin1 again after the forced prepare-rollback above: a second rollback.
    // Its disks keep one zbm snapshot, bak1, which neither of their chains can go on from.
    const anchors = await Promise.all(
      VM100.disks.map(async (d) =>
        snapsOf(await sorted(d, 'pve1'), d).filter((x) => x.startsWith('bak-zbm-')),
      ),
    );
    const moved = VM100.disks[3] as string;
    const before = await zvolHash(moved);
    await pve.freshVolume(moved);
    assert.equal(await zvolHash(moved), before, 'the same content, no snapshot');
    assert.deepEqual(await sorted(moved, 'pve1'), [moved]);

    const gs = await backup(['--vmid', '100,102']);
    const vm102 = guest(gs, 102);
    const chain102 = `main/bak-zbm/vm-102-disk-0.${vm102.snapshot}`;
    assert.deepEqual(
      vm102.disks.map((d) => d.mode),
      ['incremental'],
    );
    assert.equal(await prop(chain102, 'origin'), `main/bak-zbm/vm-102-disk-0@${shared}`);
    assert.equal(await zvolHash(chain102), await zvolHash(ds));
    const vm100 = guest(gs, 100);
    assert.deepEqual(
      vm100.disks.map((d) => [d.source, d.mode]).sort(),
      VM100.disks.map((d) => [d, d === moved ? 'full' : 'incremental']),
    );
    // A third chain per disk: clones of bak1 where the disk has it, a full copy of the fresh zvol.
    const chains100 = VM100.disks.map(
      (d) => `main/bak-zbm/${d.slice('rpool/data/'.length)}.${vm100.snapshot}`,
    );
    for (const [i, c] of chains100.entries()) {
      const primary = c.slice(0, c.lastIndexOf('.'));
      assert.equal(await prop(c, 'origin'), i === 3 ? '-' : `${primary}@${anchors[i]?.[0]}`, c);
    }
    assert.equal(await zvolHash(chains100[3] ?? ''), before);
    assert.equal(await zvolHash(chains100[0] ?? ''), await zvolHash(VM100.disks[0] ?? ''));
    assert.deepEqual(
      await sorted('main/bak-zbm'),
      [
        ...server,
        ...withSnaps(chain102, [vm102.snapshot ?? '']),
        ...chains100.flatMap((c) => withSnaps(c, [vm100.snapshot ?? ''])),
      ].sort(),
    );
  });

  it("qm template and 5 linked clones: the template's @__base__ goes once, a clone of its last backup, and stays; each linked clone starts as a clone of it, so the server holds the template once plus the clones' changes; qm destroy of a clone still succeeds", async () => {
    const disk = VM102.disks[0] as string;
    const lastBackup =
      snapsOf(await sorted(disk, 'pve1'), disk)
        .filter((x) => x.startsWith('bak-zbm-'))
        .at(-1) ?? '';
    // Its own family's copy: a run names every guest's snapshot alike, so the name alone is not it.
    const family = `main/bak-zbm/${disk.slice('rpool/data/'.length)}`;
    const chainHas =
      (await sorted('main/bak-zbm')).find(
        (n) => (n.startsWith(`${family}@`) || n.startsWith(`${family}.`)) && n.endsWith(`@${lastBackup}`),
      ) ?? '';
    assert.ok(chainHas, `the server has ${lastBackup}`);
    // A template worth sharing: 4 MiB more before qm template.
    await writeZvol(disk, 4, 8);
    const T = await pve.template(VM102);
    const base = T.disks[0] as string;
    const baseGuid = await prop(`${base}@__base__`, 'guid');
    const created = Number(await prop(`${base}@__base__`, 'creation'));
    const named = snapshotName('bak-zbm-', new Date(created * 1000));
    const clones = [];
    for (const vmid of [105, 106, 107, 108, 109]) {
      const c = await pve.linkedClone(T, vmid);
      await writeZvol(c.disks[0] as string, 1, vmid - 100);
      clones.push(c);
    }
    const nodeBefore = await sorted(base, 'pve1');

    const gs = await backup(['--vmid', '102,105,106,107,108,109']);
    const t = guest(gs, 102);
    assert.equal(t.snapshot, named);
    assert.deepEqual(
      t.disks.map((d) => [d.source, d.mode]),
      [[base, 'incremental']],
    );
    const server = `main/bak-zbm/${base.slice('rpool/data/'.length)}`;
    // Started from the last backup the disk had before it became a template, by guid.
    assert.equal(await prop(server, 'origin'), chainHas);
    assert.equal(await prop(`${server}@${named}`, 'guid'), baseGuid);
    assert.equal(await zvolHash(server), await zvolHash(base));
    // zbm took no snapshot of the template: the node has what it had.
    assert.deepEqual(await sorted(base, 'pve1'), nodeBefore);
    const used: number[] = [];
    for (const c of clones) {
      const g = guest(gs, c.vmid);
      assert.deepEqual(
        g.disks.map((d) => [d.source, d.mode]),
        [[c.disks[0], 'incremental']],
      );
      const there = `main/bak-zbm/vm-${c.vmid}-disk-0`;
      assert.equal(await prop(there, 'origin'), `${server}@${named}`);
      assert.equal(await zvolHash(there), await zvolHash(c.disks[0] as string));
      used.push(Number(await prop(there, 'used')));
    }
    // The space: the template once (its referenced), each clone only what it changed (1 MiB).
    const referenced = Number(await prop(server, 'referenced'));
    const total = used.reduce((a, b) => a + b, 0);
    console.log(
      `5 linked clones on the backup server: ${used.join(', ')} bytes used (sum ${total}); the template refers to ${referenced} bytes`,
    );
    for (const u of used)
      assert.ok(u < 2 * 1024 * 1024, `a clone uses ${u} bytes: its 1 MiB change, not the template`);

    // The next run: the template is up to date and its manifest is not written again.
    const manifests = await sh('ls /root/backups_metadata/102');
    const next = await backup(['--vmid', '102,105']);
    assert.deepEqual(
      guest(next, 102).disks.map((d) => d.mode),
      ['up-to-date'],
    );
    assert.equal(guest(next, 102).snapshot, named);
    assert.deepEqual(
      guest(next, 105).disks.map((d) => d.mode),
      ['incremental'],
    );
    assert.equal(await sh('ls /root/backups_metadata/102'), manifests);
    assert.deepEqual(snapsOf(await sorted('main/bak-zbm'), server), [named]);

    // Restore brings a linked clone back as a linked clone of the template here (its @__base__ is
    // its copy's origin on the server, by guid): the data, the config's volume, a clone's space.
    const c106 = clones[1]?.disks[0] as string;
    const restored = await zbm('pve1', [
      'restore',
      '--remote',
      'zbm-dest',
      '--remote-zfs-root',
      'main/bak-zbm',
      '--vmid',
      '106',
      '--as-vmid',
      '206',
    ]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.doesNotMatch(restored.stderr, /full copy/);
    const r206 = 'rpool/data/vm-206-disk-0';
    assert.equal(await prop(r206, 'origin', 'pve1'), `${base}@__base__`);
    assert.equal(await zvolHash(r206, 'pve1'), await zvolHash(c106, 'pve1'));
    assert.ok(
      Number(await prop(r206, 'used', 'pve1')) < 2 * 1024 * 1024,
      'a clone: its change, not the template',
    );
    assert.match(
      await sh('cat /etc/pve/nodes/pve1/qemu-server/206.conf', 'pve1'),
      /^scsi0: local-zfs:base-102-disk-0\/vm-206-disk-0,size=64M$/m,
    );

    // qm destroy of a linked clone: zfs destroy -r succeeds with zbm's snapshot on it.
    const last = clones.pop() as pve.PveGuest;
    assert.deepEqual(await pve.destroyGuest(last), []);
  });

  it('then one replicate mirrors every restore point, the destroyed guest’s included, each new chain as a clone; one prune keeps what its rules (per disk, over its chains), the holds, the clones and the replica need; verify and drill read every chain', async () => {
    const rep = await zbm('zbm-dest', REPLICATE);
    assert.equal(rep.code, 0, rep.stderr);
    const dest = await sorted('main/bak-zbm');
    assert.ok(dest.includes('main/bak-zbm/vm-101-disk-0'));
    // replicate bookmarks its base on the backup server only.
    assert.deepEqual(
      await sorted('main/bak-zbm', 'zbm-replica'),
      dest.filter((n) => !n.includes('#')),
    );
    // The new chain of vm-100-disk-0 arrived as a clone of the replica's own copy of its origin (a
    // full receive has no origin): the replica holds the disk once, plus what changed since.
    const datasets = dest.filter((n) => !n.includes('@') && !n.includes('#'));
    const later = datasets.find((d) => d.startsWith('main/bak-zbm/vm-100-disk-0.')) ?? '';
    const origin = await prop(later, 'origin');
    assert.match(origin, /^main\/bak-zbm\/vm-100-disk-0@bak-zbm-/);
    assert.equal(await prop(later, 'origin', 'zbm-replica'), origin);
    // The template after the chain it was cloned from, each linked clone after the template.
    for (const ds of ['main/bak-zbm/base-102-disk-0', 'main/bak-zbm/vm-105-disk-0']) {
      const o = await prop(ds, 'origin');
      assert.match(o, /^main\/bak-zbm\/(vm|base)-102-disk-0[.@]/);
      assert.equal(await prop(ds, 'origin', 'zbm-replica'), o, ds);
    }

    const held = new Set((await holds('main/bak-zbm')).map((l) => l.split('\t')[0]));
    const origins = new Set(
      (await sh('zfs get -H -o value -t filesystem,volume -r origin main/bak-zbm'))
        .split('\n')
        .filter((o) => o.includes('@')),
    );
    const p = await zbm('zbm-dest', PRUNE_DEST);
    assert.equal(p.code, 0, p.stderr);
    // The rules count a disk's restore points over all its chains; safety stays per dataset.
    const family = (d: string) => d.replace(/\.bak-zbm-\d{8}T\d{6}Z$/, '');
    const expected = datasets.flatMap((d) => {
      const shorts = snapsOf(dest, d).sort();
      const all = datasets.filter((x) => family(x) === family(d)).flatMap((x) => snapsOf(dest, x));
      const kept = keptByRules([...new Set(all)].sort(), { last: 2, hourly: 2 });
      // Held snapshots (the node's bases, replicate's base), the newest (in common with the
      // replica), and a new chain's origin.
      const keep = shorts.filter(
        (s) => kept.has(s) || held.has(`${d}@${s}`) || s === shorts.at(-1) || origins.has(`${d}@${s}`),
      );
      return [d, ...keep.map((s) => `${d}@${s}`)];
    });
    assert.deepEqual(
      (await sorted('main/bak-zbm')).filter((n) => !n.includes('#')),
      expected.sort(),
    );
    // The replica keeps every restore point until its own prune.
    assert.deepEqual(
      await sorted('main/bak-zbm', 'zbm-replica'),
      dest.filter((n) => !n.includes('#')),
    );

    // verify judges each disk over its chains: the old one gets no backup any more, yet nothing is stale.
    const v = await zbm('zbm-dest', verifyCommand(1));
    // The lab's guest 102 has a disk on a storage zbm does not back up: its one WARNING.
    assert.equal(v.code, 1, v.stdout + v.stderr);
    const notOk = v.stdout.split('\n').filter((l) => /^(WARNING|CRITICAL|UNKNOWN) /.test(l));
    assert.equal(notOk.length, 1, v.stdout);
    assert.match(
      notOk[0] ?? '',
      /^WARNING guest 102 \(noagent\): .* lacks disk\(s\): sata0 \(storage "local"/,
    );
    assert.match(
      v.stdout,
      /^OK main\/bak-zbm\/vm-100-disk-0: newest bak-zbm-\S+ .* in main\/bak-zbm\/vm-100-disk-0\.bak-zbm-\S+, \d+ snapshots in 3 chains$/m,
    );
    assert.doesNotMatch(v.stdout, /^\S+ main\/bak-zbm\/vm-100-disk-0\.bak-zbm-/m);
    assert.match(
      v.stdout,
      /^OK main\/bak-zbm\/base-102-disk-0: a template's disk, backed up once: bak-zbm-\S+$/m,
    );
    // A restore point of each chain can be restored: every disk there with its recorded guid.
    const newest = await zbm('zbm-dest', ['drill', '--local-zfs-root', 'main/bak-zbm', '--vmid', '100']);
    assert.equal(newest.code, 0, newest.stdout + newest.stderr);
    const oldest = snapsOf(await sorted('main/bak-zbm'), 'main/bak-zbm/vm-100-disk-0').sort()[0] ?? '';
    const old = await zbm('zbm-dest', [
      'drill',
      '--local-zfs-root',
      'main/bak-zbm',
      '--vmid',
      '100',
      '--snapshot',
      oldest,
    ]);
    assert.equal(old.code, 0, old.stdout + old.stderr);
  });
});
