import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE } from '../lab/commands.ts';
import {
  closeGate,
  exists,
  gateReached,
  holds,
  it,
  killMidStream,
  openGate,
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

/**
 * Guest 110's disks, built without mounting anything: scsi0 a GPT disk with an EFI FAT partition
 * and an ext4 root (made with mkfs.ext4 -d from a tree with an odd name, a link inside, links out,
 * a setuid file and a device node), scsi1 an MBR disk with NTFS, scsi2 XFS on the whole disk.
 * `hostname` is what /etc/hostname says, so that two backups differ in a known file.
 */
function buildGuest110(hostname: string): string {
  return `set -e
d=$(mktemp -d); cd "$d"
mkdir -p root/etc root/home/u "root/odd dir" efi/EFI/BOOT
echo ${hostname} > root/etc/hostname
printf 'odd' > 'root/odd dir/spa ce & q $(x).txt'
head -c 300000 /dev/urandom > root/home/u/blob
ln -s /etc/shadow root/home/u/escape; ln -s ../../../../etc root/home/u/up; ln -s blob root/home/u/near
cp /bin/true root/home/u/suid; chmod 4755 root/home/u/suid; mknod root/home/u/null c 1 3
echo bootx > efi/EFI/BOOT/BOOTX64.EFI
truncate -s 46M ext.img; mkfs.ext4 -q -d root ext.img
truncate -s 16M efi.img; mkfs.vfat -n EFI efi.img >/dev/null; mcopy -s -i efi.img efi/EFI ::/
truncate -s 30M ntfs.img; mkntfs -q -F -f ntfs.img >/dev/null 2>&1; ntfscp -q ntfs.img root/etc/hostname hostname.txt
for n in 0 1; do zfs list rpool/data/vm-110-disk-$n >/dev/null 2>&1 || zfs create -V 64M rpool/data/vm-110-disk-$n; done
zfs list rpool/data/vm-110-disk-2 >/dev/null 2>&1 || { zfs create -s -V 320M rpool/data/vm-110-disk-2; udevadm settle; mkfs.xfs -q /dev/zvol/rpool/data/vm-110-disk-2 2>/dev/null; }
udevadm settle
printf 'label: gpt\\nstart=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\\nstart=34816, size=94208, type=0FC63DAF-8483-4772-8E79-3D69D8E47284, name="root"\\n' | sfdisk -q /dev/zvol/rpool/data/vm-110-disk-0
printf 'label: dos\\nstart=2048, size=61440, type=7\\n' | sfdisk -q /dev/zvol/rpool/data/vm-110-disk-1
dd if=efi.img of=/dev/zvol/rpool/data/vm-110-disk-0 bs=512 seek=2048 conv=notrunc,fsync status=none
dd if=ext.img of=/dev/zvol/rpool/data/vm-110-disk-0 bs=512 seek=34816 conv=notrunc,fsync status=none
dd if=ntfs.img of=/dev/zvol/rpool/data/vm-110-disk-1 bs=512 seek=2048 conv=notrunc,fsync status=none
sha256sum root/home/u/blob | cut -d' ' -f1 > /root/blob-110.sha
cd /; rm -rf "$d"; udevadm settle
printf 'name: files\\nmemory: 512\\nscsi0: local-zfs:vm-110-disk-0,size=64M\\nscsi1: local-zfs:vm-110-disk-1,size=64M\\nscsi2: local-zfs:vm-110-disk-2,size=320M\\n' > /etc/pve/nodes/pve1/qemu-server/110.conf
jq -c '.ids["110"] = {node: "pve1", type: "qemu", version: 1}' /etc/pve/.vmlist > /etc/pve/.vmlist.new
mv /etc/pve/.vmlist.new /etc/pve/.vmlist`;
}

/**
 * Guest 110's hostname changed in place, on both file systems that hold it (/etc/hostname in the
 * ext4, hostname.txt in the NTFS), the rest of its disks untouched: the next backup is a small
 * increment, as a guest's would be (building the disks again would send them whole).
 */
function renameGuest110(hostname: string): string {
  return `set -e
ext=/dev/zvol/rpool/data/vm-110-disk-0-part2 ntfs=/dev/zvol/rpool/data/vm-110-disk-1-part1
d=$(mktemp -d); echo ${hostname} > "$d/hostname"
printf 'cd /etc\\nrm hostname\\nwrite %s hostname\\n' "$d/hostname" > "$d/cmds"
debugfs -w -f "$d/cmds" "$ext" >/dev/null 2>&1
test "$(debugfs -R 'cat /etc/hostname' "$ext" 2>/dev/null)" = ${hostname}
ntfscp -q -f "$ntfs" "$d/hostname" hostname.txt
rm -rf "$d"; sync`;
}

/** Files in container 103's root (a subvol, mounted on the node): the same kinds as guest 110's. */
const CT_FILES = `set -e; r=/rpool/data/subvol-103-disk-0; mkdir -p "$r/srv/x" "$r/home/u" "$r/etc"
echo ct-files > "$r/etc/hostname"
printf 'odd' > "$r/srv/x/-rf ; "'$(reboot)'
ln -sfn /etc/shadow "$r/srv/x/escape"; ln -sfn ../../../../etc "$r/home/u/up"; ln -sfn ../x "$r/srv/x/self"
[ -e "$r/srv/x/null" ] || mknod "$r/srv/x/null" c 1 3
cp /bin/true "$r/srv/x/suid"; chmod 4755 "$r/srv/x/suid"`;

suite('restore on real ZFS', 35, () => {
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
  it('lists and extracts files of a VM disk (GPT: FAT, ext4; MBR: NTFS) and a container, on both tiers and from the node, at the point chosen; escapes refused; nothing left behind', async () => {
    const FILES = ['files', '--local-zfs-root', 'main/bak-zbm'];
    const BACKUP_FILES = [...BACKUP_PVE, '--vmid', '103,110'];
    await sh(buildGuest110('guest-110-first'), 'pve1');
    await sh(CT_FILES, 'pve1');
    await sh('echo first > /rpool/data/subvol-103-disk-0/srv/x/version', 'pve1');
    assert.equal((await zbm('pve1', BACKUP_FILES)).code, 0);
    const listed = await zbm('zbm-dest', [
      'list-backups',
      '--local-zfs-root',
      'main/bak-zbm',
      '--json',
      '--vmid',
      '110',
    ]);
    const first =
      (JSON.parse(listed.stdout) as { backups: { snapshot: string }[] }).backups[0]?.snapshot ?? '';
    assert.match(first, /^bak-zbm-/);
    const ctListed = await zbm('zbm-dest', [
      'list-backups',
      '--local-zfs-root',
      'main/bak-zbm',
      '--json',
      '--vmid',
      '103',
    ]);
    const ctFirst =
      (JSON.parse(ctListed.stdout) as { backups: { snapshot: string }[] }).backups.at(-1)?.snapshot ?? '';
    await sh(renameGuest110('guest-110-second'), 'pve1');
    await sh('echo second > /rpool/data/subvol-103-disk-0/srv/x/version', 'pve1');
    assert.equal((await zbm('pve1', BACKUP_FILES)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    const blob = (await sh('cat /root/blob-110.sha', 'pve1')).trim();

    // The restore point's disks, then scsi0's partitions as the kernel and udev saw them.
    const disks = await zbm('zbm-dest', [...FILES, '--vmid', '110', '--json']);
    assert.equal(disks.code, 0, disks.stderr);
    assert.deepEqual(
      (JSON.parse(disks.stdout) as { disks: { key: string }[] }).disks.map((d) => d.key),
      ['scsi0', 'scsi1', 'scsi2'],
    );
    const table = await zbm('zbm-dest', [...FILES, '--vmid', '110', '--disk', 'scsi0', '--json']);
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(
      (
        JSON.parse(table.stdout) as { partitions: { number: number; fstype: string; readable: boolean }[] }
      ).partitions.map((p) => [p.number, p.fstype, p.readable]),
      [
        [1, 'vfat', true],
        [2, 'ext4', true],
      ],
    );
    const dir = await zbm('zbm-dest', [
      ...FILES,
      '--vmid',
      '110',
      '--disk',
      'scsi0',
      '--path',
      '/2/home/u',
      '--json',
    ]);
    assert.equal(dir.code, 0, dir.stderr);
    assert.deepEqual(
      (
        JSON.parse(dir.stdout) as { entries: { name: string; kind: string; size: number; mode: string }[] }
      ).entries.map((e) => `${e.name} ${e.kind} ${e.size} ${e.mode}`),
      [
        'blob file 300000 0644',
        'escape symlink 0 0777',
        'near symlink 0 0777',
        'null other 0 0644',
        'suid file 35664 4755',
        'up symlink 0 0777',
      ],
    );

    // Extracted on the backup server: the data byte for byte, setuid off, the link inside kept,
    // the links out and the device left out by name.
    await sh('rm -rf /tmp/x && mkdir /tmp/x');
    const ex = await zbm('zbm-dest', [
      ...FILES,
      '--vmid',
      '110',
      '--disk',
      'scsi0',
      '--path',
      '/2/home',
      '--extract',
      '/tmp/x',
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(
      ex.stderr,
      /not extracted: \/home\/u\/escape: a symbolic link to \/etc\/shadow leads outside/,
    );
    assert.match(ex.stderr, /not extracted: \/home\/u\/up: /);
    assert.match(ex.stderr, /not extracted: \/home\/u\/null: a character device is never created/);
    assert.equal(
      await sh("cd /tmp/x && find home -printf '%y %m %U %p %l\\n' | sort"),
      'd 755 0 home \nd 755 0 home/u \nf 644 0 home/u/blob \nf 755 0 home/u/suid \nl 777 0 home/u/near blob\n',
    );
    assert.equal((await sh('sha256sum /tmp/x/home/u/blob')).split(' ')[0], blob);
    assert.deepEqual((await sh('ls -A /tmp/x')).split('\n').filter(Boolean), ['home'], 'no staging left');

    // From the node (--remote) as a tar stream, at the older point: the older hostname.
    const remote = 'zbm files --remote zbm-dest --remote-zfs-root main/bak-zbm --vmid 110 --disk scsi0';
    const old = await vm(
      `${remote} --path /2/etc/hostname --snapshot ${first} --tar | tar -xOf - hostname`,
      undefined,
      'pve1',
    );
    assert.equal(old.code, 0, old.stderr);
    assert.equal(old.stdout, 'guest-110-first\n');
    const efi = await vm(`${remote} --path /1/EFI/BOOT/BOOTX64.EFI --tar | tar -xOf -`, undefined, 'pve1');
    assert.equal(efi.stdout, 'bootx\n', efi.stderr);

    // On the replica: NTFS at the newest point; XFS refused by name.
    await sh('rm -rf /tmp/n && mkdir /tmp/n', 'zbm-replica');
    const ntfs = await zbm('zbm-replica', [
      ...FILES,
      '--vmid',
      '110',
      '--disk',
      'scsi1',
      '--path',
      '/1/hostname.txt',
      '--extract',
      '/tmp/n',
    ]);
    assert.equal(ntfs.code, 0, ntfs.stderr);
    assert.equal(await sh('cat /tmp/n/hostname.txt', 'zbm-replica'), 'guest-110-second\n');
    const xfs = await zbm('zbm-replica', [...FILES, '--vmid', '110', '--disk', 'scsi2']);
    assert.equal(xfs.code, 1);
    assert.match(xfs.stderr, /scsi2 of .*: the disk: xfs: no user-space reader can copy files out of XFS/);

    // A container's subvol on the replica: odd names, the older point, no escape through a link.
    const ct = ['--vmid', '103', '--disk', 'rootfs'];
    const through = await zbm('zbm-replica', [...FILES, ...ct, '--path', '/home/u/up/passwd']);
    assert.equal(through.code, 1);
    assert.match(through.stderr, /home\/u\/up is a symbolic link: give the path it points to/);
    await sh('rm -rf /tmp/c && mkdir /tmp/c', 'zbm-replica');
    const cx = await zbm('zbm-replica', [
      ...FILES,
      ...ct,
      '--path',
      '/srv/x',
      '--extract',
      '/tmp/c',
      '--snapshot',
      ctFirst,
    ]);
    assert.equal(cx.code, 0, cx.stderr);
    assert.match(cx.stderr, /not extracted: \/srv\/x\/escape: /);
    assert.match(cx.stderr, /not extracted: \/srv\/x\/null: a character device/);
    assert.equal(
      await sh("cd /tmp/c/x && find . -printf '%y %m %p %l\\n' | sort", 'zbm-replica'),
      'd 755 . \nf 644 ./-rf ; $(reboot) \nf 644 ./version \nf 755 ./suid \nl 777 ./self ../x\n',
    );
    assert.equal(await sh('cat /tmp/c/x/version', 'zbm-replica'), 'first\n');

    // Drills read the file systems with the same reader: guest 110's are recognised and listed,
    // XFS said but not failed, /etc/hostname found; guest 100's disks hold random bytes, which
    // no reader recognises: CRITICAL, naming the guest and each disk (its efidisk0 and
    // tpmstate0 hold firmware state, never a file system, and are not looked at).
    // Records of their own, so that no other test sees these drills.
    const drill = [
      'drill',
      '--local-zfs-root',
      'main/bak-zbm',
      '--file-systems',
      '--state-dir',
      '/var/tmp/drill-files',
    ];
    // One drill of the three guests: 110 and 103 pass, 100 fails, so the run is CRITICAL (exit 2).
    const three = await zbm('zbm-dest', [...drill, '--vmid', '100,103,110', '--expect', '/etc/hostname']);
    assert.equal(three.code, 2, three.stdout + three.stderr);
    assert.match(
      three.stdout,
      /^OK guest 110 \(files\): bak-zbm-\S+: 3 disk\(s\) present .*, 3 file system\(s\) recognised and listed \(scsi2 \(xfs\) not listed\), \/etc\/hostname found$/m,
    );
    assert.match(
      three.stdout,
      /^OK guest 103 .*, 2 file system\(s\) recognised and listed, \/etc\/hostname found$/m,
    );
    assert.match(
      three.stdout,
      /^CRITICAL guest 100 \(web\): bak-zbm-\S+: scsi0: no file system that zbm can recognise; scsi1: no file system that zbm can recognise; \/etc\/hostname is on none of its file systems$/m,
    );
    // In a subvol, a path is never looked up through a link: ../x from /srv/x/self is /srv/x.
    const ctMissing = await zbm('zbm-dest', [...drill, '--vmid', '103', '--expect', '/srv/x/self/version']);
    assert.equal(ctMissing.code, 2, ctMissing.stdout + ctMissing.stderr);
    assert.match(
      ctMissing.stdout,
      /^CRITICAL guest 103 .*: \/srv\/x\/self\/version is on none of its file systems$/m,
    );

    // Killed while it closes (its clone's destroy held at the lab's gate): the clone, the hold
    // and the staging directory stay; the next run on this host removes them.
    await closeGate('destroy');
    const killed = vm('zbm files --local-zfs-root main/bak-zbm --vmid 110 --disk scsi0 --path /2/etc');
    await gateReached('destroy');
    await sh('pkill -KILL -f "[z]bm files"; pkill -KILL -f "[z]fs destroy main/zbm-files"; true');
    await openGate('destroy');
    await killed;
    assert.match((await tree('main')).join('\n'), /^main\/zbm-files-/m);
    assert.match((await holds('main/bak-zbm')).join('\n'), /\tzbm-files:/);
    const next = await zbm('zbm-dest', [...FILES, '--vmid', '110', '--disk', 'scsi0', '--path', '/2/etc']);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stderr, /removed main\/zbm-files-.*, left by an interrupted zbm files/);
    assert.match(next.stderr, /released the hold zbm-files:.*, left by an interrupted zbm files/);
    assert.match(next.stdout, / hostname$/m);

    // Nothing is left on either tier, and replication and prune carry on (nothing of it is on the node).
    for (const host of ['zbm-dest', 'zbm-replica'] as const) {
      assert.deepEqual(
        (await tree('main', host)).filter((n) => n.includes('zbm-files')),
        [],
        host,
      );
      assert.deepEqual(
        (await holds('main/bak-zbm', host)).filter((h) => h.includes('zbm-files')),
        [],
        host,
      );
      assert.equal(
        await sh('{ ls -A /var/tmp | grep zbm-files; ls -A /run/zbm-files 2>/dev/null; } || true', host),
        '',
        `${host}: no staging directory or mount point left`,
      );
    }
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    assert.equal((await zbm('zbm-dest', PRUNE_DEST)).code, 0);
    // The lab's VMs go on to other files: what was extracted goes (stop 31's CI run failed on a
    // later file's /tmp/c, which this case had left as a directory on the replica).
    await sh('rm -rf /tmp/x');
    await sh('rm -rf /tmp/n /tmp/c', 'zbm-replica');
  }, 20);
});
