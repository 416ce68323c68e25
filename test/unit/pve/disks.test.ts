import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  agentFreeze,
  parseGuestConfig,
  parseStorageCfg,
  type SkippedDisk,
  selectDisks,
  type ZfsPool,
  zfsPools,
} from '../../../src/pve/index.ts';
import { pveFixture as fixture } from '../../support/fixtures.ts';

const pools = zfsPools(parseStorageCfg(fixture('storage.cfg')));
const current = (name: string) => parseGuestConfig(fixture(name)).current;
const datasets = (r: { disks: { key: string; dataset: string }[] }) =>
  r.disks.map((d) => `${d.key}=${d.dataset}`);
const skips = (r: { skipped: SkippedDisk[] }) =>
  Object.fromEntries(r.skipped.map((s) => [s.key, s.warn ? `WARN ${s.reason}` : s.reason]));

describe('VM disks', () => {
  it('backs up what vzdump would and says why the rest is left out', () => {
    const r = selectDisks('qemu', current('qemu-100.conf'), pools);
    assert.deepEqual(datasets(r), [
      'efidisk0=rpool/data/vm-100-disk-2',
      'scsi0=rpool/data/vm-100-disk-0',
      'scsi2=rpool/data/vm-100-disk-5',
      'scsi10=rpool/data/vm-100-disk-6',
      'tpmstate0=rpool/data/vm-100-disk-3',
    ]);
    assert.deepEqual(r.disks[1], {
      key: 'scsi0',
      storage: 'local-zfs',
      volname: 'vm-100-disk-0',
      dataset: 'rpool/data/vm-100-disk-0',
      value: 'local-zfs:vm-100-disk-0,iothread=1,size=32G',
    });
    assert.deepEqual(skips(r), {
      ide2: 'CD-ROM drive',
      scsi1: 'excluded from backups (backup=0)',
      unused0: 'detached (unused) volume',
    });
    // The disk named only in the snapshot section is nowhere.
    assert.ok(!JSON.stringify(r).includes('vm-100-disk-9'));
  });

  it('includes detached volumes when asked to', () => {
    const r = selectDisks('qemu', current('qemu-100.conf'), pools, { includeUnused: true });
    assert.ok(datasets(r).includes('unused0=rpool/data/vm-100-disk-4'));
    assert.equal(Object.hasOwn(skips(r), 'unused0'), false);
  });

  it("never backs up Proxmox's RAM state volumes nor vzdump's fleecing images, wherever they appear", () => {
    const r = selectDisks(
      'qemu',
      {
        scsi0: 'local-zfs:vm-100-disk-0,size=8G',
        scsi1: 'local-zfs:vm-100-state-before-upgrade,size=4G',
        unused0: 'local-zfs:vm-100-state-suspend-2026-11-26',
        unused1: 'local-zfs:vm-100-fleece-0',
      },
      pools,
      { includeUnused: true },
    );
    assert.deepEqual(datasets(r), ['scsi0=rpool/data/vm-100-disk-0']);
    assert.deepEqual(skips(r), {
      scsi1: "Proxmox's RAM state volume of a snapshot or hibernation, not a disk",
      unused0: "Proxmox's RAM state volume of a snapshot or hibernation, not a disk",
      unused1: "vzdump's fleecing image, not a disk",
    });
  });

  it('maps a linked clone to its own dataset and reads storage ids with dots and underscores', () => {
    const r = selectDisks('qemu', current('qemu-102.conf'), pools);
    assert.deepEqual(datasets(r), ['scsi0=rpool/data/vm-102-disk-0', 'scsi1=tank/vm/vm-102-disk-1']);
    assert.equal(r.disks[0]?.volname, 'base-100-disk-0/vm-102-disk-0');
    assert.equal(r.disks[1]?.storage, 'tank.fast_2-x');
  });

  it('warns about disks on storage zbm cannot back up, naming the storage', () => {
    const r = selectDisks('qemu', current('qemu-103.conf'), pools, { node: 'pve1' });
    assert.deepEqual(datasets(r), ['scsi0=rpool/data/vm-103-disk-0']);
    const s = skips(r);
    assert.deepEqual(Object.keys(s).sort(), ['sata0', 'sata1', 'sata2', 'sata3', 'scsi1', 'virtio0']);
    for (const v of Object.values(s)) assert.match(v, /^WARN /);
    assert.match(s.scsi1 ?? '', /storage "nfs-store" is not a zfspool storage; zbm only backs up .*zfspool/);
    assert.match(s.virtio0 ?? '', /storage "local" is not a zfspool storage/);
    assert.match(s.sata3 ?? '', /storage "ghost" is not a zfspool storage/);
    assert.match(s.sata0 ?? '', /"old-zfs" is disabled/);
    assert.match(s.sata1 ?? '', /"pve2-only" is not enabled on node pve1/);
    assert.match(s.sata2 ?? '', /dataset "rpool\/a;b\/vm-103-disk-4" is not a valid ZFS name/);
  });

  it('does not check node limits when no node is given', () => {
    const r = selectDisks('qemu', { sata1: 'pve2-only:vm-103-disk-3' }, pools);
    assert.deepEqual(datasets(r), ['sata1=fast/data/vm-103-disk-3']);
  });

  it('leaves out drives that hold no storage volume, without warning', () => {
    const r = selectDisks(
      'qemu',
      {
        ide0: 'none,media=cdrom',
        ide1: 'cdrom,media=cdrom',
        ide3: 'none',
        sata4: '/dev/disk/by-id/ata-WDC_1234,size=1T',
        scsi5: 'file=local-zfs:vm-1-disk-7,size=1G',
        scsi6: 'local-zfs:vm-1-cloudinit,media=cdrom',
        scsi7: 'local-zfs:vm-1-disk-8,backup=no',
        vmstate: 'local-zfs:vm-1-state-suspend-2024-01-01',
        net0: 'virtio=EE:D2:28:5F:B6:3E,bridge=vmbr0',
        virtio16: 'local-zfs:vm-1-disk-9',
        scsi31: 'local-zfs:vm-1-disk-10',
      },
      pools,
    );
    assert.deepEqual(datasets(r), ['scsi5=rpool/data/vm-1-disk-7']);
    assert.deepEqual(
      r.skipped.map((s) => [s.key, s.warn]),
      [
        ['ide0', false],
        ['ide1', false],
        ['ide3', false],
        ['sata4', false],
        ['scsi6', false],
        ['scsi7', false],
        ['vmstate', false],
      ],
    );
  });

  it('warns about volume names that are not ZFS volumes of PVE', () => {
    const r = selectDisks(
      'qemu',
      {
        scsi0: 'local-zfs:my-own-zvol',
        scsi1: 'local-zfs:vm-1-disk-0/../../etc',
        scsi2: 'local-zfs:',
        scsi3: 'size=8G',
        scsi4: 'local-zfs:vm-1-disk-1,size=1G,size=2G',
        scsi5: 'local-zfs:vm-1-disk-$(reboot)',
        scsi6: 'local-zfs:vm-1-disk-0/child',
      },
      pools,
    );
    assert.deepEqual(r.disks, []);
    assert.equal(r.skipped.length, 7);
    for (const s of r.skipped) assert.equal(s.warn, true, s.key);
  });

  it('backs up a dataset referenced twice only once', () => {
    const r = selectDisks(
      'qemu',
      {
        scsi1: 'local-zfs:vm-1-disk-0',
        scsi0: 'local-zfs:vm-1-disk-0,ro=1',
        unused0: 'local-zfs:vm-1-disk-0',
      },
      pools,
      { includeUnused: true },
    );
    assert.deepEqual(datasets(r), ['scsi0=rpool/data/vm-1-disk-0']);
    assert.deepEqual(
      r.skipped.map((s) => [s.key, s.reason, s.warn]),
      [
        ['scsi1', 'same dataset as scsi0', false],
        ['unused0', 'same dataset as scsi0', false],
      ],
    );
  });

  it('orders disks by key with numbers compared as numbers', () => {
    const cfg = Object.fromEntries(
      ['scsi10', 'virtio2', 'scsi1', 'ide0', 'scsi2', 'sata0', 'efidisk0'].map((k, i) => [
        k,
        `local-zfs:vm-1-disk-${i}`,
      ]),
    );
    assert.deepEqual(
      selectDisks('qemu', cfg, pools).disks.map((d) => d.key),
      ['efidisk0', 'ide0', 'sata0', 'scsi1', 'scsi2', 'scsi10', 'virtio2'],
    );
  });

  it('handles storage ids with odd characters, as plain data', () => {
    const odd = new Map<string, ZfsPool>([['my.zfs_2-b', { pool: 'p/q', disabled: false, nodes: null }]]);
    const r = selectDisks('qemu', { scsi0: 'my.zfs_2-b:vm-9-disk-0', scsi1: '$(id):vm-9-disk-1' }, odd);
    assert.deepEqual(datasets(r), ['scsi0=p/q/vm-9-disk-0']);
    assert.match(r.skipped[0]?.reason ?? '', /storage "\$\(id\)" is not a zfspool storage/);
  });
});

describe('CT disks', () => {
  it('backs up rootfs and mount points with backup=1 only', () => {
    const r = selectDisks('lxc', current('lxc-101.conf'), pools);
    assert.deepEqual(datasets(r), [
      'mp0=rpool/data/subvol-101-disk-1',
      'rootfs=rpool/data/subvol-101-disk-0',
    ]);
    assert.deepEqual(skips(r), {
      mp1: 'bind mount, not a storage volume',
      mp2: 'mount point without backup=1',
    });
  });

  it('reads rootfs given with volume=', () => {
    const r = selectDisks('lxc', current('lxc-217.conf'), pools);
    assert.deepEqual(r.disks, [
      {
        key: 'rootfs',
        storage: 'local-zfs',
        volname: 'subvol-217-disk-0',
        dataset: 'rpool/data/subvol-217-disk-0',
        value: 'acl=0,size=42949672960,volume=local-zfs:subvol-217-disk-0',
      },
    ]);
  });

  it('warns when rootfs is not on zfspool storage, and ignores VM disk keys', () => {
    const r = selectDisks(
      'lxc',
      { rootfs: 'local:101/vm-101-disk-0.raw,size=8G', scsi0: 'local-zfs:x' },
      pools,
    );
    assert.deepEqual(r.disks, []);
    assert.deepEqual(
      r.skipped.map((s) => [s.key, s.warn]),
      [['rootfs', true]],
    );
  });
});

describe('guest agent freeze', () => {
  it('freezes when the agent is on and freezing is not turned off', () => {
    const cases: [string | undefined, boolean][] = [
      [undefined, false],
      ['0', false],
      ['1', true],
      ['enabled=1', true],
      ['enabled=1,fstrim_cloned_disks=1', true],
      ['1,freeze-fs=1', true],
      ['1,freeze-fs=0', false],
      ['enabled=1,freeze-fs=0,type=virtio', false],
      ['1,freeze-fs-on-backup=0', false],
      ['enabled=0,freeze-fs=1', false],
      ['garbage=x,,', false],
    ];
    for (const [agent, want] of cases) {
      assert.equal(agentFreeze(agent === undefined ? {} : { agent }), want, String(agent));
    }
    assert.equal(agentFreeze(current('qemu-100.conf')), true);
    assert.equal(agentFreeze(current('qemu-102.conf')), false);
    assert.equal(agentFreeze(current('qemu-103.conf')), false);
  });
});
