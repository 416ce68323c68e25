/**
 * The original design's whole cycle, round after round, on real ZFS: backup-pve on the node,
 * replicate and prune on the backup server, prune with longer rules on the replica, all with the
 * exact commands. Then the replica goes offline for several rounds, and a backup is cloned by an
 * admin: the chain survives both and the next transfers stay incremental.
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE, PRUNE_DEST, PRUNE_REPLICA, REPLICATE } from '../lab/commands.ts';
import { it, type LabHost, on, reset, sh, suite, writeZvol, zbm } from '../lab/lab.ts';
import { keptByRules, type Rules } from '../lab/retention.ts';

const DISK = 'vm-102-disk-0';
/** One small guest keeps the rounds quick; the commands are otherwise the original ones. */
const BACKUP = [...BACKUP_PVE, '--vmid', '102'];
interface Snap {
  readonly short: string;
  readonly guid: string;
}

async function snaps(dataset: string, host: LabHost): Promise<Snap[]> {
  const out = await sh(`zfs list -H -p -t snapshot -o name,guid -s createtxg ${dataset}`, host);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name = '', guid = ''] = l.split('\t');
      return { short: name.split('@')[1] ?? '', guid };
    });
}

const guids = (s: readonly Snap[]) => new Set(s.map((x) => x.guid));
const shorts = (s: readonly Snap[]) => s.map((x) => x.short);

const DEST_RULES: Rules = { last: 2, hourly: 2 };
/**
 * The backup server's prune with --keep-last alone, for the clone case: with --keep-hourly, a run
 * crossing the full hour keeps the clone's origin as its hour's newest, and the clone is then not
 * what keeps it (seen in a run at 05:00).
 */
const lastOnly = PRUNE_DEST.filter((a, i, all) => a !== '--keep-hourly' && all[i - 1] !== '--keep-hourly');
const REPLICA_RULES: Rules = { last: 5, hourly: 24, daily: 30, monthly: 12 };

/** What a prune leaves of `before`: what the rules keep, plus what it must keep besides. */
function afterPrune(before: readonly Snap[], rules: Rules, mustKeep: readonly string[] = []): string[] {
  const kept = keptByRules(shorts(before), rules);
  return shorts(before).filter((n) => kept.has(n) || mustKeep.includes(n));
}

/** Everything from the newest snapshot the replica has too on: what the backup server's prune keeps. */
function fromCommonOn(dest: readonly Snap[], replica: readonly Snap[]): string[] {
  const onReplica = guids(replica);
  const common = dest.map((s) => onReplica.has(s.guid)).lastIndexOf(true);
  return shorts(dest.slice(Math.max(common, 0)));
}

async function mustRun(host: LabHost, args: readonly string[]): Promise<string> {
  const r = await zbm(host, args);
  assert.equal(r.code, 0, `zbm ${args[0]} on ${host} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

/** replicate --json: the mode of the one dataset of this test. */
async function replicateMode(): Promise<{ mode: string; sent: number }> {
  const out = await mustRun('zbm-dest', [...REPLICATE, '--json']);
  const d = (
    JSON.parse(out) as { datasets: { source: string; mode: string; sent: string[] }[] }
  ).datasets.find((x) => x.source === `main/bak-zbm/${DISK}`);
  return { mode: d?.mode ?? '?', sent: d?.sent.length ?? -1 };
}

async function round(n: number): Promise<void> {
  await writeZvol(`rpool/data/${DISK}`, 1, n % 8);
  await mustRun('pve1', BACKUP);
}

/** Makes zbm-replica unreachable from the backup server (a closed port), or reachable again. */
async function replicaOffline(offline: boolean): Promise<void> {
  await sh(
    offline
      ? "{ printf 'Host zbm-replica\\n    HostName 127.0.0.1\\n    Port 9\\n\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config"
      : 'sed -i 1,4d /root/.ssh/config',
  );
}

/** The disk's snapshots on the three tiers. */
async function tiers(): Promise<{ node: Snap[]; dest: Snap[]; replica: Snap[] }> {
  const [node, dest, replica] = await Promise.all([
    snaps(`rpool/data/${DISK}`, 'pve1'),
    snaps(`main/bak-zbm/${DISK}`, 'zbm-dest'),
    snaps(`main/bak-zbm/${DISK}`, 'zbm-replica'),
  ]);
  return { node, dest, replica };
}

/**
 * Prunes both servers with the original design's commands and checks each against the model: the
 * backup server keeps what its rules keep and everything from the newest snapshot in common with
 * the replica on (not yet replicated, or the base); the replica what its rules keep and its base.
 * `alsoKept` are kept on the backup server for another reason (a clone's origin).
 */
async function pruneBoth(label: string, alsoKept: readonly string[] = []): Promise<void> {
  const before = await tiers();
  await mustRun('zbm-dest', PRUNE_DEST);
  await mustRun('zbm-replica', PRUNE_REPLICA);
  const after = await tiers();
  const replicaBase = before.replica.at(-1)?.short ?? '-';
  assert.deepEqual(
    shorts(after.dest),
    afterPrune(before.dest, DEST_RULES, [...fromCommonOn(before.dest, before.replica), ...alsoKept]),
    `${label}: the backup server keeps`,
  );
  assert.deepEqual(
    shorts(after.replica),
    afterPrune(before.replica, REPLICA_RULES, [replicaBase]),
    `${label}: the replica keeps`,
  );
  sameChain(after, label);
}

/**
 * The node keeps only its newest zbm snapshot, which is the backup server's newest (same guid);
 * every snapshot the backup server and the replica both have is the same snapshot (same guid); the
 * replica has nothing newer than the backup server.
 */
function sameChain(t: { node: Snap[]; dest: Snap[]; replica: Snap[] }, label: string): void {
  const onNode = t.node.filter((s) => s.short.startsWith('bak-zbm-'));
  assert.equal(onNode.length, 1, `${label}: the node keeps ${shorts(onNode)}`);
  assert.deepEqual(t.dest.at(-1), onNode[0], `${label}: the node's newest is backed up`);
  const dest = new Map(t.dest.map((s) => [s.short, s.guid]));
  for (const r of t.replica)
    assert.equal(dest.get(r.short) ?? r.guid, r.guid, `${label}: ${r.short} is one snapshot`);
  assert.ok(
    t.replica.length > 0 && guids(t.dest).has(t.replica.at(-1)?.guid ?? '-'),
    `${label}: replica's newest on dest`,
  );
}

suite('the three-tier chain over many rounds (real ZFS)', 15, () => {
  before(async () => {
    await reset();
  });

  it('every round: both tiers keep what their rules and the chain need, and replicate stays incremental', async () => {
    for (let n = 1; n <= 4; n++) {
      await round(n);
      const { mode, sent } = await replicateMode();
      assert.equal(mode, n === 1 ? 'full' : 'incremental', `round ${n}`);
      assert.equal(sent, 1, `round ${n}`);
      await pruneBoth(`round ${n}`);
    }
  });

  it('replica offline during several prunes: everything it still needs is kept, then it catches up incrementally', async () => {
    const replicaBefore = await snaps(`main/bak-zbm/${DISK}`, 'zbm-replica');
    await replicaOffline(true);
    try {
      for (let n = 5; n <= 7; n++) {
        await round(n);
        const before = await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest');
        // No retries of the refused connection (14-35 s each): host-layer.test.ts covers those.
        const r = await on('zbm-dest', ['env', 'ZBM_SSH_RETRIES=0', 'zbm', ...PRUNE_DEST]);
        assert.equal(r.code, 1, 'an unreachable next tier is a failure');
        assert.match(r.stderr, /zbm-replica is unreachable/);
        // The replica's base (its newest, held on both sides) and everything newer stay.
        assert.deepEqual(
          shorts(await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest')),
          afterPrune(before, DEST_RULES, fromCommonOn(before, replicaBefore)),
          `round ${n}`,
        );
      }
    } finally {
      await replicaOffline(false);
    }
    const { mode, sent } = await replicateMode();
    assert.equal(mode, 'incremental');
    assert.equal(sent, 3, 'the three backups made while the replica was away');
    await pruneBoth('back online');
    const { dest, replica } = await tiers();
    assert.equal(dest.at(-1)?.guid, replica.at(-1)?.guid);
  });

  it("an admin's clone of a backup is kept with the reason, and the rest is still pruned", async () => {
    const oldest = (await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest'))[0];
    assert.ok(oldest);
    await sh(`zfs clone main/bak-zbm/${DISK}@${oldest.short} main/look-inside`);
    try {
      for (let n = 8; n <= 9; n++) {
        await round(n);
        await replicateMode();
      }
      const before = await tiers();
      const r = await zbm('zbm-dest', lastOnly);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, new RegExp(`${oldest.short}.*has clones \\(main/look-inside\\)`));
      assert.deepEqual(
        shorts(await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest')),
        afterPrune(before.dest, { last: DEST_RULES.last }, [
          ...fromCommonOn(before.dest, before.replica),
          oldest.short,
        ]),
      );
    } finally {
      await sh('zfs destroy main/look-inside');
    }
    const before = await tiers();
    await mustRun('zbm-dest', lastOnly);
    await mustRun('zbm-replica', PRUNE_REPLICA);
    const after = await tiers();
    assert.deepEqual(
      shorts(after.dest),
      afterPrune(before.dest, { last: DEST_RULES.last }, fromCommonOn(before.dest, before.replica)),
      'clone gone: the backup server keeps',
    );
    assert.deepEqual(
      shorts(after.replica),
      afterPrune(before.replica, REPLICA_RULES, [before.replica.at(-1)?.short ?? '-']),
      'clone gone: the replica keeps',
    );
    assert.ok(!after.dest.some((s) => s.short === oldest.short), 'pruned once the clone is gone');
  });
});
