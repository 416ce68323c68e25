/**
 * `zbm prune` on real ZFS in the lab: the original design's command on the backup server, with a
 * replica that lags behind, a foreign snapshot, held snapshots, guest configs beside the data, and
 * an unreachable next tier. Snapshot names carry past timestamps, which is what prune reads.
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { holds, it, reset, sh, suite, tree, vm, zbm } from '../lab/lab.ts';

const DS = 'main/bak-zbm/vm-100-disk-0';
const META = '/root/backups_metadata';
const snap = (h: number) => `bak-zbm-20260101T${String(h).padStart(2, '0')}0000Z`;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Where the replica keeps its copies. The original design has pool `main` on both servers; when
 * the lab's zbm-replica is the same machine as zbm-dest (one VM, three ssh aliases), its pool is
 * `replica` instead. Decided in before() by comparing the pools' guids.
 */
let replicaRoot = 'main/bak-zbm';
const replicaDs = () => `${replicaRoot}/vm-100-disk-0`;

/** The original design's command on the backup server (verbatim with a two-server lab). */
const prune = (extra: readonly string[] = []) => [
  'prune',
  '--local-zfs-root',
  'main/bak-zbm',
  '--prefix',
  'bak-zbm-',
  '--keep-last',
  '2',
  '--keep-hourly',
  '2',
  '--remote',
  'zbm-replica',
  '--remote-zfs-root',
  replicaRoot,
  ...extra,
];
const PRUNE_Y = () => prune(['-y']);

/** The tree under main/bak-zbm on zbm-dest with these hours (and the foreign snapshot). */
function expectedTree(hours: readonly number[]): string[] {
  return ['main/bak-zbm', DS, ...hours.map((h) => `${DS}@${snap(h)}`), `${DS}@manual-1`].sort();
}

const sorted = async (p: Promise<string[]>) => [...(await p)].sort();

async function metadataHours(): Promise<string[]> {
  return (await sh(`ls ${META}/100`)).split('\n').filter(Boolean).sort();
}

const files = (hours: readonly number[]) =>
  hours.flatMap((h) => [`${snap(h)}.conf`, `${snap(h)}.json`]).sort();

suite('prune on real ZFS', 6, () => {
  before(async () => {
    const poolGuid = async (host: 'zbm-dest' | 'zbm-replica') =>
      (await vm('zpool get -H -o value guid main', undefined, host)).stdout.trim();
    if ((await poolGuid('zbm-dest')) === (await poolGuid('zbm-replica'))) {
      // One machine: resetting "both" hosts at once would reset the same pools twice.
      replicaRoot = 'replica/bak-zbm';
      await sh('lab-reset --empty');
    } else {
      await reset({ empty: true });
    }
    // zbm-dest: hourly backups 00-09 of 2026-01-01 with a foreign snapshot between 05 and 06, the
    // guest's configs beside them; zbm-replica got 00-03 and 03 is the pair's held base; an
    // administrator holds 01.
    const snapshots = [
      ...range(0, 5).map((h) => `zfs snapshot ${DS}@${snap(h)}`),
      `zfs snapshot ${DS}@manual-1`,
      ...range(6, 9).map((h) => `zfs snapshot ${DS}@${snap(h)}`),
    ];
    await sh(
      [
        'set -e',
        'zfs create -p main/bak-zbm',
        `zfs set zbm:metadata-dir=${META} main/bak-zbm`,
        `zfs create -s -V 16M ${DS}`,
        ...snapshots,
        `mkdir -p ${META}/100`,
        `cd ${META}/100 && touch ${files(range(0, 9)).join(' ')}`,
        `ssh zbm-replica zfs create -p ${replicaRoot}`,
        `zfs send ${DS}@${snap(0)} | ssh zbm-replica zfs receive -u ${replicaDs()}`,
        `zfs send -I @${snap(0)} ${DS}@${snap(3)} | ssh zbm-replica zfs receive -u ${replicaDs()}`,
        `zfs hold zbm-base:zbm-dest:zbm-replica ${DS}@${snap(3)}`,
        `ssh zbm-replica zfs hold zbm-base:zbm-dest:zbm-replica ${replicaDs()}@${snap(3)}`,
        `zfs hold admin ${DS}@${snap(1)}`,
      ].join('\n'),
    );
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree(range(0, 9)));
  });

  it('without -y: shows every snapshot with its verdict and destroys nothing', async () => {
    const r = await zbm('zbm-dest', prune());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${DS}: keep 8, destroy 2, 1 foreign untouched`));
    // Each line: the snapshot, its local time (the periods' clock), its verdict and why.
    const at = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+';
    assert.match(r.stdout, new RegExp(`${snap(0)}  ${at}  destroy  no rule keeps it`));
    assert.match(r.stdout, new RegExp(`${snap(1)}  ${at}  keep     held by admin`));
    assert.match(r.stdout, new RegExp(`${snap(4)}  ${at}  keep     not yet on zbm-replica`));
    assert.match(r.stderr, /run with -y/);
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree(range(0, 9)));

    const j = await zbm('zbm-dest', prune(['--json']));
    assert.equal(j.code, 0, j.stderr);
    const plan = JSON.parse(j.stdout) as { mode: string; datasets: { dataset: string; destroy: string[] }[] };
    assert.equal(plan.mode, 'dry-run');
    assert.deepEqual(plan.datasets.find((d) => d.dataset === DS)?.destroy, [snap(0), snap(2)]);
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree(range(0, 9)));
  });

  it('the original command: rules prune, the common base, the unreplicated, the held and foreign stay', async () => {
    const r = await zbm('zbm-dest', PRUNE_Y());
    assert.equal(r.code, 0, r.stderr);
    // keep-last: 09, 08; keep-hourly: 07, 06; 03 is the newest common (and held); 04, 05 are not
    // on the replica yet; 01 is held; manual-1 is not zbm's. Only 00 and 02 go.
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree([1, 3, 4, 5, 6, 7, 8, 9]));
    assert.match(r.stdout, new RegExp(`${DS}: destroyed 2: ${snap(0)}, ${snap(2)}; kept 8`));
    assert.match(r.stdout, new RegExp(`kept ${snap(1)}: held by admin`));
    assert.match(
      r.stdout,
      new RegExp(`kept ${snap(3)}: newest common with zbm-replica; held by zbm-base:zbm-dest:zbm-replica`),
    );
    // The replica is only read; the holds are untouched.
    assert.deepEqual(await sorted(tree(replicaRoot, 'zbm-replica')), [
      replicaRoot,
      replicaDs(),
      ...range(0, 3).map((h) => `${replicaDs()}@${snap(h)}`),
    ]);
    assert.deepEqual(await holds('main/bak-zbm'), [
      `${DS}@${snap(1)}\tadmin`,
      `${DS}@${snap(3)}\tzbm-base:zbm-dest:zbm-replica`,
    ]);
    // The configs and manifests of 00 and 02 went with their snapshots.
    assert.deepEqual(await metadataHours(), files([1, 3, 4, 5, 6, 7, 8, 9]));
  });

  it('is idempotent: the second run destroys nothing', async () => {
    const r = await zbm('zbm-dest', PRUNE_Y());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${DS}: destroyed nothing; kept 8`));
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree([1, 3, 4, 5, 6, 7, 8, 9]));
  });

  it('next tier unreachable: keeps everything from its last held base on, prunes the rest, exits 1', async () => {
    await sh(
      [
        'set -e',
        ...range(10, 13).map((h) => `zfs snapshot ${DS}@${snap(h)}`),
        `zfs hold zbm-base:zbm-dest:nosuchhost.invalid ${DS}@${snap(7)}`,
      ].join('\n'),
    );
    const args = [
      'prune',
      '--local-zfs-root',
      'main/bak-zbm',
      '--prefix',
      'bak-zbm-',
      '--keep-last',
      '1',
      '--remote',
      'nosuchhost.invalid',
      '--remote-zfs-root',
      replicaRoot,
      '-y',
    ];
    const r = await zbm('zbm-dest', args);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nosuchhost\.invalid is unreachable/);
    // keep-last keeps 13; 07 (the last base held for nosuchhost.invalid) and newer stay; 01 and
    // 03 are held. 04, 05, 06 go.
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree([1, 3, 7, 8, 9, 10, 11, 12, 13]));
    assert.deepEqual(await metadataHours(), files([1, 3, 7, 8, 9]));

    // A remote with no base held for it at all: nothing is destroyed.
    const none = await zbm(
      'zbm-dest',
      args.map((a) => (a === 'nosuchhost.invalid' ? 'other.invalid' : a)),
    );
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /other\.invalid is unreachable/);
    assert.deepEqual(await sorted(tree('main/bak-zbm')), expectedTree([1, 3, 7, 8, 9, 10, 11, 12, 13]));
  });

  it('the chain with the replica survived: the next send from the common base is incremental', async () => {
    await sh(
      shellJoin(['zfs', 'send', '-I', `@${snap(3)}`, `${DS}@${snap(13)}`]) +
        ` | ssh zbm-replica ${shellJoin(['zfs', 'receive', '-u', replicaDs()])}`,
    );
    const replica = await tree(replicaDs(), 'zbm-replica');
    assert.ok(replica.includes(`${replicaDs()}@${snap(13)}`), replica.join('\n'));
  });
});
