/**
 * The original design's whole cycle, round after round, on real ZFS: backup-pve on the node,
 * replicate and prune on the backup server, prune with longer rules on the replica, all with the
 * exact commands. Then the replica goes offline for several rounds, and a backup is cloned by an
 * admin: the chain survives both and the next transfers stay incremental.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { BACKUP_PVE, PRUNE_DEST, PRUNE_REPLICA, REPLICATE } from '../lab/commands.ts';
import { type LabHost, labAvailable, reset, sh, writeZvol, zbm } from '../lab/lab.ts';

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

describe('the three-tier chain over many rounds (real ZFS)', { skip: !labAvailable() }, () => {
  before(async () => {
    await reset();
  });

  it('every round: both tiers keep a common snapshot, and replicate stays incremental', async () => {
    for (let n = 1; n <= 4; n++) {
      await round(n);
      const { mode, sent } = await replicateMode();
      assert.equal(mode, n === 1 ? 'full' : 'incremental', `round ${n}`);
      assert.equal(sent, 1, `round ${n}`);
      await mustRun('zbm-dest', PRUNE_DEST);
      await mustRun('zbm-replica', PRUNE_REPLICA);

      const [node, dest, replica] = await Promise.all([
        snaps(`rpool/data/${DISK}`, 'pve1'),
        snaps(`main/bak-zbm/${DISK}`, 'zbm-dest'),
        snaps(`main/bak-zbm/${DISK}`, 'zbm-replica'),
      ]);
      const newestNode = node.filter((s) => s.short.startsWith('bak-zbm-')).at(-1);
      assert.ok(newestNode && guids(dest).has(newestNode.guid), `round ${n}: node and dest share the newest`);
      assert.ok(
        dest.some((s) => guids(replica).has(s.guid)),
        `round ${n}: dest and replica share a snapshot`,
      );
      assert.ok(dest.length <= 3, `round ${n}: dest keeps ${dest.map((s) => s.short)}`);
      assert.ok(replica.length <= 6, `round ${n}: replica keeps ${replica.map((s) => s.short)}`);
    }
  });

  it('replica offline during several prunes: everything it still needs is kept, then it catches up incrementally', async () => {
    const replicaBefore = await snaps(`main/bak-zbm/${DISK}`, 'zbm-replica');
    const base = replicaBefore.at(-1);
    await replicaOffline(true);
    try {
      for (let n = 5; n <= 7; n++) {
        await round(n);
        const r = await zbm('zbm-dest', PRUNE_DEST);
        assert.equal(r.code, 1, 'an unreachable next tier is a failure');
        assert.match(r.stderr, /zbm-replica is unreachable/);
        const dest = await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest');
        assert.ok(
          base && guids(dest).has(base.guid),
          `round ${n}: the replica's base ${base?.short} survives`,
        );
      }
    } finally {
      await replicaOffline(false);
    }
    const { mode, sent } = await replicateMode();
    assert.equal(mode, 'incremental');
    assert.equal(sent, 3, 'the three backups made while the replica was away');
    await mustRun('zbm-dest', PRUNE_DEST);
    await mustRun('zbm-replica', PRUNE_REPLICA);
    const [dest, replica] = await Promise.all([
      snaps(`main/bak-zbm/${DISK}`, 'zbm-dest'),
      snaps(`main/bak-zbm/${DISK}`, 'zbm-replica'),
    ]);
    assert.equal(dest.at(-1)?.guid, replica.at(-1)?.guid);
    assert.ok(dest.length <= 3);
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
      const r = await zbm('zbm-dest', PRUNE_DEST);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, new RegExp(`${oldest.short}.*has clones \\(main/look-inside\\)`));
      const dest = await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest');
      assert.equal(dest[0]?.short, oldest.short);
      assert.ok(dest.length <= 4, `dest keeps ${dest.map((s) => s.short)}`);
    } finally {
      await sh('zfs destroy main/look-inside');
    }
    await mustRun('zbm-dest', PRUNE_DEST);
    const dest = await snaps(`main/bak-zbm/${DISK}`, 'zbm-dest');
    assert.ok(!dest.some((s) => s.short === oldest.short), 'pruned once the clone is gone');
  });
});
