import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { acquire, acquireAll, describeHolder, describeWait } from '../../../src/lock/lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'zbm-lock-'));
const holderFile = (name: string, pid: number) =>
  writeFileSync(
    join(dir, `${name}.lock`),
    JSON.stringify({ pid, command: 'backup-pve 100', since: '2026-11-26T10:00:00Z' }),
  );

describe('locks', () => {
  // A process whose command line says zbm, like a real zbm run holding a lock.
  const zbmLike = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)', 'zbm'], { stdio: 'ignore' });
  const notZbm = spawn('sleep', ['600'], { stdio: 'ignore' });
  before(() => {
    process.env.ZBM_LOCK_DIR = dir;
  });
  after(() => {
    zbmLike.kill();
    notZbm.kill();
  });

  it('a second run waits, then gives up naming who holds the lock', async () => {
    holderFile('guest-100', zbmLike.pid ?? 0);
    const started = Date.now();
    const r = await acquire('guest-100', 'backup-pve 100', 300);
    assert.ok('heldBy' in r);
    assert.ok(Date.now() - started >= 300);
    assert.equal(
      describeHolder(r.heldBy),
      `zbm pid ${zbmLike.pid} (backup-pve 100, since 2026-11-26T10:00:00Z)`,
    );
  });

  it('gets the lock as soon as the holder releases it', async () => {
    holderFile('dataset-main_x', zbmLike.pid ?? 0);
    const started = Date.now();
    const notices: string[] = [];
    const waiting = acquire('dataset-main_x', 'prune main/x', 5000, (h, ms) =>
      notices.push(describeWait('main/x', h, ms)),
    );
    // The other run finishes: its release removes the file.
    setTimeout(() => rmSync(join(dir, 'dataset-main_x.lock')), 300);
    const r = await waiting;
    assert.ok('lock' in r);
    assert.ok(Date.now() - started >= 300, 'it waited for the holder');
    assert.deepEqual(notices, [
      `main/x: waiting up to 5 s for zbm pid ${zbmLike.pid} (backup-pve 100, since 2026-11-26T10:00:00Z) to finish`,
    ]);
    r.lock.release();
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('dataset-')),
      [],
    );
  });

  it('recovers a lock whose holder died, or whose pid now belongs to another program', async () => {
    const dead = spawn('true');
    await new Promise((r) => dead.on('exit', r));
    holderFile('guest-101', dead.pid ?? 0);
    const r1 = await acquire('guest-101', 'backup-pve 101', 0);
    assert.ok('lock' in r1);
    r1.lock.release();
    holderFile('guest-102', notZbm.pid ?? 0);
    const r2 = await acquire('guest-102', 'backup-pve 102', 0);
    assert.ok('lock' in r2);
    r2.lock.release();
  });
  it('takes several locks or none: a held one releases those already taken', async () => {
    holderFile('receive-p%2Fds', zbmLike.pid ?? 0);
    const r = await acquireAll(['dataset-p/ds', 'receive-p/ds'], 'prune p/ds', 0);
    assert.ok('heldBy' in r);
    assert.equal(r.heldBy.pid, zbmLike.pid);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('p%2Fds')),
      ['receive-p%2Fds.lock'],
    );
    rmSync(join(dir, 'receive-p%2Fds.lock'));
    const both = await acquireAll(['dataset-p/ds', 'receive-p/ds'], 'prune p/ds', 0);
    assert.ok('lock' in both);
    assert.deepEqual(
      readdirSync(dir)
        .filter((f) => f.includes('p%2Fds'))
        .sort(),
      ['dataset-p%2Fds.lock', 'receive-p%2Fds.lock'],
    );
    both.lock.release();
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('p%2Fds')),
      [],
    );
  });
});
