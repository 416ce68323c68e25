import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Host, Invocation } from '../../../src/host/host.ts';
import { shellQuote } from '../../../src/host/quote.ts';
import { BATCH_SCRIPT, type BatchOp, batchArgv, parseBatchOutput } from '../../../src/zfs/program.ts';
import { Zfs } from '../../../src/zfs/zfs.ts';

/** Answers each command with the shell snippet reply() gives; records the argv it was asked for. */
class ScriptedHost implements Host {
  readonly isLocal = true;
  readonly name = 'pve1';
  readonly calls: string[][] = [];
  constructor(private readonly reply: (argv: readonly string[]) => string) {}
  invocation(argv: readonly string[]): Invocation {
    this.calls.push([...argv]);
    return { file: 'sh', args: ['-c', this.reply(argv)] };
  }
  async close(): Promise<void> {}
}

const dir = mkdtempSync(join(tmpdir(), 'zbm-program-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('zfs program batches', () => {
  it('passes the operations as arguments, one program per pool, and refuses to destroy a non-snapshot', () => {
    const hostile = "rpool/data/vm-1 $(reboot)'`";
    assert.deepEqual(
      batchArgv('rpool', [
        { kind: 'bookmark', snapshot: `${hostile}@z-1`, bookmark: `${hostile}#z-1` },
        { kind: 'destroy-snapshot', snapshot: 'rpool/data/vm-2@z-0' },
      ]),
      [
        'zfs',
        'program',
        '-j',
        'rpool',
        '-',
        'bookmark',
        `${hostile}@z-1`,
        `${hostile}#z-1`,
        'destroy-snapshot',
        'rpool/data/vm-2@z-0',
      ],
    );
    const refused: BatchOp[] = [
      { kind: 'destroy-snapshot', snapshot: 'rpool/data/vm-2' },
      { kind: 'destroy-snapshot', snapshot: 'rpool/data/vm-2#z-1' },
      { kind: 'bookmark', snapshot: 'rpool/data/vm-2@z-1', bookmark: 'main/vm-2#z-1' },
      { kind: 'destroy-snapshot', snapshot: 'main/vm-2@z-1' },
    ];
    for (const op of refused) assert.throws(() => batchArgv('rpool', [op]), /refusing|not in pool/);
    // The Lua text never contains a name: nothing user-controlled is spliced into code.
    assert.ok(!BATCH_SCRIPT.includes('rpool'));
  });

  it("reads one outcome per operation, a held snapshot as busy, and rejects output that isn't that", () => {
    assert.deepEqual(parseBatchOutput('{"return":{"1":0,"2":16,"3":"not a snapshot","4":2}}', 4), [
      { ok: true },
      { ok: false, busy: true, error: 'dataset is busy (held) (errno 16)' },
      { ok: false, busy: false, error: 'not a snapshot' },
      { ok: false, busy: false, error: 'does not exist (errno 2)' },
    ]);
    for (const bad of [
      '',
      'Channel program fully executed',
      '{"return":{"1":0}}',
      '{"return":{"1":0,"2":true}}',
    ]) {
      assert.throws(() => parseBatchOutput(bad, 2), /zfs program/);
    }
    assert.throws(() => parseBatchOutput('{"return":{"1":0,"2":0,"3":0}}', 2), /3 results for 2/);
  });

  it('runs the script from stdin, one call per pool, and names host and snapshot in a failure', async () => {
    const host = new ScriptedHost((argv) => {
      const pool = argv[3] ?? '';
      const input = join(dir, `${pool}.lua`);
      const answer = pool === 'rpool' ? '{"return":{"1":0,"2":16}}' : '{"return":{"1":17}}';
      return `cat > ${shellQuote(input)}; printf '%s' ${shellQuote(answer)}`;
    });
    const outcomes = await new Zfs(host).batch([
      { kind: 'bookmark', snapshot: 'rpool/a@z-1', bookmark: 'rpool/a#z-1' },
      { kind: 'bookmark', snapshot: 'tank/b@z-1', bookmark: 'tank/b#z-1' },
      { kind: 'destroy-snapshot', snapshot: 'rpool/a@z-0' },
    ]);
    assert.deepEqual(
      host.calls.map((c) => c.slice(0, 4).join(' ')),
      ['zfs program -j rpool', 'zfs program -j tank'],
    );
    assert.equal(readFileSync(join(dir, 'rpool.lua'), 'utf8'), BATCH_SCRIPT);
    assert.deepEqual(outcomes[0], { ok: true });
    assert.deepEqual(outcomes[1], {
      ok: false,
      busy: false,
      error:
        'on pve1: bookmarking tank/b@z-1 as tank/b#z-1: already exists, or the snapshot has dependent clones (errno 17)',
    });
    assert.equal(outcomes[2]?.ok === false && outcomes[2].busy, true);
  });

  it('falls back to one zfs call per operation when the program cannot run, and says why', async () => {
    const host = new ScriptedHost((argv) => {
      if (argv[1] === 'program')
        return 'echo "Channel programs may only be run with root privileges" >&2; exit 1';
      const name = argv.at(-1) ?? '';
      if (name.endsWith('@held'))
        return `echo "cannot destroy snapshot ${name}: dataset is busy" >&2; exit 1`;
      if (name.endsWith('@gone'))
        return 'echo "could not find any snapshots to destroy; check snapshot names." >&2; exit 1';
      return 'exit 0';
    });
    const why: string[] = [];
    const outcomes = await new Zfs(host).batch(
      [
        { kind: 'bookmark', snapshot: 'rpool/a@z-1', bookmark: 'rpool/a#z-1' },
        { kind: 'destroy-snapshot', snapshot: 'rpool/a@held' },
        { kind: 'destroy-snapshot', snapshot: 'rpool/a@gone' },
        { kind: 'destroy-snapshot', snapshot: 'rpool/a@z-0' },
      ],
      (w) => why.push(w),
    );
    assert.equal(why.length, 1);
    assert.match(why[0] ?? '', /root privileges/);
    assert.deepEqual(
      host.calls.slice(1).map((c) => c.join(' ')),
      [
        'zfs bookmark rpool/a@z-1 rpool/a#z-1',
        'zfs destroy rpool/a@held',
        'zfs destroy rpool/a@gone',
        'zfs destroy rpool/a@z-0',
      ],
    );
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? 'ok' : o.busy ? 'busy' : 'error')),
      ['ok', 'busy', 'ok', 'ok'],
    );
  });
});
