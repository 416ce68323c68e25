import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { describeHolder, legacyLockFileName, lockFileName } from '../../../src/lock/lock.ts';
import { printable, printableLines } from '../../../src/text/printable.ts';

describe('text from another host is shown without its control characters', () => {
  it('escapes escape sequences, carriage returns, C1 and bidi controls; keeps ordinary text', () => {
    assert.equal(printable('\u001b]0;owned\u0007title'), '\\u001b]0;owned\\u0007title');
    assert.equal(printable('ok\rerror: forged'), 'ok\\u000derror: forged');
    assert.equal(printable('a\nb'), 'a\\u000ab');
    assert.equal(printable('\u009b2J \u202egnp.exe'), '\\u009b2J \\u202egnp.exe');
    assert.equal(printable('vm-100-disk-0 über 100%'), 'vm-100-disk-0 über 100%');
    assert.equal(printableLines('line 1\n\tline 2\u001b[2K'), 'line 1\n\tline 2\\u001b[2K');
  });

  it('keeps JSON valid, with the same meaning', () => {
    const value = { name: 'web\u009b\u2028\u007f', error: 'x\u001b[2J' };
    const shown = printableLines(JSON.stringify(value, null, 2));
    assert.equal(printable(shown.replaceAll('\n', '')), shown.replaceAll('\n', ''));
    assert.deepEqual(JSON.parse(shown), value);
  });

  it('the logger writes no control character, whatever a message quotes', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), journal: false });
    log.error('on zbm-dest: `zfs list` failed: \u001b[2J\u001b[Hcleared\rzbm: all backups OK');
    assert.deepEqual(lines, [
      'error: on zbm-dest: `zfs list` failed: \\u001b[2J\\u001b[Hcleared\\u000dzbm: all backups OK\n',
    ]);
    for (const l of lines) assert.equal(printable(l.slice(0, -1)), l.slice(0, -1));
  });

  it('a lock holder is described on one line, escaped', () => {
    const text = describeHolder({ pid: 7, command: 'backup-pve\n\u001b]0;x\u0007', since: '2026\r' });
    assert.equal(text, 'zbm pid 7 (backup-pve\\u000a\\u001b]0;x\\u0007, since 2026\\u000d)');
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
