import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { BACKUP_PVE } from '../lab/commands.ts';
import {
  clearFaults,
  closeGate,
  it,
  on,
  openGate,
  qmLog,
  reset,
  sh,
  suite,
  tree,
  vm,
  zbm,
} from '../lab/lab.ts';

/**
 * A snapshot that fails or is interrupted while the guest is frozen: the thaw must still come.
 * Both faults are injected through the lab's zfs wrapper (lab/guest/usr/local/sbin/zfs).
 */
suite('freeze and thaw around a failing snapshot', 6, () => {
  before(() => reset());
  after(() => clearFaults());

  it('thaws the guest when the snapshot fails, and reports the guest as failed', async () => {
    await sh('touch /etc/lab/zfs-fail-snapshot');
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /injected failure/);
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100').map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, ['ping', 'fsfreeze-freeze', 'fsfreeze-thaw']);
    assert.equal((await sh('qm guest cmd 100 fsfreeze-status')).trim().replaceAll('"', ''), 'thawed');
    // The backup server's root was made before the snapshot; nothing else exists on either side.
    assert.deepEqual(await tree('main/bak-zbm'), ['main/bak-zbm']);
    assert.deepEqual(
      (await tree('rpool/data')).filter((n) => n.includes('@bak-zbm-')),
      [],
    );
    await sh('rm -f /etc/lab/zfs-fail-snapshot /var/log/lab/qm.log');
  });

  it('SIGTERM while the guest is frozen: the snapshot is stopped, the thaw still comes, exit 130', async () => {
    await closeGate('snapshot');
    // Stopped while the guest is frozen and its snapshot is under way (held at the gate).
    const script = `zbm "$@" & pid=$!
for i in $(seq 600); do [ -e /run/lab/frozen/100 ] && [ -e /run/lab/gated-snapshot ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid`;
    const r = await on('pve1', ['sh', '-c', script, 'zbm-kill', ...BACKUP_PVE, '--vmid', '100']);
    try {
      assert.equal(r.code, 130, r.stderr);
      // Checked while the gate is still closed: a zfs snapshot that outlived zbm would be waiting there.
      assert.equal((await vm('pgrep -f "[z]fs snapshot"')).code, 1, 'no zfs snapshot left running');
    } finally {
      await openGate('snapshot');
    }
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100').map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, ['ping', 'fsfreeze-freeze', 'fsfreeze-thaw']);
    assert.equal((await sh('qm guest cmd 100 fsfreeze-status')).trim().replaceAll('"', ''), 'thawed');
    assert.deepEqual(
      (await tree('rpool/data')).filter((n) => n.includes('@bak-zbm-')),
      [],
      'the stopped snapshot was never taken',
    );
    await sh('rm -f /var/log/lab/qm.log');
  });

  it('a guest left frozen by a killed run is thawed, then frozen and backed up normally', async () => {
    await sh('qm guest cmd 100 fsfreeze-freeze && rm -f /var/log/lab/qm.log');
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /guest 100: was still frozen .*thawing it first/);
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100').map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, [
      'ping',
      'fsfreeze-freeze',
      'fsfreeze-status',
      'fsfreeze-thaw',
      'fsfreeze-freeze',
      'fsfreeze-thaw',
    ]);
    assert.equal((await sh('qm guest cmd 100 fsfreeze-status')).trim().replaceAll('"', ''), 'thawed');
    assert.ok((await tree('main/bak-zbm/vm-100-disk-0')).some((n) => n.includes('@bak-zbm-')));
  });
});
