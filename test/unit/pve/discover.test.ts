import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ZbmError } from '../../../src/errors.ts';
import { type Discovery, discover, type PveState, readPveState } from '../../../src/pve/index.ts';
import { pveFixture as fixture } from '../../support/fixtures.ts';

/** The guests of node pve1 as on disk: 106 is in .vmlist but its config is missing. */
const CONFIGS: Record<number, string> = {
  100: 'qemu-100.conf',
  101: 'lxc-101.conf',
  102: 'qemu-102.conf',
  103: 'qemu-103.conf',
  104: 'qemu-104.conf',
  105: 'qemu-105.conf',
  217: 'lxc-217.conf',
};

function state(): PveState {
  return {
    node: 'pve1',
    vmlist: fixture('vmlist.json'),
    storageCfg: fixture('storage.cfg'),
    configs: new Map(Object.entries(CONFIGS).map(([vmid, file]) => [Number(vmid), fixture(file)])),
  };
}

const disksOf = (d: Discovery) =>
  Object.fromEntries(d.guests.map((g) => [g.vmid, g.disks.map((x) => x.dataset)]));

describe('discover', () => {
  it('finds the guests of this node, their datasets and what needs the admin', () => {
    const d = discover(state(), {});
    assert.deepEqual(disksOf(d), {
      100: [
        'rpool/data/vm-100-disk-2',
        'rpool/data/vm-100-disk-0',
        'rpool/data/vm-100-disk-5',
        'rpool/data/vm-100-disk-6',
        'rpool/data/vm-100-disk-3',
      ],
      101: ['rpool/data/subvol-101-disk-1', 'rpool/data/subvol-101-disk-0'],
      102: ['rpool/data/vm-102-disk-0', 'tank/vm/vm-102-disk-1'],
      103: ['rpool/data/vm-103-disk-0'],
      105: ['rpool/data/vm-105-disk-0'],
      217: ['rpool/data/subvol-217-disk-0'],
    });
    // The guest on pve2 is not ours.
    assert.ok(!d.guests.some((g) => g.vmid === 200));
    assert.deepEqual(
      d.guests.map((g) => [g.vmid, g.type, g.name, g.freeze]),
      [
        [100, 'qemu', 'webmail', true],
        [101, 'lxc', 'ct101', false],
        [102, 'qemu', 'clone-of-100', false],
        [103, 'qemu', 'mixed', false],
        [105, 'qemu', `evil"$(reboot)"'x`, false],
        [217, 'lxc', 'legacy', false],
      ],
    );
    // Every disk of 103 zbm cannot back up is named, with its guest, key, value and reason.
    assert.equal(d.warnings.length, 6);
    for (const w of d.warnings) assert.match(w, /^guest 103: /);
    assert.ok(
      d.warnings.includes(
        'guest 103: scsi1 "nfs-store:103/vm-103-disk-0.qcow2,size=16G" is not backed up: storage "nfs-store" ' +
          'is not a zfspool storage; zbm only backs up volumes on zfspool storage',
      ),
    );
    assert.ok(d.warnings.some((w) => /sata1 .*"pve2-only" is not enabled on node pve1/.test(w)));
    assert.ok(d.warnings.some((w) => /sata2 .*rpool\/a;b.*not a valid ZFS name/.test(w)));
  });

  it('fails only the guest whose config is broken, or missing', () => {
    const d = discover(state(), {});
    assert.deepEqual(
      d.failed.map((f) => f.vmid),
      [104, 106],
    );
    assert.match(d.failed[0]?.error ?? '', /guest 104 .*qemu-server\/104\.conf.*line 3/);
    assert.match(d.failed[1]?.error ?? '', /guest 106: no config file nodes\/pve1\/qemu-server\/106\.conf/);
  });

  it('keeps hostile names and descriptions as plain data', () => {
    const g = discover(state(), { vmids: [105] }).guests[0];
    assert.equal(g?.name, `evil"$(reboot)"'x`);
    assert.equal(g?.config.description, `"; rm -rf / #\n$(reboot) \`id\`\n\ttab and 'quotes'`);
    assert.equal(g?.configText, fixture('qemu-105.conf'));
  });

  it('backs up only the guests asked for, and says where the others are', () => {
    const d = discover(state(), { vmids: [101, 200, 999, 104] });
    assert.deepEqual(
      d.guests.map((g) => g.vmid),
      [101],
    );
    assert.deepEqual(
      d.failed.map((f) => f.vmid),
      [104],
    );
    assert.deepEqual(d.warnings, [
      '--vmid 200 is on node pve2, not on pve1',
      '--vmid 999 is unknown: it is not in /etc/pve/.vmlist',
    ]);
  });

  it('leaves out excluded guests', () => {
    const d = discover(state(), { exclude: [103, 104, 106, 300] });
    assert.deepEqual(
      d.guests.map((g) => g.vmid),
      [100, 101, 102, 105, 217],
    );
    assert.deepEqual(d.warnings, []);
    assert.deepEqual(d.failed, []);
  });

  it('treats an empty --vmid list as all guests', () => {
    assert.equal(discover(state(), { vmids: [] }).guests.length, 6);
  });

  it('reports disks outside --local-zfs-root', () => {
    const d = discover(state(), { localZfsRoot: 'rpool/data', vmids: [102] });
    assert.deepEqual(disksOf(d), { 102: ['rpool/data/vm-102-disk-0'] });
    assert.deepEqual(d.warnings, [
      'guest 102: scsi1 "tank.fast_2-x:vm-102-disk-1,size=8G" is not backed up: not under --local-zfs-root rpool/data',
    ]);
    // A prefix that is not a parent dataset does not count.
    const e = discover(state(), { localZfsRoot: 'rpool/dat', vmids: [217] });
    assert.deepEqual(disksOf(e), { 217: [] });
    assert.equal(e.guests[0]?.skipped[0]?.warn, true);
  });

  it('includes detached volumes when asked to', () => {
    const d = discover(state(), { vmids: [100], includeUnused: true });
    assert.ok(
      d.guests[0]?.disks.some((x) => x.key === 'unused0' && x.dataset === 'rpool/data/vm-100-disk-4'),
    );
  });

  it('throws on a broken .vmlist or storage.cfg, as no guest can then be trusted', () => {
    assert.throws(() => discover({ ...state(), vmlist: '{' }, {}), ZbmError);
    assert.throws(
      () => discover({ ...state(), storageCfg: 'zfspool local-zfs\n' }, {}),
      /storage\.cfg line 1/,
    );
  });
});

describe('readPveState', () => {
  let root = '';

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'zbm-pve-'));
    await writeFile(path.join(root, '.vmlist'), fixture('vmlist.json'));
    await writeFile(path.join(root, 'storage.cfg'), fixture('storage.cfg'));
    for (const node of ['pve1', 'pve2']) {
      await mkdir(path.join(root, 'nodes', node, 'qemu-server'), { recursive: true });
      await mkdir(path.join(root, 'nodes', node, 'lxc'), { recursive: true });
    }
    for (const [vmid, file] of Object.entries(CONFIGS)) {
      const dir = file.startsWith('lxc') ? 'lxc' : 'qemu-server';
      await writeFile(path.join(root, 'nodes', 'pve1', dir, `${vmid}.conf`), fixture(file));
    }
    await writeFile(path.join(root, 'nodes', 'pve2', 'qemu-server', '200.conf'), fixture('qemu-200.conf'));
    // As pmxcfs lays them out.
    await symlink('nodes/pve1', path.join(root, 'local'));
    await symlink('nodes/pve1/qemu-server', path.join(root, 'qemu-server'));
    await symlink('nodes/pve1/lxc', path.join(root, 'lxc'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads the local node from the local symlink and the configs of its guests', async () => {
    const s = await readPveState(root);
    assert.equal(s.node, 'pve1');
    assert.deepEqual(
      [...s.configs.keys()].sort((a, b) => a - b),
      [100, 101, 102, 103, 104, 105, 217],
    );
    assert.equal(s.configs.get(101), fixture('lxc-101.conf'));
    const d = discover(s, {});
    assert.deepEqual(
      d.guests.map((g) => g.vmid),
      [100, 101, 102, 103, 105, 217],
    );
    assert.deepEqual(
      d.failed.map((f) => f.vmid),
      [104, 106],
    );
  });

  it('reads another node when asked', async () => {
    const s = await readPveState(root, 'pve2');
    assert.deepEqual([...s.configs.keys()], [200]);
    assert.deepEqual(
      discover(s, {}).guests.map((g) => [g.vmid, g.disks.map((x) => x.dataset)]),
      [[200, ['rpool/data/vm-200-disk-0']]],
    );
  });

  it('falls back to the short host name without the local symlink', async () => {
    const bare = await mkdtemp(path.join(os.tmpdir(), 'zbm-pve-bare-'));
    try {
      await writeFile(path.join(bare, '.vmlist'), '{"version":1,"ids":{}}');
      await writeFile(path.join(bare, 'storage.cfg'), '');
      const s = await readPveState(bare);
      assert.equal(s.node, os.hostname().split('.')[0]);
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });

  it('refuses node names that are not host names', async () => {
    await assert.rejects(readPveState(root, '../pve1'), ZbmError);
  });

  it('says so when the directory is not /etc/pve', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'zbm-pve-empty-'));
    try {
      await assert.rejects(
        readPveState(empty, 'pve1'),
        /\.vmlist does not exist: is this a Proxmox VE host\?/,
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
