import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../../src/errors.ts';
import { checkName, isValidName, relativeTo, splitSnapshot } from '../../../src/zfs/names.ts';

describe('ZFS name validation', () => {
  it('accepts what ZFS accepts', () => {
    for (const n of ['rpool', 'rpool/data', 'rpool/data/vm-100-disk-0', 'main/bak zbm/a.b:c_d-e']) {
      assert.ok(isValidName(n, 'dataset'), n);
    }
    assert.ok(isValidName('rpool/data/vm-100-disk-0@bak-zbm-2026-11-26T110000Z', 'snapshot'));
    assert.ok(isValidName('rpool/data/vm-100-disk-0#zbm-base', 'bookmark'));
  });

  it('rejects shell metacharacters, empty components and misplaced separators', () => {
    const bad = [
      '',
      '/rpool',
      'rpool/',
      'rpool//data',
      'rpool/$(reboot)',
      'rpool/`id`',
      'rpool/a;b',
      'rpool/a\nb',
      "rpool/it's",
      '-rpool',
      '1pool',
      'rpool/..',
      'rpool/ü',
      'rpool@snap',
      'a'.repeat(256),
    ];
    for (const n of bad) assert.ok(!isValidName(n, 'dataset'), JSON.stringify(n));
    assert.ok(!isValidName('rpool/a', 'snapshot'));
    assert.ok(!isValidName('rpool/a@', 'snapshot'));
    assert.ok(!isValidName('rpool/a@b@c', 'snapshot'));
    assert.ok(!isValidName('rpool/a@b/c', 'snapshot'));
    assert.ok(!isValidName('rpool/a@b', 'bookmark'));
  });

  it('names the bad value and the rule in its error', () => {
    assert.throws(
      () => checkName('rpool/$(x)', 'dataset', 'dataset name'),
      (err: unknown) =>
        err instanceof UsageError && err.message.includes('"rpool/$(x)"') && err.message.includes('"$"'),
    );
  });

  it('splits and relates names', () => {
    assert.deepEqual(splitSnapshot('a/b@c'), { dataset: 'a/b', snapshot: 'c' });
    assert.equal(relativeTo('rpool/data', 'rpool/data/vm-1'), 'vm-1');
    assert.equal(relativeTo('rpool/data', 'rpool/data'), '');
    assert.equal(relativeTo('rpool/data', 'rpool/database/x'), null);
  });
});
