import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Host, Invocation } from '../../../src/host/host.ts';
import { moveHoldArgv, splitMoveHold } from '../../../src/zfs/move-hold.ts';
import { Zfs } from '../../../src/zfs/zfs.ts';

const work = mkdtempSync(join(tmpdir(), 'zbm-move-hold-'));
const log = join(work, 'calls');
// A zfs that logs each call one argument per line, and fails a hold when told to.
writeFileSync(
  join(work, 'zfs'),
  `#!/bin/sh
printf '%s\\n' "$@" '--' >> "${log}"
[ "$1" = hold ] && [ -f "${work}/fail-hold" ] && { echo "cannot hold: injected" >&2; exit 1; }
exit 0
`,
);
chmodSync(join(work, 'zfs'), 0o755);

/** This machine with the logging zfs first on PATH; old: answers any sh -c as an older zbm serve. */
function host(name: string, old = false): Host & { commands: string[] } {
  const commands: string[] = [];
  return {
    name,
    isLocal: false,
    commands,
    invocation(argv: readonly string[]): Invocation {
      commands.push(argv[0] === 'sh' ? (argv[3] ?? '') : `${argv[0]} ${argv[1]}`);
      if (old && argv[0] === 'sh')
        return {
          file: 'sh',
          args: [
            '-c',
            `echo "zbm serve on ${name}: refused \\"sh -c t=\\$1...\\": only zfs commands and config writes are served, not sh" >&2; exit 1`,
          ],
        };
      return { file: 'env', args: [`PATH=${work}:${process.env.PATH ?? ''}`, ...argv] };
    },
    async close() {},
  };
}

/** The logged zfs calls, each as its argv. */
function calls(): string[][] {
  const lines = readFileSync(log, 'utf8').split('\n');
  const out: string[][] = [];
  let cur: string[] = [];
  for (const l of lines.slice(0, -1)) {
    if (l === '--') {
      out.push(cur);
      cur = [];
    } else cur.push(l);
  }
  return out;
}

describe('a hold moved in one command', () => {
  after(() => rmSync(work, { recursive: true, force: true }));
  const hostile = ["main/b@x'; reboot #", 'main/b@$(reboot)', 'main/b@a b'];

  it('holds, then releases, in one command, whatever the names hold', async () => {
    rmSync(log, { force: true });
    const h = host('backup1');
    await new Zfs(h).moveHold(
      'zbm-base:pve:backup1',
      [hostile[0] ?? '', hostile[1] ?? ''],
      [hostile[2] ?? ''],
    );
    assert.deepEqual(h.commands, ['zbm-move-hold']);
    assert.deepEqual(calls(), [
      ['hold', 'zbm-base:pve:backup1', ...hostile.slice(0, 2)],
      ['release', 'zbm-base:pve:backup1', ...hostile.slice(2)],
    ]);
  });

  it('releases nothing when the hold fails, and says so with the host', async () => {
    rmSync(log, { force: true });
    writeFileSync(join(work, 'fail-hold'), '');
    try {
      await assert.rejects(
        new Zfs(host('backup1')).moveHold('t', ['main/b@new'], ['main/b@old']),
        /on backup1: cannot hold: injected \(zbm-move-hold, exit code 1\)/,
      );
      assert.deepEqual(calls(), [['hold', 't', 'main/b@new']]);
    } finally {
      rmSync(join(work, 'fail-hold'));
    }
  });

  it('one command alone when there is only a hold or only a release', async () => {
    rmSync(log, { force: true });
    const h = host('backup1');
    await new Zfs(h).moveHold('t', ['main/b@new'], []);
    await new Zfs(h).moveHold('t', [], ['main/b@old']);
    assert.deepEqual(h.commands, ['zfs hold', 'zfs release']);
  });

  it('from an older zbm serve that refuses the script: the two commands, and only them from then on', async () => {
    rmSync(log, { force: true });
    const h = host('backup1', true);
    await new Zfs(h).moveHold('t', ['main/b@new'], ['main/b@old']);
    await new Zfs(h).moveHold('t', ['main/b@newer'], ['main/b@new']);
    assert.deepEqual(h.commands, ['zbm-move-hold', 'zfs hold', 'zfs release', 'zfs hold', 'zfs release']);
    assert.deepEqual(calls(), [
      ['hold', 't', 'main/b@new'],
      ['release', 't', 'main/b@old'],
      ['hold', 't', 'main/b@newer'],
      ['release', 't', 'main/b@new'],
    ]);
  });

  it('splits its arguments back into the hold and the release, and nothing else', () => {
    assert.deepEqual(splitMoveHold(moveHoldArgv('t', ['a@1', 'b@1'], ['a@0'])), {
      tag: 't',
      hold: ['a@1', 'b@1'],
      release: ['a@0'],
    });
    const [sh, c, script, name, tag] = moveHoldArgv('t', ['a@1'], ['a@0']);
    const argv = (...rest: string[]) => [sh ?? '', c ?? '', script ?? '', name ?? '', tag ?? '', ...rest];
    for (const bad of [
      argv('0', 'a@1'),
      argv('2', 'a@1', 'a@0'),
      argv('1', 'a@1'),
      argv('-1', 'a@1', 'a@0'),
      argv('1x', 'a@1', 'a@0'),
    ])
      assert.equal(splitMoveHold(bad), null, bad.slice(4).join(' '));
  });
});
