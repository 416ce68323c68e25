import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/cli/log.ts';
import { printable, printableLines } from '../../src/cli/printable.ts';
import { describeHolder, legacyLockFileName, lockFileName } from '../../src/lock/lock.ts';

describe('text from another host is shown without its control characters', () => {
  it('escapes escape sequences, carriage returns, C1 and bidi controls; keeps ordinary text', () => {
    assert.equal(printable('\u001b]0;owned\u0007title'), '\\x1b]0;owned\\x07title');
    assert.equal(printable('ok\rerror: forged'), 'ok\\x0derror: forged');
    assert.equal(printable('a\nb'), 'a\\x0ab');
    assert.equal(printable('\u009b2J \u202egnp.exe'), '\\x9b2J \\u202egnp.exe');
    assert.equal(printable('vm-100-disk-0 über 100%'), 'vm-100-disk-0 über 100%');
    assert.equal(printableLines('line 1\n\tline 2\u001b[2K'), 'line 1\n\tline 2\\x1b[2K');
  });

  it('the logger writes no control character, whatever a message quotes', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), journal: false });
    log.error('on zbm-dest: `zfs list` failed: \u001b[2J\u001b[Hcleared\rzbm: all backups OK');
    assert.deepEqual(lines, [
      'error: on zbm-dest: `zfs list` failed: \\x1b[2J\\x1b[Hcleared\\x0dzbm: all backups OK\n',
    ]);
    for (const l of lines) assert.equal(printable(l.slice(0, -1)), l.slice(0, -1));
  });

  it('a lock holder is described on one line, escaped', () => {
    const text = describeHolder({ pid: 7, command: 'backup-pve\n\u001b]0;x\u0007', since: '2026\r' });
    assert.equal(text, 'zbm pid 7 (backup-pve\\x0a\\x1b]0;x\\x07, since 2026\\x0d)');
  });
});

describe('lock file names', () => {
  it('are one-to-one: no two dataset names share a lock file', () => {
    const names = ['receive-main/a/b', 'receive-main/a_b', 'receive-main/a%2Fb', 'receive-main/a%b'];
    const files = names.map(lockFileName);
    assert.equal(new Set(files).size, names.length);
    assert.equal(lockFileName('receive-main/a/b'), 'receive-main%2Fa%2Fb.lock');
    // The old encoding did collide: that is what changed.
    assert.equal(legacyLockFileName('receive-main/a/b'), legacyLockFileName('receive-main/a_b'));
  });
});
