import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findListArgv, pidOfRunName, runName, sevenZipExtractArgv } from '../../../src/files/argv.ts';
import {
  childrenOf,
  type Entry,
  linkInside,
  parseBrowsePath,
  parseFindListing,
  parseSevenZipListing,
  planExtraction,
  subtree,
  writtenMode,
} from '../../../src/files/entries.ts';
import { locate, type Partition, parseLayout, withoutFileSystem } from '../../../src/files/layout.ts';
import { filesFixture } from '../../support/fixtures.ts';

// Real listings: 7-Zip 26.02 of an ext4, an NTFS and a FAT image, and find of the tree the ext4 was
// made from (mkfs.ext4 -d): regular files, an odd name, links in and out, a setuid file, a device.
const fixture = filesFixture;

describe('7-Zip listings', () => {
  it('reads an ext4 file system: kinds, sizes, modes with setuid, link targets, devices', () => {
    const l = parseSevenZipListing(fixture('ext4.slt'));
    assert.equal(l.type, 'Ext');
    const by = new Map(l.entries.map((e) => [e.path, e]));
    assert.deepEqual(
      [...by.keys()].sort(),
      [
        'dev-null',
        'etc',
        'etc/hostname',
        'home',
        'home/u',
        'home/u/blob',
        'home/u/escape',
        'home/u/suid',
        'home/u/up',
        'lost+found',
        'odd dir',
        "odd dir/spa ce & 'q'.txt",
      ],
      'the journal ([SYS]) is no file of the guest',
    );
    assert.deepEqual(by.get('home/u/suid'), {
      path: 'home/u/suid',
      kind: 'file',
      size: 35664,
      mtime: Date.parse('2026-11-30T13:54:18Z') / 1000,
      mode: 0o4755,
    });
    assert.equal(by.get('etc/hostname')?.size, 10);
    assert.deepEqual(
      [by.get('home/u/up')?.kind, by.get('home/u/up')?.target],
      ['symlink', '../../../../../../etc'],
    );
    assert.equal(by.get('home/u/escape')?.target, '/etc/shadow');
    assert.deepEqual([by.get('dev-null')?.kind, by.get('dev-null')?.what], ['other', 'character device']);
    assert.equal(by.get('home/u')?.kind, 'dir');
    assert.equal(by.get('home/u')?.mode, 0o755);
  });

  it('reads NTFS without its metafiles and FAT without modes', () => {
    const ntfs = parseSevenZipListing(fixture('ntfs.slt'));
    assert.equal(ntfs.type, 'NTFS');
    assert.deepEqual(
      ntfs.entries.map((e) => [e.path, e.kind, e.size]),
      [['hostname.txt', 'file', 10]],
    );
    const fat = parseSevenZipListing(fixture('fat.slt'));
    assert.equal(fat.type, 'FAT');
    assert.deepEqual(
      fat.entries.map((e) => [e.path, e.kind, e.size, e.mode]),
      [
        ['EFI', 'dir', 0, null],
        ['EFI/BOOT', 'dir', 0, null],
        ['EFI/BOOT/BOOTX64.EFI', 'file', 6, null],
      ],
    );
  });
});

describe('find listings of a subvol', () => {
  it('reads the same tree as 7-Zip does from the ext4 made of it', () => {
    const fromFind = parseFindListing(fixture('subvol.find'));
    const fromSeven = parseSevenZipListing(fixture('ext4.slt')).entries.filter(
      (e) => e.path !== 'lost+found',
    );
    const shape = (es: readonly Entry[]) =>
      es.map((e) => [e.path, e.kind, e.size, e.mode, e.target ?? null, e.mtime]).sort();
    assert.deepEqual(shape(fromFind), shape(fromSeven));
  });
});

describe('paths', () => {
  it('splits a path and refuses to climb', () => {
    assert.deepEqual(parseBrowsePath('/2/etc//./hostname/'), { components: ['2', 'etc', 'hostname'] });
    assert.deepEqual(parseBrowsePath('/'), { components: [] });
    assert.ok('error' in parseBrowsePath('/etc/../root'));
    assert.ok('error' in parseBrowsePath('..'));
  });

  it('lists a directory and takes a subtree, parents first', () => {
    const entries = parseSevenZipListing(fixture('ext4.slt')).entries;
    assert.deepEqual(
      childrenOf(entries, 'home/u').map((e) => e.path),
      ['home/u/blob', 'home/u/escape', 'home/u/suid', 'home/u/up'],
    );
    assert.deepEqual(
      childrenOf(entries, '').map((e) => e.path),
      ['dev-null', 'etc', 'home', 'lost+found', 'odd dir'],
    );
    assert.deepEqual(
      subtree(entries, 'home').map((e) => e.path),
      ['home', 'home/u', 'home/u/blob', 'home/u/escape', 'home/u/suid', 'home/u/up'],
    );
    assert.deepEqual(
      subtree(entries, 'hom').map((e) => e.path),
      [],
      'a name that only starts alike is another entry',
    );
  });
});

describe('links', () => {
  it('follows a target by name only, and says where it leaves the tree', () => {
    assert.equal(linkInside('a/b/l', 'c'), 'a/b/c');
    assert.equal(linkInside('a/b/l', '../c'), 'a/c');
    assert.equal(linkInside('a/l', '../../etc'), null);
    assert.equal(linkInside('a/l', '/etc/shadow'), null);
    assert.equal(linkInside('a/l', ''), null);
  });
});

describe('an extraction', () => {
  const entries = parseSevenZipListing(fixture('ext4.slt')).entries;

  it('writes files and directories, keeps links inside, never makes devices or outward links', () => {
    const withInside: Entry[] = [
      ...entries,
      { path: 'home/u/near', kind: 'symlink', size: 0, mtime: null, mode: 0o777, target: 'blob' },
      { path: 'home/u/new\nline', kind: 'file', size: 1, mtime: null, mode: 0o644 },
    ];
    const plan = planExtraction(subtree(withInside, 'home/u'), 'home/u', 'u');
    assert.deepEqual(
      plan.dirs.map((d) => [d.path, d.source]),
      [['u', 'home/u']],
    );
    assert.deepEqual(
      plan.files.map((f) => [f.path, f.source]),
      [
        ['u/blob', 'home/u/blob'],
        ['u/suid', 'home/u/suid'],
      ],
    );
    assert.deepEqual(
      plan.links.map((l) => [l.path, l.target]),
      [['u/near', 'blob']],
    );
    assert.deepEqual(
      plan.skipped.map((s) => s.path),
      ['home/u/escape', 'home/u/new\nline', 'home/u/up'],
    );
    assert.match(plan.skipped[0]?.why ?? '', /symbolic link to \/etc\/shadow leads outside/);
    assert.equal(plan.bytes, 300000 + 35664);
  });

  it('a link to a sibling of what is extracted leaves it, and a whole file system gets a name', () => {
    const es: Entry[] = [
      { path: 'a', kind: 'dir', size: 0, mtime: null, mode: 0o755 },
      { path: 'a/l', kind: 'symlink', size: 0, mtime: null, mode: 0o777, target: '../b' },
      { path: 'b', kind: 'file', size: 3, mtime: null, mode: 0o644 },
    ];
    assert.deepEqual(
      planExtraction(subtree(es, 'a'), 'a', 'a').skipped.map((s) => s.path),
      ['a/l'],
    );
    const whole = planExtraction(subtree(es, ''), '', 'scsi0-part2');
    assert.deepEqual(
      [...whole.dirs, ...whole.files, ...whole.links].map((e) => e.path),
      ['scsi0-part2/a', 'scsi0-part2/b', 'scsi0-part2/a/l'],
    );
    assert.deepEqual(whole.skipped, []);
  });

  it('takes setuid, setgid and sticky off unless asked', () => {
    const e: Entry = { path: 'x', kind: 'file', size: 0, mtime: null, mode: 0o7755 };
    assert.equal(writtenMode(e, false, 0o644), 0o755);
    assert.equal(writtenMode(e, true, 0o644), 0o7755);
    assert.equal(writtenMode({ ...e, mode: null }, false, 0o644), 0o644);
  });
});

describe('disk layouts', () => {
  // What the probe prints for a GPT disk (blkid -p -o export of the disk, then each partition).
  const probe = [
    'DEVICE=/dev/zvol/main/c\nPTUUID=9b1c\nPTTYPE=gpt\n',
    'DEVICE=/dev/zvol/main/c-part1\nLABEL=EFI\nTYPE=vfat\nPART_ENTRY_NAME=EFI\nPART_ENTRY_SIZE=32768\n',
    'DEVICE=/dev/zvol/main/c-part2\nTYPE=ext4\nPART_ENTRY_NAME=root\nPART_ENTRY_SIZE=94208\n',
    'DEVICE=/dev/zvol/main/c-part3\nTYPE=LVM2_member\nPART_ENTRY_SIZE=2048\n',
    'DEVICE=/dev/zvol/main/c-part10\nPART_ENTRY_SIZE=2048\nPART_ENTRY_TYPE=21686148-6449-6E6F-744E-656564454649\n',
  ].join('\n');

  it('reads the probe: the table, each partition by its number with type, size and name', () => {
    assert.deepEqual(parseLayout(probe), {
      table: 'gpt',
      fstype: null,
      partitions: [
        { number: 1, type: null, size: 16777216, fstype: 'vfat', label: 'EFI' },
        { number: 2, type: null, size: 48234496, fstype: 'ext4', label: 'root' },
        { number: 3, type: null, size: 1048576, fstype: 'LVM2_member', label: null },
        {
          number: 10,
          type: '21686148-6449-6e6f-744e-656564454649',
          size: 1048576,
          fstype: null,
          label: null,
        },
      ],
    });
  });

  it('addresses a partition by its number and refuses what it cannot read by name', () => {
    const layout = parseLayout(probe);
    assert.deepEqual(locate(layout, []), { table: layout });
    assert.deepEqual(locate(layout, ['2', 'etc']), { partition: 2, fstype: 'ext4', rest: ['etc'] });
    assert.match(
      (locate(layout, ['3']) as { error: string }).error,
      /^partition 3: LVM2_member: LVM inside the guest/,
    );
    assert.match(
      (locate(layout, ['10']) as { error: string }).error,
      /^partition 10: no file system that zbm can recognise/,
    );
    assert.equal(withoutFileSystem(layout.partitions[3] as Partition), 'BIOS boot partition');
    assert.equal(withoutFileSystem(layout.partitions[1] as Partition), null);
    assert.match(
      (locate(layout, ['9']) as { error: string }).error,
      /no partition 9 \(partitions: 1, 2, 3, 10\)/,
    );
  });

  it('reads a file system on the whole disk, and refuses XFS naming why', () => {
    const whole = (type: string) => parseLayout(`DEVICE=/dev/zvol/main/c\nTYPE=${type}\n\n`);
    assert.deepEqual(locate(whole('ext4'), ['etc']), { partition: null, fstype: 'ext4', rest: ['etc'] });
    assert.match(
      (locate(whole('xfs'), []) as { error: string }).error,
      /^the disk: xfs: no user-space reader/,
    );
  });
});

describe('command lines', () => {
  it("names a run's leftovers by host and pid, and knows only this host's", () => {
    assert.equal(runName('pve1', 42), 'zbm-files-pve1-42');
    assert.equal(pidOfRunName('zbm-files-pve1-42', 'pve1'), 42);
    assert.equal(pidOfRunName('zbm-files-pve10-42', 'pve1'), null);
    assert.equal(pidOfRunName('zbm-files-pve1-42x', 'pve1'), null);
    assert.equal(pidOfRunName('zbm-restore-pve1-42', 'pve1'), null);
  });

  it('passes hostile names as arguments, never as script text', () => {
    const hostile = ["a'; rm -rf / #", '$(reboot)', '-rf'];
    const argv = findListArgv('/run/zbm-files/x', hostile, 1);
    assert.deepEqual(argv.slice(-3), hostile);
    assert.ok(!argv[2]?.includes('reboot'));
    const seven = sevenZipExtractArgv('/dev/zvol/p/x-part1', '/var/tmp/zbm-files-h-1');
    assert.deepEqual(seven.slice(4), ['/var/tmp/zbm-files-h-1', '/dev/zvol/p/x-part1', '65534']);
  });
});
