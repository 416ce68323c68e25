/**
 * Races and broken pipes on real ZFS (peers.md F1, F6, F14, F15): two runs on one guest, a prune
 * while replicate sends, ssh killed mid-stream, the backup server away, an encrypted guest.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE } from '../lab/commands.ts';
import {
  type LabHost,
  labAvailable,
  prop,
  receivesDone,
  reset,
  sh,
  tree,
  vm,
  writeZvol,
  zbm,
} from '../lab/lab.ts';

const BACKUP = [...BACKUP_PVE, '--vmid', '102'];
const DS = 'vm-102-disk-0';
const snapsOf = async (ds: string, host: LabHost = 'zbm-dest') =>
  (await tree(ds, host)).filter((n) => n.includes('@'));

/** Starts zbm in the background on the main VM; its exit code lands in /tmp/<name>.rc. */
const background = (name: string, args: readonly string[]) =>
  sh(
    `rm -f /tmp/${name}.rc; (${shellJoin(['zbm', ...args])} >/tmp/${name}.out 2>/tmp/${name}.err; echo $? > /tmp/${name}.rc) >/dev/null 2>&1 &`,
  );
const waitFor = (name: string) =>
  sh(
    `for i in $(seq 1800); do [ -s /tmp/${name}.rc ] && cat /tmp/${name}.rc && exit 0; sleep 0.2; done; exit 1`,
  );
/** Waits until a receive into dataset runs on host. */
const receiving = (dataset: string, host: LabHost = 'zbm-dest') =>
  sh(
    `for i in $(seq 600); do pgrep -f "[z]fs receive.* ${dataset}$" >/dev/null && exit 0; sleep 0.1; done; exit 1`,
    host,
  );

describe('races, broken pipes, an absent server, encryption (real ZFS)', { skip: !labAvailable() }, () => {
  before(async () => {
    await reset();
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
  });

  it('a second backup of a guest being backed up waits, then skips naming the holder; the first completes', async () => {
    // Long enough (about 30 s) for the second run to start up and reach the guest while it runs.
    await writeZvol(`rpool/data/${DS}`, 16);
    await background('first', [...BACKUP, '--bwlimit', '512K']);
    await receiving(`main/bak-zbm/${DS}`);
    const second = await zbm('pve1', [...BACKUP, '--lock-wait', '2']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /guest 102: skipped: zbm pid \d+ \(backup-pve/);
    assert.equal((await waitFor('first')).trim(), '0', await sh('cat /tmp/first.err'));
    assert.equal((await snapsOf(`main/bak-zbm/${DS}`)).length, 2);
  });

  it("a prune on the backup server skips a dataset a node's backup is receiving into, naming it (a lock across hosts)", async () => {
    const dest = `main/bak-zbm/${DS}`;
    const before = await snapsOf(dest);
    assert.ok(before.length >= 2, 'an older backup that a prune keeping one would destroy');
    await writeZvol(`rpool/data/${DS}`, 8, 2);
    await background('node', [...BACKUP, '--bwlimit', '512K']);
    await receiving(dest);
    const prune = [
      'prune',
      '--local-zfs-root',
      'main/bak-zbm',
      '--prefix',
      'bak-zbm-',
      '--keep-last',
      '1',
      '-y',
    ];
    const during = await zbm('zbm-dest', [...prune, '--lock-wait', '2']);
    assert.equal(during.code, 1, during.stderr);
    assert.match(
      during.stderr,
      new RegExp(`${dest}: skipped: zbm pid \\d+ \\(backup-pve into ${dest} \\(zbm pid \\d+ on pve1\\)`),
    );
    assert.equal((await waitFor('node')).trim(), '0', await sh('cat /tmp/node.err'));
    const afterBackup = await snapsOf(dest);
    assert.deepEqual(afterBackup.slice(0, before.length), before, 'nothing destroyed during the receive');
    const later = await zbm('zbm-dest', prune);
    assert.equal(later.code, 0, later.stderr);
    assert.deepEqual(await snapsOf(dest), afterBackup.slice(-1), 'the next prune does its work');
  });

  it('during a replicate of a dataset, a backup into it goes on, a prune waits; the chain stays whole', async () => {
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    await writeZvol(`rpool/data/${DS}`, 4, 4);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    await background('repl', [...REPLICATE, '--bwlimit', '64K']);
    await receiving(`main/bak-zbm/${DS}`, 'zbm-replica');
    // A node's backup into the dataset replicate sends from does not wait for it (different locks).
    const backup = await zbm('pve1', [...BACKUP, '--lock-wait', '1']);
    assert.equal(backup.code, 0, backup.stderr);
    assert.equal((await vm('test -s /tmp/repl.rc')).code, 1, 'replicate was still sending meanwhile');
    const pruned = await zbm('zbm-dest', [...PRUNE_DEST, '--lock-wait', '300']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.equal((await waitFor('repl')).trim(), '0', await sh('cat /tmp/repl.err'));
    // The backup made during the replicate goes with the next one, incrementally.
    const next = await zbm('zbm-dest', [...REPLICATE, '--json']);
    assert.equal(next.code, 0, next.stderr);
    assert.match(next.stdout, /"mode": "incremental"/);
    const [dest, replica] = await Promise.all([
      snapsOf(`main/bak-zbm/${DS}`),
      snapsOf(`main/bak-zbm/${DS}`, 'zbm-replica'),
    ]);
    assert.equal(dest.at(-1), replica.at(-1), 'both tiers end on the same newest backup');
  });

  it('ssh killed mid-stream: an error naming the host and the disk, no process left, the next run resumes', async () => {
    await writeZvol(`rpool/data/${DS}`, 6, 8);
    await background('cut', [...BACKUP, '--bwlimit', '1M']);
    await receiving(`main/bak-zbm/${DS}`);
    await sh('sleep 2; pkill -f "[s]sh .*zbm-dest.*zfs receive"');
    assert.equal((await waitFor('cut')).trim(), '1');
    const err = await sh('cat /tmp/cut.err');
    assert.match(err, /zbm-dest/);
    assert.match(err, /vm-102-disk-0/);
    await receivesDone('zbm-dest');
    assert.equal((await vm('pgrep -f "[z]fs send"')).code, 1, 'no zfs send left behind');
    const r = await zbm('pve1', [...BACKUP, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"resumed": "resumed"/);
  });

  it('the backup server away: the node keeps its snapshots and says so (exit 1)', async () => {
    const before = await snapsOf(`rpool/data/${DS}`, 'pve1');
    await sh(
      "{ printf 'Host zbm-dest\\n    HostName 127.0.0.1\\n    Port 9\\n\\n'; cat /root/.ssh/config; } > /root/.ssh/c && mv /root/.ssh/c /root/.ssh/config",
    );
    try {
      const r = await zbm('pve1', BACKUP);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /zbm-dest/);
    } finally {
      await sh('sed -i 1,4d /root/.ssh/config');
    }
    assert.deepEqual(await snapsOf(`rpool/data/${DS}`, 'pve1'), before);
  });

  it('an encrypted guest disk stays encrypted on the backup server and the replica (raw sends, no key there)', async () => {
    await sh(`set -e
      printf 'lab-secret-key!!' > /root/vm107.key
      zfs create -V 16M -o encryption=on -o keyformat=passphrase -o keylocation=file:///root/vm107.key rpool/data/vm-107-disk-0
      printf 'cores: 1\\nname: secret\\nscsi0: local-zfs:vm-107-disk-0,size=16M\\n' > /etc/pve/nodes/pve1/qemu-server/107.conf
      node -e 'const f="/etc/pve/.vmlist";const j=JSON.parse(require("fs").readFileSync(f,"utf8"));j.ids["107"]={node:"pve1",type:"qemu",version:1};require("fs").writeFileSync(f,JSON.stringify(j))'`);
    await writeZvol('rpool/data/vm-107-disk-0', 2);
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '107']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    for (const host of ['zbm-dest', 'zbm-replica'] as const) {
      assert.notEqual(await prop('main/bak-zbm/vm-107-disk-0', 'encryption', host), 'off', host);
      assert.equal(await prop('main/bak-zbm/vm-107-disk-0', 'keystatus', host), 'unavailable', host);
    }
  });
});
