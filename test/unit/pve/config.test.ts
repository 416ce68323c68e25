import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZbmError } from '../../../src/errors.ts';
import { parseGuestConfig } from '../../../src/pve/index.ts';
import { pveFixture as fixture } from '../../support/fixtures.ts';

describe('guest config', () => {
  it('separates the running config from snapshot sections', () => {
    const c = parseGuestConfig(fixture('qemu-100.conf'));
    assert.equal(c.current.name, 'webmail');
    assert.equal(c.current.memory, '4096');
    assert.equal(c.current.scsi0, 'local-zfs:vm-100-disk-0,iothread=1,size=32G');
    assert.equal(c.current.parent, 'before-upgrade');
    // Only in the snapshot: not attached now.
    assert.equal(Object.hasOwn(c.current, 'scsi3'), false);
    assert.equal(Object.hasOwn(c.current, 'snaptime'), false);
    assert.deepEqual(Object.keys(c.snapshots), ['before-upgrade']);
    assert.deepEqual(c.snapshots['before-upgrade'], {
      memory: '2048',
      scsi0: 'local-zfs:vm-100-disk-0,size=32G',
      scsi3: 'local-zfs:vm-100-disk-9,size=8G',
      snaptime: '1700000000',
    });
  });

  it('takes the # lines of the running config as the description, not those of snapshots', () => {
    const c = parseGuestConfig(fixture('qemu-100.conf'));
    assert.equal(c.description, 'Mail server%3A keep running\nowner ops');
  });

  it('treats [PENDING] and [special:cloudinit] as sections, not as the running config', () => {
    const c = parseGuestConfig(
      [
        'memory: 1024',
        'scsi0: local-zfs:vm-1-disk-0',
        '',
        '[PENDING]',
        'memory: 2048',
        'scsi1: local-zfs:vm-1-disk-1',
        '',
        '[special:cloudinit]',
        'ipconfig0: ip=dhcp',
        '',
      ].join('\n'),
    );
    assert.deepEqual(c.current, { memory: '1024', scsi0: 'local-zfs:vm-1-disk-0' });
    assert.deepEqual(Object.keys(c.snapshots), ['PENDING', 'special:cloudinit']);
    assert.equal(c.snapshots.PENDING?.scsi1, 'local-zfs:vm-1-disk-1');
  });

  it('keeps hostile names and descriptions as plain data', () => {
    const c = parseGuestConfig(fixture('qemu-105.conf'));
    assert.equal(c.current.name, `evil"$(reboot)"'x`);
    assert.equal(c.description, `"; rm -rf / #\n$(reboot) \`id\`\n\ttab and 'quotes'`);
  });

  it('keeps raw lxc.* keys, joining repeated ones', () => {
    const c = parseGuestConfig(fixture('lxc-101.conf'));
    assert.equal(c.current['lxc.apparmor.profile'], 'unconfined');
    assert.equal(
      c.current['lxc.mount.entry'],
      '/dev/net dev/net none bind,create=dir\n/dev/dri dev/dri none bind,optional,create=dir',
    );
    assert.equal(c.current.hostname, 'ct101');
  });

  it('accepts CRLF and empty values', () => {
    const c = parseGuestConfig('name: a\r\ntags:\r\n');
    assert.deepEqual(c.current, { name: 'a', tags: '' });
  });

  it('rejects malformed lines, naming the line number', () => {
    const bad: [string, RegExp][] = [
      [fixture('qemu-104.conf'), /line 3: expected "key: value"/],
      ['name: a\nName: b\n', /line 2: "Name" is not a config key/],
      ['name: a\nname: b\n', /line 2: key "name" appears twice/],
      ['name: a\n[s]\nx: 1\n[s]\n', /line 4: section \[s\] appears twice/],
      ['  name: a\n', /line 1/],
      ['[bad section]\n', /line 1/],
    ];
    for (const [text, re] of bad) {
      assert.throws(
        () => parseGuestConfig(text),
        (err: unknown) => err instanceof ZbmError && re.test(err.message),
        JSON.stringify(text),
      );
    }
  });
});
