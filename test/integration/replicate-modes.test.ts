import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE, REPLICATE } from '../lab/commands.ts';
import { holds, it, type LabHost, prop, reset, sh, suite, tree, writeZvol, zbm } from '../lab/lab.ts';

/** Two small guests keep this file quick: VM 102 (one zvol) and CT 104 (one file system). */
const BACKUP = [...BACKUP_PVE, '--vmid', '102,104'];
const PULL = [
  'replicate',
  '--pull',
  '--remote',
  'zbm-dest',
  '--remote-zfs-root',
  'main/bak-zbm',
  '--local-zfs-root',
  'main/pulled',
];

/** `relative-name guid` of every snapshot under root: what must be equal on two mirrors. */
async function snapshotGuids(root: string, host: LabHost): Promise<string[]> {
  const out = await sh(`zfs list -H -p -t snapshot -o name,guid -s name -r ${root}`, host);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(root.length));
}

suite('replicate: pull mode, several replicas, deleted guests, metadata placement (real ZFS)', 10, () => {
  before(async () => {
    await reset();
    await sh('rm -rf /root/pulled_metadata', 'zbm-replica');
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    await writeZvol('rpool/data/vm-102-disk-0', 1);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
  });

  it('pull from the replica gives the same copies, configs and holds as push, and stays incremental', async () => {
    const push = await zbm('zbm-dest', REPLICATE);
    assert.equal(push.code, 0, push.stderr);
    const pull = await zbm('zbm-replica', [...PULL, '--local-metadata-dir', '/root/pulled_metadata']);
    assert.equal(pull.code, 0, pull.stderr);

    const dest = await snapshotGuids('main/bak-zbm', 'zbm-dest');
    assert.ok(dest.length >= 4, dest.join('\n'));
    assert.deepEqual(await snapshotGuids('main/bak-zbm', 'zbm-replica'), dest);
    assert.deepEqual(await snapshotGuids('main/pulled', 'zbm-replica'), dest);
    const files = (dir: string, host: LabHost) => sh(`cd ${dir} && find . -type f | sort`, host);
    const destFiles = await files('/root/backups_metadata', 'zbm-dest');
    assert.match(destFiles, /\.\/102\/bak-zbm-\d+T\d+Z\.conf/);
    assert.equal(await files('/root/pulled_metadata', 'zbm-replica'), destFiles);
    assert.equal(await prop('main/pulled', 'zbm:metadata-dir', 'zbm-replica'), '/root/pulled_metadata');

    // Each direction holds its own base: the replica's hostname is zbm-replica, the main VM's pve1.
    const newest = (await tree('main/bak-zbm/vm-102-disk-0', 'zbm-dest'))
      .filter((n) => n.includes('@'))
      .at(-1);
    assert.deepEqual(
      (await holds('main/bak-zbm/vm-102-disk-0', 'zbm-dest')).map((h) => h.split('\t')[1]).sort(),
      ['zbm-base:pve1:zbm-replica', 'zbm-base:pve:zbm-dest', 'zbm-base:zbm-dest:zbm-replica'],
    );
    assert.deepEqual(await holds('main/pulled/vm-102-disk-0', 'zbm-replica'), [
      `main/pulled/vm-102-disk-0@${newest?.split('@')[1]}\tzbm-base:zbm-dest:zbm-replica`,
    ]);

    await writeZvol('rpool/data/vm-102-disk-0', 1, 2);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    const again = await zbm('zbm-replica', [...PULL, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as {
      datasets: { source: string; mode: string; sent: string[]; bytes: number }[];
    };
    const vm102 = result.datasets.find((d) => d.source === 'main/bak-zbm/vm-102-disk-0');
    assert.equal(vm102?.mode, 'incremental');
    assert.equal(vm102?.sent.length, 1);
    assert.ok((vm102?.bytes ?? 0) < 1.5 * 1024 * 1024, `moved ${vm102?.bytes}`);
    // Pulled straight from ssh into zfs receive, its size all the same exact: the sender counted it.
    const [prev, last] = (await tree('main/pulled/vm-102-disk-0', 'zbm-replica'))
      .filter((n) => n.includes('@'))
      .slice(-2)
      .map((n) => n.slice(n.indexOf('@')));
    const sent = `zfs send -L -e -c -i ${prev} main/bak-zbm/vm-102-disk-0${last} | wc -c`;
    assert.equal(vm102?.bytes, Number(await sh(sent)));
  });

  it("two replicas keep independent bases: one replica's run never releases the other's", async () => {
    // The second replica: pool `replica` of the main VM, reached as pve1.
    const second = [
      'replicate',
      '--remote',
      'pve1',
      '--remote-zfs-root',
      'replica/bak-zbm',
      '--local-zfs-root',
      'main/bak-zbm',
    ];
    assert.equal((await zbm('zbm-dest', second)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    const baseForSecond = (await tree('replica/bak-zbm/vm-102-disk-0')).filter((n) => n.includes('@')).at(-1);

    await writeZvol('rpool/data/vm-102-disk-0', 1, 4);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);

    const tags = await holds('main/bak-zbm/vm-102-disk-0', 'zbm-dest');
    const heldFor = (tag: string) =>
      tags.filter((h) => h.endsWith(`\t${tag}`)).map((h) => h.split('@')[1]?.split('\t')[0]);
    assert.deepEqual(heldFor('zbm-base:pve1:pve1'), [baseForSecond?.split('@')[1]]);
    const newest = (await tree('main/bak-zbm/vm-102-disk-0', 'zbm-dest'))
      .filter((n) => n.includes('@'))
      .at(-1);
    assert.deepEqual(heldFor('zbm-base:pve1:zbm-replica'), [newest?.split('@')[1]]);

    // Pruning the backup server hard for the first replica keeps the second replica's base, so the
    // second replica's next run is still incremental.
    const pruned = await zbm('zbm-dest', [
      'prune',
      '--local-zfs-root',
      'main/bak-zbm',
      '--keep-last',
      '1',
      '--remote',
      'zbm-replica',
      '--remote-zfs-root',
      'main/bak-zbm',
      '-y',
    ]);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.ok(
      (await tree('main/bak-zbm/vm-102-disk-0')).includes(baseForSecond?.replace('replica/', 'main/') ?? '-'),
    );
    const next = await zbm('zbm-dest', [...second, '--json']);
    assert.equal(next.code, 0, next.stderr);
    const d = (JSON.parse(next.stdout) as { datasets: { source: string; mode: string }[] }).datasets.find(
      (x) => x.source === 'main/bak-zbm/vm-102-disk-0',
    );
    assert.equal(d?.mode, 'incremental');
  });

  it('keeps and reports the copies of a guest deleted at the source, and --dry-run changes nothing', async () => {
    // The admin deletes the guest's backups on the backup server: holds released, then destroyed.
    await sh(
      'd=main/bak-zbm/subvol-104-disk-0; for s in $(zfs list -H -t snapshot -o name -r $d); do zfs holds -H $s | cut -f2 | while read -r t; do zfs release "$t" $s; done; done; zfs destroy -r $d',
    );
    const before = await tree('main/bak-zbm', 'zbm-replica');
    const dry = await zbm('zbm-dest', [...REPLICATE, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /main\/bak-zbm\/subvol-104-disk-0: kept/);
    assert.deepEqual(await tree('main/bak-zbm', 'zbm-replica'), before);

    const r = await zbm('zbm-dest', [...REPLICATE, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { kept: string[] }).kept, ['main/bak-zbm/subvol-104-disk-0']);
    assert.match(
      r.stderr,
      /zbm-replica:main\/bak-zbm\/subvol-104-disk-0: no longer on .*kept, never destroyed/,
    );
    assert.ok((await tree('main/bak-zbm', 'zbm-replica')).includes('main/bak-zbm/subvol-104-disk-0'));
  });
});
