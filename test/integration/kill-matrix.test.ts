/**
 * The fault matrix of issue 9 on real ZFS: zbm (or its ssh) is killed with SIGKILL at each phase of
 * backup-pve, replicate and prune; the test then checks what an admin would: no guest left frozen,
 * no process left behind, and the next ordinary run converges (exit 0, incremental, both sides on
 * the same newest snapshot with the same guid, exactly one zbm hold per side, no partial receive).
 *
 * A phase is reached through a zfs wrapper that marks and slows the zfs subcommand named in
 * /etc/lab/slow-zfs, or by waiting for the receive of a rate-limited stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE } from '../lab/commands.ts';
import {
  holds,
  type LabHost,
  labAvailable,
  on,
  prop,
  receivesDone,
  reset,
  sh,
  tree,
  unwrapZfs,
  wrapZfs,
  writeZvol,
  zbm,
} from '../lab/lab.ts';

const WRAPPER = `#!/bin/sh
if [ -e /etc/lab/slow-zfs ] && [ "$1" = "$(cat /etc/lab/slow-zfs)" ]; then
  mkdir -p /run/lab && touch "/run/lab/reached-$1"
  sleep 2
fi
exec /usr/local/sbin/zfs.lab "$@"
`;

const GUEST_DS = 'vm-102-disk-0';
const NODE = `rpool/data/${GUEST_DS}`;
const DEST = `main/bak-zbm/${GUEST_DS}`;
const BACKUP = [...BACKUP_PVE, '--vmid', '102'];
const NODE_TAG = 'zbm-base:pve:zbm-dest';
const REPLICA_TAG = 'zbm-base:pve1:zbm-replica';

/** Runs zbm on host, SIGKILLs it once condition (sh) holds and delay seconds passed; its exit code. */
async function killAt(host: LabHost, args: readonly string[], condition: string, delay = 0): Promise<number> {
  const script = `rm -f /run/lab/reached-*; zbm "$@" >/tmp/killed.out 2>/tmp/killed.err & pid=$!
for i in $(seq 1200); do eval "$C" && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
sleep "$D"; kill -KILL $pid 2>/dev/null; wait $pid`;
  const r = await on(host, ['env', `C=${condition}`, `D=${delay}`, 'sh', '-c', script, 'zbm-kill', ...args]);
  return r.code;
}

const reached = (subcommand: string) => `[ -e /run/lab/reached-${subcommand} ]`;
/** The receive itself runs (not only the ssh that carries it), on the main VM or on the replica. */
const receiving = (dataset: string, on: LabHost = 'zbm-dest') => {
  const pgrep = `pgrep -f '^/usr/sbin/zfs receive .*${dataset}$' >/dev/null`;
  return on === 'zbm-replica' ? `ssh zbm-replica "${pgrep}"` : pgrep;
};

/** Processes a killed zbm leaves end by themselves once their pipes close (within two minutes on a loaded lab). */
async function nothingLeft(): Promise<void> {
  for (const host of ['pve1', 'zbm-replica'] as const) {
    await receivesDone(host);
    const left = await sh(
      `p='[z]fs (send|receive|snapshot|hold|release|bookmark|destroy)|[s]sh .*zfs|[z]bm-thaw-watchdog'
      for i in $(seq 1200); do pgrep -f "$p" >/dev/null || exit 0; sleep 0.1; done; pgrep -af "$p"`,
      host,
    );
    assert.equal(left.trim(), '', `processes left behind on ${host}`);
  }
}

const newest = async (ds: string, host: LabHost) =>
  (await tree(ds, host)).filter((n) => n.includes('@')).at(-1);
const zbmHolds = async (ds: string, host: LabHost) =>
  (await holds(ds, host)).filter((h) => h.split('\t')[1]?.startsWith('zbm-'));

/** The two sides share their newest snapshot (same guid), which alone carries the pair's hold. */
async function converged(
  source: { ds: string; host: LabHost },
  target: { ds: string; host: LabHost },
  tag: string,
): Promise<void> {
  const [s, t] = [await newest(source.ds, source.host), await newest(target.ds, target.host)];
  assert.ok(s && t);
  assert.equal(t.split('@')[1], s.split('@')[1], 'the target has the source newest snapshot');
  assert.equal(await prop(t, 'guid', target.host), await prop(s, 'guid', source.host));
  assert.deepEqual(
    (await zbmHolds(source.ds, source.host)).filter((h) => h.endsWith(`\t${tag}`)),
    [`${s}\t${tag}`],
  );
  assert.deepEqual(
    (await zbmHolds(target.ds, target.host)).filter((h) => h.endsWith(`\t${tag}`)),
    [`${t}\t${tag}`],
  );
  assert.equal(await prop(target.ds, 'receive_resume_token', target.host), '-', 'no partial receive left');
}

/** The ordinary run after the kill: exit 0, and no full send (the chain held). */
async function rerun(host: LabHost, args: readonly string[]): Promise<string> {
  const r = await zbm(host, [...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /"mode": "full"/);
  return r.stdout;
}

const backupConverged = () => converged({ ds: NODE, host: 'pve1' }, { ds: DEST, host: 'zbm-dest' }, NODE_TAG);
const replicaConverged = () =>
  converged({ ds: DEST, host: 'zbm-dest' }, { ds: DEST, host: 'zbm-replica' }, REPLICA_TAG);

describe('SIGKILL at each phase, then the next run converges (real ZFS)', { skip: !labAvailable() }, () => {
  before(async () => {
    await reset();
    await wrapZfs(WRAPPER);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
  });
  after(async () => {
    await sh('rm -f /etc/lab/slow-zfs');
    await unwrapZfs();
  });

  for (const phase of ['snapshot', 'hold', 'release', 'program', 'destroy']) {
    it(`backup-pve killed at zfs ${phase}`, async () => {
      await writeZvol(NODE, 1);
      await sh(`echo ${phase} > /etc/lab/slow-zfs`);
      try {
        assert.equal(await killAt('pve1', BACKUP, reached(phase), 0.5), 137);
      } finally {
        await sh('rm -f /etc/lab/slow-zfs');
      }
      await nothingLeft();
      await rerun('pve1', BACKUP);
      await backupConverged();
    });
  }

  it('backup-pve killed mid-stream: the next run resumes the transfer', async () => {
    await writeZvol(NODE, 4, 4);
    assert.equal(await killAt('pve1', [...BACKUP, '--bwlimit', '512K'], receiving(DEST), 2), 137);
    await nothingLeft();
    assert.notEqual(await prop(DEST, 'receive_resume_token'), '-', 'the cut transfer left a resumable state');
    assert.match(await rerun('pve1', BACKUP), /"resumed": "resumed"/);
    await backupConverged();
  });

  it('backup-pve killed while the guest is frozen: the watchdog thaws it without any other run', async () => {
    await sh('echo snapshot > /etc/lab/slow-zfs');
    try {
      const code = await killAt('pve1', [...BACKUP_PVE, '--vmid', '100'], '[ -e /run/lab/frozen/100 ]', 0.5);
      assert.equal(code, 137);
    } finally {
      await sh('rm -f /etc/lab/slow-zfs');
    }
    const thawed = await sh(
      'for i in $(seq 1200); do [ -e /run/lab/frozen/100 ] || { echo thawed; exit 0; }; sleep 0.1; done; echo frozen',
    );
    assert.equal(thawed.trim(), 'thawed', 'thawed within two minutes of the kill');
    await nothingLeft();
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /was still frozen/);
  });

  it('replicate killed mid-stream, then its ssh killed mid-stream: each next run resumes', async () => {
    // One increment to send, so that the cut lands inside it and not between two small ones (guest
    // 100's disks, new since the frozen case, go in full here).
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    await writeZvol(NODE, 6);
    await rerun('pve1', BACKUP);
    assert.equal(
      await killAt('zbm-dest', [...REPLICATE, '--bwlimit', '512K'], receiving(DEST, 'zbm-replica'), 4),
      137,
    );
    await nothingLeft();
    assert.notEqual(await prop(DEST, 'receive_resume_token', 'zbm-replica'), '-');
    assert.match(await rerun('zbm-dest', REPLICATE), /"resumed": "resumed"/);
    await replicaConverged();

    await writeZvol(NODE, 6, 8);
    await rerun('pve1', BACKUP);
    const cut = await on('zbm-dest', [
      'env',
      `C=${receiving(DEST, 'zbm-replica')}`,
      'sh',
      '-c',
      `zbm "$@" >/dev/null 2>&1 & pid=$!
for i in $(seq 1200); do eval "$C" && break; sleep 0.05; done
sleep 3; pkill -KILL -f "[s]sh -o BatchMode=yes .*zbm-replica .*zfs receive"; wait $pid`,
      'zbm-cut',
      ...REPLICATE,
      '--bwlimit',
      '512K',
    ]);
    assert.equal(cut.code, 1, 'the run whose ssh died says so');
    await nothingLeft();
    assert.notEqual(await prop(DEST, 'receive_resume_token', 'zbm-replica'), '-');
    assert.match(await rerun('zbm-dest', REPLICATE), /"resumed": "resumed"/);
    await replicaConverged();
  });

  it('replicate killed at zfs hold: the next run leaves one hold per side', async () => {
    await writeZvol(NODE, 1);
    await rerun('pve1', BACKUP);
    await sh('echo hold > /etc/lab/slow-zfs');
    try {
      assert.equal(await killAt('zbm-dest', REPLICATE, reached('hold'), 0.5), 137);
    } finally {
      await sh('rm -f /etc/lab/slow-zfs');
    }
    await nothingLeft();
    await rerun('zbm-dest', REPLICATE);
    await replicaConverged();
  });

  it('prune killed at zfs destroy: nothing it had to keep is gone, and the next prune finishes', async () => {
    for (let i = 0; i < 2; i++) {
      await writeZvol(NODE, 1, i);
      await rerun('pve1', BACKUP);
    }
    await rerun('zbm-dest', REPLICATE);
    const [before, keptByReplica] = [await tree(DEST), await newest(DEST, 'zbm-replica')];
    await sh('echo destroy > /etc/lab/slow-zfs');
    try {
      assert.equal(await killAt('zbm-dest', PRUNE_DEST, reached('destroy'), 0.5), 137);
    } finally {
      await sh('rm -f /etc/lab/slow-zfs');
    }
    await nothingLeft();
    const r = await zbm('zbm-dest', PRUNE_DEST);
    assert.equal(r.code, 0, r.stderr);
    const afterPrune = await tree(DEST);
    assert.ok(afterPrune.length < before.length, 'the prune did its work');
    assert.ok(afterPrune.includes(keptByReplica ?? ''), 'the snapshot in common with the replica is kept');
    await backupConverged();
    await replicaConverged();
    await rerun('pve1', BACKUP);
    await rerun('zbm-dest', REPLICATE);
  });
});
