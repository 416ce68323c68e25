/**
 * The fault matrix of issue 9 on real ZFS: zbm (or its ssh) is killed with SIGKILL at each phase of
 * backup-pve, replicate and prune; the test then checks what an admin would: no guest left frozen,
 * no process left behind, and the next ordinary run converges (exit 0, incremental, both sides on
 * the same newest snapshot with the same guid, exactly one zbm hold per side, no partial receive).
 *
 * A phase is reached through the lab's zfs wrapper, which marks and slows the zfs subcommand named
 * in /etc/lab/zfs-slow, or once a rate-limited stream has been partly received.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE } from '../lab/commands.ts';
import {
  clearFaults,
  holds,
  it,
  type LabHost,
  on,
  prop,
  qmLog,
  receivesDone,
  reset,
  sh,
  streamed,
  suite,
  tree,
  writeZvol,
  zbm,
} from '../lab/lab.ts';

const GUEST_DS = 'vm-102-disk-0';
const NODE = `rpool/data/${GUEST_DS}`;
const DEST = `main/bak-zbm/${GUEST_DS}`;
const BACKUP = [...BACKUP_PVE, '--vmid', '102'];
const NODE_TAG = 'zbm-base:pve:zbm-dest';
const REPLICA_TAG = 'zbm-base:pve1:zbm-replica';

/** Runs zbm on host, SIGKILLs it as soon as condition (sh) holds; its exit code. */
async function killAt(host: LabHost, args: readonly string[], condition: string): Promise<number> {
  const script = `rm -f /run/lab/reached-*; zbm "$@" >/tmp/killed.out 2>/tmp/killed.err & pid=$!
for i in $(seq 1200); do eval "$C" && break; kill -0 $pid 2>/dev/null || break; sleep 0.05; done
kill -KILL $pid 2>/dev/null; wait $pid`;
  const r = await on(host, ['env', `C=${condition}`, 'sh', '-c', script, 'zbm-kill', ...args]);
  return r.code;
}

const reached = (subcommand: string) => `[ -e /run/lab/reached-${subcommand} ]`;

/**
 * The watchdog of guest 100 may still be waiting while other guests' cases run. Bracketed, like
 * the patterns of nothingLeft, so that the shell running the check does not match itself.
 */
const WATCHDOG_100 = '[z]bm-thaw-watchdog [0-9]* 100$';

/**
 * Processes a killed zbm leaves end by themselves once their pipes close (within two minutes on a
 * loaded lab). `except` names a process that is expected to still run.
 */
async function nothingLeft(except = 'no process has this name'): Promise<void> {
  for (const host of ['pve1', 'zbm-replica'] as const) {
    await receivesDone(host);
    const left = await sh(
      `p='[z]fs (send|receive|snapshot|hold|release|bookmark|destroy|program)|[s]sh .*zfs|[z]bm-thaw-watchdog|[z]bm-lock'
      left() { pgrep -af "$p" | grep -v -- ${shellJoin([except])}; }
      for i in $(seq 1200); do left >/dev/null || exit 0; sleep 0.1; done; left`,
      host,
    );
    assert.equal(left.trim(), '', `processes left behind on ${host}`);
  }
}

interface Snap {
  readonly name: string;
  readonly guid: string;
}

async function snapshots(ds: string, host: LabHost): Promise<Snap[]> {
  const out = await sh(
    shellJoin(['zfs', 'list', '-H', '-p', '-t', 'snapshot', '-o', 'name,guid', '-s', 'createtxg', ds]),
    host,
  );
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name = '', guid = ''] = l.split('\t');
      return { name, guid };
    });
}

/** The newest snapshot of `of` whose guid `on` has too. */
function newestCommon(of: readonly Snap[], on: readonly Snap[]): Snap | undefined {
  const guids = new Set(on.map((s) => s.guid));
  return of.filter((s) => guids.has(s.guid)).at(-1);
}

/**
 * The three tiers of guest 102's disk agree, as an admin would check after a failure: the backup
 * server has the node's newest zbm snapshot (same guid); the replica holds nothing the backup server
 * lacks; every hold on every tier is exactly the one base of each pair (no leaked hold, whatever
 * its tag); no partial receive is left anywhere.
 */
async function converged(): Promise<void> {
  const [node, dest, replica] = await Promise.all([
    snapshots(NODE, 'pve1'),
    snapshots(DEST, 'zbm-dest'),
    snapshots(DEST, 'zbm-replica'),
  ]);
  const newestNode = node.filter((s) => s.name.includes('@bak-zbm-')).at(-1);
  assert.ok(newestNode, 'the node keeps its newest zbm snapshot');
  const newestDest = dest.at(-1);
  assert.equal(newestDest?.name.split('@')[1], newestNode.name.split('@')[1], 'the backup has the newest');
  assert.equal(newestDest?.guid, newestNode.guid);
  const replicated = newestCommon(dest, replica);
  assert.ok(replicated, 'the replica shares a snapshot with the backup server');
  assert.equal(replica.at(-1)?.guid, replicated.guid, 'the replica has nothing the backup server lacks');
  const short = (s: Snap) => s.name.split('@')[1];
  // The node holds nothing: Proxmox's zfs destroy -r must always succeed.
  assert.deepEqual(await holds(NODE, 'pve1'), []);
  assert.deepEqual(
    await holds(DEST, 'zbm-dest'),
    [`${DEST}@${short(newestNode)}\t${NODE_TAG}`, `${DEST}@${short(replicated)}\t${REPLICA_TAG}`].sort(),
  );
  assert.deepEqual(await holds(DEST, 'zbm-replica'), [`${DEST}@${short(replicated)}\t${REPLICA_TAG}`]);
  for (const host of ['zbm-dest', 'zbm-replica'] as const)
    assert.equal(await prop(DEST, 'receive_resume_token', host), '-', `no partial receive left on ${host}`);
}

/** The replica is on the backup server's newest snapshot (then `converged` holds its base there). */
async function replicaCaughtUp(): Promise<void> {
  const [dest, replica] = await Promise.all([snapshots(DEST, 'zbm-dest'), snapshots(DEST, 'zbm-replica')]);
  assert.equal(replica.at(-1)?.guid, dest.at(-1)?.guid, 'the replica has the newest backup');
}

/** The ordinary run after the kill: exit 0, and no full send (the chain held). */
async function rerun(host: LabHost, args: readonly string[]): Promise<string> {
  const r = await zbm(host, [...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /"mode": "full"/);
  return r.stdout;
}

suite('SIGKILL at each phase, then the next run converges (real ZFS)', 25, () => {
  before(async () => {
    await reset();
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
  });
  after(() => clearFaults());

  // The watchdog's minute runs while the cases of guest 102 below go on; its own test comes after.
  it('backup-pve killed while guest 100 is frozen: it stays frozen for now, and nothing else of it runs', async () => {
    await sh('echo snapshot > /etc/lab/zfs-slow');
    try {
      const code = await killAt('pve1', [...BACKUP_PVE, '--vmid', '100'], '[ -e /run/lab/frozen/100 ]');
      assert.equal(code, 137);
    } finally {
      await sh('rm -f /etc/lab/zfs-slow');
    }
    await sh('test -e /run/lab/frozen/100');
    await nothingLeft(WATCHDOG_100);
    assert.match(await sh('pgrep -af "[z]bm-thaw-watchdog"'), /zbm-thaw-watchdog 60 100$/m);
  });

  // What backup-pve runs through zfs: the snapshot on the node, the holds moved on the backup server,
  // and one channel program destroying the node's old snapshots (it leaves no bookmark on the node,
  // so an ordinary run has no zfs destroy to be killed at).
  for (const phase of ['snapshot', 'hold', 'release', 'program']) {
    it(`backup-pve killed at zfs ${phase}`, async () => {
      await writeZvol(NODE, 1);
      await sh(`echo ${phase} > /etc/lab/zfs-slow`);
      try {
        assert.equal(await killAt('pve1', BACKUP, reached(phase)), 137);
      } finally {
        await sh('rm -f /etc/lab/zfs-slow');
      }
      await nothingLeft(WATCHDOG_100);
      await rerun('pve1', BACKUP);
      await converged();
    });
  }

  it('backup-pve killed mid-stream: the next run resumes the transfer', async () => {
    await writeZvol(NODE, 4, 4);
    assert.equal(await killAt('pve1', [...BACKUP, '--bwlimit', '512K'], streamed(DEST)), 137);
    await nothingLeft(WATCHDOG_100);
    assert.notEqual(await prop(DEST, 'receive_resume_token'), '-', 'the cut transfer left a resumable state');
    assert.match(await rerun('pve1', BACKUP), /"resumed": "resumed"/);
    await converged();
  });

  it('the watchdog thawed guest 100 60 s after the freeze, with no other run; its next backup is normal', async () => {
    const thawed = await sh(
      'for i in $(seq 1200); do [ -e /run/lab/frozen/100 ] || { echo thawed; exit 0; }; sleep 0.1; done; echo frozen',
    );
    assert.equal(thawed.trim(), 'thawed', 'thawed within two minutes of the kill');
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100');
    assert.deepEqual(
      calls.map((l) => l.split(' ').slice(2).join(' ')),
      ['ping ok', 'fsfreeze-freeze 2', 'fsfreeze-thaw 2'],
      'pinged and frozen by the killed run, thawed once by its watchdog',
    );
    const [frozenAt, thawedAt] = [Number(calls[1]?.split(' ')[0]), Number(calls[2]?.split(' ')[0])];
    assert.ok(
      Math.abs(thawedAt - frozenAt - 60) <= 3,
      `thawed ${(thawedAt - frozenAt).toFixed(1)} s after the freeze`,
    );
    await nothingLeft();
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /was still frozen/);
  });

  it('replicate killed mid-stream, then its ssh killed mid-stream: each next run resumes', async () => {
    // One increment to send, so that the cut lands inside it and not between two small ones.
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    await writeZvol(NODE, 6);
    await rerun('pve1', BACKUP);
    assert.equal(await killAt('zbm-dest', [...REPLICATE, '--bwlimit', '512K'], streamed(DEST)), 137);
    await nothingLeft();
    assert.notEqual(await prop(DEST, 'receive_resume_token', 'zbm-replica'), '-');
    assert.match(await rerun('zbm-dest', REPLICATE), /"resumed": "resumed"/);
    await replicaCaughtUp();
    await converged();

    await writeZvol(NODE, 6, 8);
    await rerun('pve1', BACKUP);
    const cut = await on('zbm-dest', [
      'env',
      `C=${streamed(DEST)}`,
      'sh',
      '-c',
      `zbm "$@" >/dev/null 2>&1 & pid=$!
for i in $(seq 1200); do eval "$C" && break; sleep 0.05; done
pkill -KILL -f "[s]sh -o BatchMode=yes .*zbm-replica .*zfs receive"; wait $pid`,
      'zbm-cut',
      ...REPLICATE,
      '--bwlimit',
      '512K',
    ]);
    assert.equal(cut.code, 1, 'the run whose ssh died says so');
    await nothingLeft();
    assert.notEqual(await prop(DEST, 'receive_resume_token', 'zbm-replica'), '-');
    assert.match(await rerun('zbm-dest', REPLICATE), /"resumed": "resumed"/);
    await replicaCaughtUp();
    await converged();
  });

  it('replicate killed at zfs hold: the next run leaves one hold per side', async () => {
    await writeZvol(NODE, 1);
    await rerun('pve1', BACKUP);
    await sh('echo hold > /etc/lab/zfs-slow');
    try {
      assert.equal(await killAt('zbm-dest', REPLICATE, reached('hold')), 137);
    } finally {
      await sh('rm -f /etc/lab/zfs-slow');
    }
    await nothingLeft();
    await rerun('zbm-dest', REPLICATE);
    await replicaCaughtUp();
    await converged();
  });

  it('prune killed at zfs destroy: nothing it had to keep is gone, and the next prune finishes', async () => {
    for (let i = 0; i < 2; i++) {
      await writeZvol(NODE, 1, i);
      await rerun('pve1', BACKUP);
    }
    await rerun('zbm-dest', REPLICATE);
    const [before, keptByReplica] = [await tree(DEST), (await snapshots(DEST, 'zbm-replica')).at(-1)];
    await sh('echo destroy > /etc/lab/zfs-slow');
    try {
      assert.equal(await killAt('zbm-dest', PRUNE_DEST, reached('destroy')), 137);
    } finally {
      await sh('rm -f /etc/lab/zfs-slow');
    }
    await nothingLeft();
    const r = await zbm('zbm-dest', PRUNE_DEST);
    assert.equal(r.code, 0, r.stderr);
    const afterPrune = await tree(DEST);
    assert.ok(afterPrune.length < before.length, 'the prune did its work');
    assert.ok(
      afterPrune.includes(keptByReplica?.name ?? '-'),
      'the snapshot in common with the replica is kept',
    );
    await converged();
    await rerun('pve1', BACKUP);
    await rerun('zbm-dest', REPLICATE);
    await converged();
  });
});
