/**
 * Races and broken pipes on real ZFS (peers.md F1, F6, F14, F15): two runs on one guest, a prune
 * while replicate sends, ssh killed mid-stream, the backup server away, an encrypted guest.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE, PRUNE_DEST, PRUNE_DEST_KEEP_ONE, REPLICATE } from '../lab/commands.ts';
import {
  clearFaults,
  closeGate,
  gateReached,
  it,
  on,
  openGate,
  prop,
  receivesDone,
  reset,
  sh,
  snapsOf,
  streamed,
  suite,
  vm,
  writeZvol,
  zbm,
} from '../lab/lab.ts';

const BACKUP = [...BACKUP_PVE, '--vmid', '102'];
const DS = 'vm-102-disk-0';

/** Starts zbm in the background on the main VM; its exit code lands in /tmp/<name>.rc. */
const background = (name: string, args: readonly string[]) =>
  sh(
    `rm -f /tmp/${name}.rc; (${shellJoin(['zbm', ...args])} >/tmp/${name}.out 2>/tmp/${name}.err; echo $? > /tmp/${name}.rc) >/dev/null 2>&1 &`,
  );
const waitFor = (name: string) =>
  sh(
    `for i in $(seq 1800); do [ -s /tmp/${name}.rc ] && cat /tmp/${name}.rc && exit 0; sleep 0.2; done; exit 1`,
  );
/** Whether the background run `name` is still going. */
const running = async (name: string) => (await vm(`test -e /tmp/${name}.rc`)).code === 1;

suite('races, broken pipes, an absent server, encryption (real ZFS)', 15, () => {
  before(async () => {
    await reset();
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
  });
  after(() => Promise.all([clearFaults('zbm-dest'), clearFaults('zbm-replica')]));

  it('a second backup of a guest being backed up waits, then skips naming the holder; the first completes', async () => {
    await writeZvol(`rpool/data/${DS}`, 1);
    // The first run's receive is held at its start, so it is under way for as long as needed.
    await closeGate('receive');
    try {
      await background('first', BACKUP);
      await gateReached('receive');
      const second = await zbm('pve1', [...BACKUP, '--lock-wait', '2']);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /guest 102: waiting up to 2 s for zbm pid \d+ \(backup-pve of guest 102/);
      assert.match(second.stderr, /guest 102: skipped: zbm pid \d+ \(backup-pve/);
      assert.ok(await running('first'));
    } finally {
      await openGate('receive');
    }
    assert.equal((await waitFor('first')).trim(), '0', await sh('cat /tmp/first.err'));
    assert.equal((await snapsOf(`main/bak-zbm/${DS}`)).length, 2);
  });

  it("a prune on the backup server skips a dataset a node's backup is receiving into, naming it (a lock across hosts)", async () => {
    const dest = `main/bak-zbm/${DS}`;
    const before = await snapsOf(dest);
    assert.ok(before.length >= 2, 'an older backup that a prune keeping one would destroy');
    await writeZvol(`rpool/data/${DS}`, 1, 2);
    await closeGate('receive');
    const prune = PRUNE_DEST_KEEP_ONE;
    try {
      await background('node', BACKUP);
      await gateReached('receive');
      const during = await zbm('zbm-dest', [...prune, '--lock-wait', '2']);
      assert.equal(during.code, 1, during.stderr);
      assert.match(
        during.stderr,
        new RegExp(`${dest}: skipped: zbm pid \\d+ \\(backup-pve into ${dest} \\(zbm pid \\d+ on pve1\\)`),
      );
      assert.deepEqual(await snapsOf(dest), before, 'nothing destroyed during the receive');
    } finally {
      await openGate('receive');
    }
    assert.equal((await waitFor('node')).trim(), '0', await sh('cat /tmp/node.err'));
    const afterBackup = await snapsOf(dest);
    assert.deepEqual(afterBackup.slice(0, before.length), before, 'nothing destroyed during the receive');
    const later = await zbm('zbm-dest', prune);
    assert.equal(later.code, 0, later.stderr);
    assert.deepEqual(await snapsOf(dest), afterBackup.slice(-1), 'the next prune does its work');
  });

  it('during a replicate of a dataset, a backup into it goes on, a prune waits; the chain stays whole', async () => {
    // Two replicated backups, so that the older one is the prune's to destroy (the newer one is
    // the base in common with the replica).
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    const [oldest] = await snapsOf(`main/bak-zbm/${DS}`);
    await writeZvol(`rpool/data/${DS}`, 1, 4);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    assert.equal((await zbm('zbm-dest', REPLICATE)).code, 0);
    await writeZvol(`rpool/data/${DS}`, 1, 5);
    assert.equal((await zbm('pve1', BACKUP)).code, 0);
    // The replica's receive is held at its start: replicate sends from main/bak-zbm/vm-102-disk-0
    // for as long as this test needs.
    await closeGate('receive', 'zbm-replica');
    try {
      await background('repl', REPLICATE);
      await gateReached('receive', 'zbm-replica');
      // A node's backup into the dataset replicate sends from does not wait for it (different locks).
      const backup = await zbm('pve1', [...BACKUP, '--lock-wait', '1']);
      assert.equal(backup.code, 0, backup.stderr);
      assert.ok(await running('repl'), 'replicate was still sending meanwhile');
      await background('prune', [...PRUNE_DEST, '--lock-wait', '300']);
      await sh(
        `for i in $(seq 1200); do grep -q 'waiting up to' /tmp/prune.err && exit 0; [ -e /tmp/prune.rc ] && break; sleep 0.1; done; cat /tmp/prune.err >&2; exit 1`,
      );
      assert.match(
        await sh('cat /tmp/prune.err'),
        new RegExp(
          `main/bak-zbm/${DS}: waiting up to 300 s for zbm pid \\d+ \\(replicate main/bak-zbm/${DS}, since`,
        ),
      );
      assert.ok(await running('prune'), 'prune waits for the replicate');
      assert.ok((await snapsOf(`main/bak-zbm/${DS}`)).includes(oldest ?? '-'), 'nothing destroyed meanwhile');
    } finally {
      await openGate('receive', 'zbm-replica');
    }
    assert.equal((await waitFor('repl')).trim(), '0', await sh('cat /tmp/repl.err'));
    assert.equal((await waitFor('prune')).trim(), '0', await sh('cat /tmp/prune.err'));
    assert.ok(!(await snapsOf(`main/bak-zbm/${DS}`)).includes(oldest ?? '-'), 'then the prune did its work');
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
    // 512 KiB/s: the cut lands after 1 MiB of 6, with seconds to spare on a loaded machine.
    await background('cut', [...BACKUP, '--bwlimit', '512K']);
    await sh(
      `for i in $(seq 1200); do ${streamed(`main/bak-zbm/${DS}`)} && break; sleep 0.1; done; pkill -KILL -f "[s]sh .*zbm-dest.*zfs receive"`,
    );
    assert.equal((await waitFor('cut')).trim(), '1');
    const err = await sh('cat /tmp/cut.err');
    assert.match(err, /zbm-dest/);
    assert.match(err, /vm-102-disk-0/);
    await receivesDone('zbm-dest');
    assert.equal((await vm('pgrep -f "[z]fs send"')).code, 1, 'no zfs send left behind');
    assert.match(
      (await sh(`zfs get -H -o value receive_resume_token main/bak-zbm/${DS}`)).trim(),
      /^1-/,
      'the cut left a partial receive (else the kill came after the stream had passed)',
    );
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
      // No retries of the refused connection (14-35 s): host-layer.test.ts covers those.
      const r = await on('pve1', ['env', 'ZBM_SSH_RETRIES=0', 'zbm', ...BACKUP]);
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
