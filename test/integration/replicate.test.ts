import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE, REPLICATE } from '../lab/commands.ts';
import {
  holds,
  it,
  killMidStream,
  prop,
  receivesDone,
  reset,
  sh,
  suite,
  tree,
  writeZvol,
  zbm,
  zvolHash,
} from '../lab/lab.ts';

const BACKUP = BACKUP_PVE;

/** Datasets and snapshots (not bookmarks) under root, as names. */
async function snapshotsTree(root: string, host: 'zbm-dest' | 'zbm-replica'): Promise<string[]> {
  return (await tree(root, host)).filter((n) => !n.includes('#'));
}

suite('replicate on real ZFS', 15, () => {
  let destHost = '';
  before(async () => {
    await reset();
    destHost = (await sh('hostname')).trim();
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    await writeZvol('rpool/data/vm-100-disk-0', 1);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
  });

  it("mirrors every backup and its whole history with the original design's exact command", async () => {
    const r = await zbm('zbm-dest', REPLICATE);
    assert.equal(r.code, 0, r.stderr);
    const dest = await snapshotsTree('main/bak-zbm', 'zbm-dest');
    assert.deepEqual(await snapshotsTree('main/bak-zbm', 'zbm-replica'), dest);
    assert.equal(dest.filter((n) => n.startsWith('main/bak-zbm/vm-100-disk-0@')).length, 2);
    const guids = (host: 'zbm-dest' | 'zbm-replica') =>
      sh('zfs list -H -t snapshot -o guid -s name -r main/bak-zbm/vm-100-disk-0', host);
    assert.equal(await guids('zbm-replica'), await guids('zbm-dest'));
    assert.equal(
      await zvolHash('main/bak-zbm/vm-100-disk-0', 'zbm-replica'),
      await zvolHash('main/bak-zbm/vm-100-disk-0', 'zbm-dest'),
    );
    // The configs travel with the data, so the replica alone can restore a guest.
    const files = 'find /root/backups_metadata -type f | sort';
    assert.equal(await sh(files, 'zbm-replica'), await sh(files, 'zbm-dest'));
    assert.equal(await prop('main/bak-zbm', 'zbm:metadata-dir', 'zbm-replica'), '/root/backups_metadata');
    // Unmounted receives.
    assert.equal(await prop('main/bak-zbm/subvol-103-disk-0', 'mounted', 'zbm-replica'), 'no');
  });

  it('sends only what is new next time (three datasets at a time), and only the expected holds remain on both sides', async () => {
    await writeZvol('rpool/data/vm-100-disk-0', 1, 2);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    const r = await zbm('zbm-dest', [...REPLICATE, '--jobs', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      datasets: { source: string; sent: string[]; mode: string; bytes: number; result: string }[];
    };
    const sources = result.datasets.map((d) => d.source);
    assert.deepEqual(sources, [...sources].sort(), 'results in the order of the datasets');
    assert.deepEqual(
      result.datasets.filter((d) => d.result !== 'ok').map((d) => d.source),
      [],
    );
    const vm100 = result.datasets.find((d) => d.source === 'main/bak-zbm/vm-100-disk-0');
    assert.equal(vm100?.mode, 'incremental');
    assert.equal(vm100?.sent.length, 1);
    assert.ok((vm100?.bytes ?? 0) < 1.5 * 1024 * 1024);
    // Exact: the stream of the same increment, sent again on the backup server.
    const ds100 = 'main/bak-zbm/vm-100-disk-0';
    const [prev, last] = (await snapshotsTree(ds100, 'zbm-replica')).slice(-2);
    assert.equal(vm100?.bytes, Number(await sh(`zfs send -L -e -c -i ${prev} ${last} | wc -c`)));

    const newest = (await snapshotsTree('main/bak-zbm/vm-100-disk-0', 'zbm-dest')).at(-1) ?? '';
    const pair = `zbm-base:${destHost}:zbm-replica`;
    assert.deepEqual(
      await holds('main/bak-zbm/vm-100-disk-0', 'zbm-dest'),
      [`${newest}\t${pair}`, `${newest}\tzbm-base:pve:zbm-dest`].sort(),
    );
    assert.deepEqual(await holds('main/bak-zbm/vm-100-disk-0', 'zbm-replica'), [`${newest}\t${pair}`]);
  });

  it('refuses a diverged replica, untouched, naming the common snapshot by guid and the option that rolls back (with -y)', async () => {
    await sh('zfs snapshot main/bak-zbm/vm-101-disk-0@intruder', 'zbm-replica');
    await writeZvol('rpool/data/vm-101-disk-0', 1);
    assert.equal((await zbm('pve1', [...BACKUP, '--vmid', '101'])).code, 0);
    const before = await tree('main/bak-zbm/vm-101-disk-0', 'zbm-replica');
    const r = await zbm('zbm-dest', REPLICATE);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /zbm-replica:main\/bak-zbm\/vm-101-disk-0 has diverged/);
    assert.match(r.stderr, /intruder/);
    assert.match(r.stderr, /newest common snapshot: bak-zbm-\d+T\d+Z \(guid \d+\)/);
    assert.match(r.stderr, /--force-rollback/);
    assert.deepEqual(await tree('main/bak-zbm/vm-101-disk-0', 'zbm-replica'), before);

    // Like every destroy, a rollback needs -y (or a yes on a terminal): without it, nothing changes.
    const unconfirmed = await zbm('zbm-dest', [...REPLICATE, '--force-rollback']);
    assert.equal(unconfirmed.code, 1);
    assert.match(
      unconfirmed.stderr,
      /--force-rollback would destroy the later snapshots and changes of zbm-replica:main\/bak-zbm\/vm-101-disk-0: not rolled back without -y/,
    );
    assert.deepEqual(await tree('main/bak-zbm/vm-101-disk-0', 'zbm-replica'), before);

    const forced = await zbm('zbm-dest', [...REPLICATE, '--force-rollback', '-y']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      await snapshotsTree('main/bak-zbm/vm-101-disk-0', 'zbm-replica'),
      await snapshotsTree('main/bak-zbm/vm-101-disk-0', 'zbm-dest'),
    );
  });

  it('resumes an interrupted replication from its token', async () => {
    await writeZvol('rpool/data/vm-102-disk-0', 8);
    assert.equal((await zbm('pve1', [...BACKUP, '--vmid', '102'])).code, 0);
    // Cut once zfs send has written 3 MiB of the 8 (the receive on the replica is out of sight, and
    // what the pipe and ssh still buffer then is well under 2 MiB): the resumed run moves under 7.
    // At 512K/s the cut has 10 s to land: at 1M/s a loaded lab (three on two cores) once polled
    // too slowly and the run had finished.
    const killed = await killMidStream([...REPLICATE, '--bwlimit', '512K'], 'main/bak-zbm/vm-102-disk-0', {
      host: 'zbm-dest',
      bytes: 3 * 1024 * 1024,
    });
    assert.equal(killed.code, 130, killed.stderr);
    await receivesDone('zbm-replica');
    assert.match(await prop('main/bak-zbm/vm-102-disk-0', 'receive_resume_token', 'zbm-replica'), /^1-/);
    const r = await zbm('zbm-dest', [...REPLICATE, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const d = (
      JSON.parse(r.stdout) as { datasets: { source: string; resumed: string | null; bytes: number }[] }
    ).datasets.find((x) => x.source === 'main/bak-zbm/vm-102-disk-0');
    assert.equal(d?.resumed, 'resumed');
    assert.ok((d?.bytes ?? 0) < 7 * 1024 * 1024, `moved ${d?.bytes}`);
    assert.equal(
      await zvolHash('main/bak-zbm/vm-102-disk-0', 'zbm-replica'),
      await zvolHash('main/bak-zbm/vm-102-disk-0', 'zbm-dest'),
    );
  });

  it('keeps encrypted backups encrypted offsite (raw sends, no key on the replica)', async () => {
    await sh(
      'printf "secretsecret" > /root/lab.key && zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///root/lab.key main/bak-zbm/enc && echo data > /main/bak-zbm/enc/f && zfs snapshot main/bak-zbm/enc@bak-zbm-20260101T000000Z',
    );
    const r = await zbm('zbm-dest', REPLICATE);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(await prop('main/bak-zbm/enc', 'encryption', 'zbm-replica'), 'off');
    assert.equal(await prop('main/bak-zbm/enc', 'keystatus', 'zbm-replica'), 'unavailable');
  });

  it('--prefix limits which snapshots travel', async () => {
    await sh('zfs snapshot main/bak-zbm/vm-100-disk-1@manual-1');
    const r = await zbm('zbm-dest', [...REPLICATE, '--prefix', 'bak-zbm-']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(await tree('main/bak-zbm/vm-100-disk-1', 'zbm-replica')).some((n) => n.includes('manual-1')));
  });
});
