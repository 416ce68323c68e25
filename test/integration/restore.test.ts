import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE, REPLICATE } from '../lab/commands.ts';
import {
  exists,
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

const FROM_DEST = ['restore', '--remote', 'zbm-dest', '--remote-zfs-root', 'main/bak-zbm'];
const VM100 = ['vm-100-disk-0', 'vm-100-disk-1', 'vm-100-disk-2', 'vm-100-disk-3'];
const CONF = '/etc/pve/nodes/pve1';

async function hashes(volnames: readonly string[]): Promise<string[]> {
  return Promise.all(volnames.map((v) => zvolHash(`rpool/data/${v}`)));
}

async function fileHash(file: string): Promise<string> {
  return (await sh(`sha256sum ${file}`)).split(' ')[0] ?? '';
}

/** Every `local-zfs:` volume of a config as `dataset: exists|missing`, sorted. */
async function volumesOf(config: string): Promise<string[]> {
  const out: string[] = [];
  for (const m of config.matchAll(/local-zfs:([a-z]+-\d+-disk-\d+)/g)) {
    const ds = `rpool/data/${m[1]}`;
    out.push(`${ds}: ${(await exists(ds)) ? 'exists' : 'missing'}`);
  }
  return out.sort();
}

/** What volumesOf gives for a config whose volumes are exactly these datasets, all present. */
const present = (datasets: readonly string[]) => datasets.map((d) => `${d}: exists`).sort();

function snapshotOf(stdout: string, at: number): string {
  const rows = (JSON.parse(stdout) as { backups: { vmid: number; snapshot: string }[] }).backups;
  return rows.filter((r) => r.vmid === 100)[at]?.snapshot ?? '';
}

suite('restore on real ZFS', 20, () => {
  const h1: string[] = [];
  const h2: string[] = [];
  let s1 = '';
  let s2 = '';
  const ctFiles = ['/rpool/data/subvol-103-disk-0/data.bin', '/rpool/data/subvol-103-disk-1/data.bin'];
  const ctHashes: string[] = [];

  // The original backup command, limited to the two guests restored here to keep the lab time short.
  const BACKUP = [...BACKUP_PVE, '--vmid', '100,103'];

  before(async () => {
    await reset();
    h1.push(...(await hashes(VM100)));
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    await writeZvol('rpool/data/vm-100-disk-0', 1, 3);
    h2.push(...(await hashes(VM100)));
    ctHashes.push(...(await Promise.all(ctFiles.map(fileHash))));
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    assert.notEqual(h1[0], h2[0]);
  });

  it('list-backups shows every restore point, on the backup server and from the node', async () => {
    const here = await zbm('zbm-dest', ['list-backups', '--local-zfs-root', 'main/bak-zbm']);
    assert.equal(here.code, 0, here.stderr);
    assert.equal(
      here.stdout.split('\n').filter((l) => /^100 +qemu +web +bak-zbm-\d+T\d+Z .* 4\/4 /.test(l)).length,
      2,
    );
    assert.match(here.stdout, /^103 +lxc +ct-files .* 2\/2 /m);
    const r = await zbm('pve1', [
      'list-backups',
      '--remote',
      'zbm-dest',
      '--remote-zfs-root',
      'main/bak-zbm',
      '--vmid',
      '100',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = (JSON.parse(r.stdout) as { backups: { vmid: number; present: string[]; host: string }[] })
      .backups;
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[0]?.present.sort(), ['efidisk0', 'scsi0', 'scsi1', 'tpmstate0']);
    assert.equal(rows[0]?.host, 'zbm-dest');
    s1 = snapshotOf(r.stdout, 0);
    s2 = snapshotOf(r.stdout, 1);
    assert.ok(s1 < s2);
  });

  it('restores a container from the replica alone as a new guest: data, PVE properties, mounted, new MACs', async () => {
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    // The backup server's copies are out of reach: only the replica can serve this restore.
    await sh('zfs rename main/bak-zbm main/bak-zbm-away');
    try {
      const r = await zbm('pve1', [
        'restore',
        '--remote',
        'zbm-replica',
        '--remote-zfs-root',
        'main/bak-zbm',
        '--vmid',
        '103',
        '--as-vmid',
        '301',
        '--new-macs',
      ]);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await sh('zfs rename main/bak-zbm-away main/bak-zbm');
    }
    assert.deepEqual(await Promise.all(ctFiles.map((f) => fileHash(f.replace('-103-', '-301-')))), ctHashes);
    assert.equal(await prop('rpool/data/subvol-301-disk-0', 'refquota'), String(64 * 1024 * 1024));
    assert.equal(await prop('rpool/data/subvol-301-disk-1', 'acltype'), 'posix');
    const conf = await sh(`cat ${CONF}/lxc/301.conf`);
    assert.match(conf, /^rootfs: local-zfs:subvol-301-disk-0,size=64M$/m);
    assert.match(conf, /^mp0: local-zfs:subvol-301-disk-1,mp=\/srv\/data,backup=1,size=32M$/m);
    assert.match(conf, /^mp2: \/mnt\/bind,mp=\/mnt\/bind$/m);
    assert.doesNotMatch(conf, /subvol-103|^mp1:/m);
    assert.match(conf, /hwaddr=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},/);
    assert.doesNotMatch(conf, /BC:24:11:5A:10:03/);
  });

  it('restores VM 100 as new guest 300: data byte for byte, renamed disks, consistent config, 100 untouched', async () => {
    const conf100 = await sh(`cat ${CONF}/qemu-server/100.conf`);
    const tree100 = await tree('rpool/data/vm-100-disk-0');
    const before = await tree('rpool');

    // 200 is a guest of node pve2 in the lab: never restored over, even from another node.
    const taken = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--as-vmid', '200']);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /guest 200 exists \(qemu on node pve2\)/);

    const dry = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--as-vmid', '300', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /rpool\/data\/vm-300-disk-0 as local-zfs:vm-300-disk-0/);
    assert.match(dry.stdout, /config \/etc\/pve\/nodes\/pve1\/qemu-server\/300\.conf/);
    assert.deepEqual(await tree('rpool'), before);

    // Cut off in the middle of a disk: nothing is renamed, no config written; the next run resumes.
    const args = [...FROM_DEST, '--vmid', '100', '--as-vmid', '300'];
    const killed = await killMidStream(
      [...args, '--bwlimit', '100K'],
      'rpool/data/zbm-restore-vm-300-disk-0',
      {
        bytes: 256 * 1024,
      },
    );
    assert.equal(killed.code, 130, killed.stderr);
    await receivesDone('pve1');
    assert.match(await prop('rpool/data/zbm-restore-vm-300-disk-0', 'receive_resume_token'), /^1-/);
    assert.equal((await vm(`test -e ${CONF}/qemu-server/300.conf`)).code, 1);
    assert.deepEqual(
      (await tree('rpool/data')).filter((n) => n.startsWith('rpool/data/vm-300')),
      [],
    );

    const r = await zbm('pve1', args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /zbm-restore-vm-300-disk-0: resumed the interrupted transfer/);
    assert.match(r.stderr, /zbm-restore-vm-300-disk-2 already holds/);
    assert.deepEqual(await hashes(VM100.map((v) => v.replace('100', '300'))), h2);
    const conf = await sh(`cat ${CONF}/qemu-server/300.conf`);
    assert.deepEqual(
      await volumesOf(conf),
      present(VM100.map((v) => `rpool/data/${v.replace('100', '300')}`)),
      conf,
    );
    assert.doesNotMatch(conf, /vm-100-|^parent:|^\[/m);
    assert.match(conf, /^name: web$/m);
    // The restored disks are independent of the backup chain and no temporary name is left.
    assert.deepEqual(
      (await tree('rpool/data')).filter((n) => n.includes('-300-') || n.includes('zbm-restore')),
      VM100.map((v) => `rpool/data/${v.replace('100', '300')}`),
    );
    assert.equal(await sh(`cat ${CONF}/qemu-server/100.conf`), conf100);
    assert.deepEqual(await tree('rpool/data/vm-100-disk-0'), tree100);
    assert.deepEqual(await hashes(VM100), h2);
  });

  it('the restored guest is backed up again as a new full chain', async () => {
    // pmxcfs lists a new config in .vmlist by itself; the lab's /etc/pve is a plain directory.
    await sh(
      `jq '.ids["300"]={"node":"pve1","type":"qemu","version":1}' /etc/pve/.vmlist > /tmp/vmlist && mv /tmp/vmlist /etc/pve/.vmlist`,
    );
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '300', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const g = (JSON.parse(r.stdout) as { guests: { vmid: number; disks: { mode: string }[] }[] }).guests[0];
    assert.equal(g?.vmid, 300);
    assert.deepEqual(
      g?.disks.map((d) => d.mode),
      ['full', 'full', 'full', 'full'],
    );
    assert.equal((await tree('main/bak-zbm/vm-300-disk-0')).filter((n) => n.includes('@')).length, 1);
    assert.equal(await zvolHash('main/bak-zbm/vm-300-disk-0'), h2[0]);
  });

  it('restores one disk of an older backup as a new unused volume of the guest', async () => {
    const r = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--snapshot', s1, '--disk', 'scsi0']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await zvolHash('rpool/data/vm-100-disk-4'), h1[0]);
    assert.match(await sh(`cat ${CONF}/qemu-server/100.conf`), /^unused0: local-zfs:vm-100-disk-4$/m);
    assert.deepEqual(await tree('rpool/data/vm-100-disk-4'), ['rpool/data/vm-100-disk-4']);
    assert.deepEqual(await hashes(VM100), h2);
  });

  it('refuses to restore over guest 100; forced and confirmed, it restores the older backup and keeps the old disks aside', async () => {
    const conf100 = await sh(`cat ${CONF}/qemu-server/100.conf`);
    const before = await tree('rpool');
    const refused = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--snapshot', s1]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /guest 100 exists .*--as-vmid.*--force/);
    const unconfirmed = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--snapshot', s1, '--force']);
    assert.equal(unconfirmed.code, 1);
    assert.match(unconfirmed.stderr, /not confirmed: nothing was changed/);
    assert.deepEqual(await tree('rpool'), before);
    assert.equal(await sh(`cat ${CONF}/qemu-server/100.conf`), conf100);

    const r = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--snapshot', s1, '--force', '-y']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await hashes(VM100), h1);
    assert.match(
      r.stderr,
      /next backup of guest 100 starts a new chain beside its old backups, as a clone of/,
    );
    const aside = (await tree('rpool/data')).filter((n) =>
      /^rpool\/data\/zbm-replaced-\d+T\d+Z-vm-100-disk-0$/.test(n),
    );
    assert.equal(aside.length, 1);
    assert.equal(await zvolHash(aside[0] ?? ''), h2[0]);
    const conf = await sh(`cat ${CONF}/qemu-server/100.conf`);
    assert.doesNotMatch(conf, /^unused0:|^parent:/m);
    assert.deepEqual(await volumesOf(conf), present(VM100.map((v) => `rpool/data/${v}`)), conf);
  });

  it('after an in-place restore of the newest backup the chain goes on; after an older one the next backup starts a new chain as a clone of it, as warned, the newer backups kept', async () => {
    const r = await zbm('pve1', [...FROM_DEST, '--vmid', '103', '--force', '-y']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await Promise.all(ctFiles.map(fileHash)), ctHashes);
    const server = await tree('main/bak-zbm');
    const b = await zbm('pve1', [...BACKUP, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const guests = (
      JSON.parse(b.stdout) as {
        guests: {
          vmid: number;
          snapshot: string;
          result: string;
          disks: { mode: string; target: string }[];
        }[];
      }
    ).guests;
    const ct = guests.find((g) => g.vmid === 103);
    assert.equal(ct?.result, 'ok');
    assert.deepEqual(
      ct?.disks.map((d) => d.mode),
      ['incremental', 'incremental'],
    );
    const vm = guests.find((g) => g.vmid === 100);
    assert.equal(vm?.result, 'ok');
    const chains = VM100.map((v) => `main/bak-zbm/${v}.${vm?.snapshot}`);
    assert.deepEqual(
      vm?.disks.map((d) => [d.mode, d.target]).sort(),
      chains.map((c) => ['incremental', c]),
    );
    for (const c of chains) assert.equal(await prop(c, 'origin'), `${c.slice(0, c.lastIndexOf('.'))}@${s1}`);
    assert.deepEqual(await zvolHash(chains[0] ?? ''), h1[0]);
    // Its restore point restores like any other: every disk sent whole from the new chain.
    const back = await zbm('pve1', [...FROM_DEST, '--vmid', '100', '--as-vmid', '302']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(await hashes(VM100.map((v) => v.replace('vm-100-', 'vm-302-'))), h1);
    // Every older restore point stays where it was.
    const now = await tree('main/bak-zbm');
    assert.deepEqual(
      server.filter((n) => !n.includes('vm-103') && !n.includes('subvol-103')),
      now.filter(
        (n) => !n.includes('vm-103') && !n.includes('subvol-103') && !chains.some((c) => n.startsWith(c)),
      ),
    );
  });
});
