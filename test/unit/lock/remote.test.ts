import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { acquire, lockFileName } from '../../../src/lock/lock.ts';
import { lockedArgv } from '../../../src/lock/remote.ts';

const dir = mkdtempSync(join(tmpdir(), 'zbm-rlock-'));
process.env.ZBM_LOCK_DIR = dir;
const file = join(dir, lockFileName('receive-main/bak-zbm/vm-100-disk-0'));

function run(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [cmd = 'false', ...args] = argv;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const locked = (wait: number, what: string, argv: string[]) =>
  lockedArgv('main/bak-zbm/vm-100-disk-0', wait, what, argv, dir);

describe('the lock a receive takes on its host (sh)', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the command holding the lock, then removes it, keeping the exit code', async () => {
    const r = await run(locked(0, 'backup-pve', ['sh', '-c', `cat "${file}"; exit 3`]));
    assert.equal(r.code, 3);
    const holder = JSON.parse(r.stdout) as { pid: number; command: string };
    assert.match(holder.command, /^backup-pve \(zbm pid \d+ on [^)]+\)$/);
    assert.equal(existsSync(file), false);
  });

  it('waits for a running holder, then gives up with exit 75 naming it, running nothing', async () => {
    const first = run(locked(0, 'replicate', ['sleep', '3']));
    while (!existsSync(file)) await new Promise((r) => setTimeout(r, 50));
    const second = await run(locked(1, 'backup-pve', ['touch', join(dir, 'ran')]));
    assert.equal(second.code, 75);
    assert.match(second.stderr, /held by \{"pid":\d+,"command":"replicate/);
    assert.equal(existsSync(join(dir, 'ran')), false);
    assert.equal((await first).code, 0);
  });

  it('takes over a lock whose holder died', async () => {
    writeFileSync(file, JSON.stringify({ pid: 2 ** 22 + 7, command: 'prune', since: 'x' }));
    assert.equal((await run(locked(0, 'backup-pve', ['true']))).code, 0);
    assert.equal(existsSync(file), false);
  });

  it("is the same lock as zbm's own: prune sees the receive, the receive sees prune", async () => {
    const receiving = run(locked(0, 'backup-pve', ['sleep', '3']));
    while (!existsSync(file)) await new Promise((r) => setTimeout(r, 50));
    const pruneTry = await acquire('receive-main/bak-zbm/vm-100-disk-0', 'prune', 0);
    assert.ok('heldBy' in pruneTry, 'prune must not get the lock during the receive');
    assert.match(pruneTry.heldBy.command, /backup-pve/);
    await receiving;

    // A prune that holds the lock, as lock.ts records it: a live process whose command line says zbm.
    const zbmLike = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'zbm'], {
      stdio: 'ignore',
    });
    try {
      writeFileSync(file, JSON.stringify({ pid: zbmLike.pid, command: 'prune main/bak-zbm', since: 'x' }));
      const r = await run(locked(0, 'backup-pve', ['true']));
      assert.equal(r.code, 75);
      assert.match(r.stderr, /"command":"prune main\/bak-zbm"/);
    } finally {
      zbmLike.kill();
      rmSync(file, { force: true });
    }
  });

  it('carries a hostile holder description as data', async () => {
    const evil = `x"; touch ${join(dir, 'pwned')}; $(touch ${join(dir, 'pwned2')}) \`id\` '\n`;
    const r = await run(locked(0, evil, ['sh', '-c', `cat "${file}"`]));
    assert.equal(r.code, 0);
    const holder = JSON.parse(r.stdout) as { command: string };
    assert.match(holder.command, /^x__ touch/);
    assert.equal(existsSync(join(dir, 'pwned')), false);
    assert.equal(existsSync(join(dir, 'pwned2')), false);
  });
});
