import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKUP_PVE } from '../lab/commands.ts';
import { labAvailable, on, qmLog, reset, sh, tree, unwrapZfs, vm, wrapZfs, zbm } from '../lab/lab.ts';

/**
 * A snapshot that fails while the guest is frozen: the thaw must still come. The failure is
 * injected by a zfs wrapper that refuses `zfs snapshot` while /etc/lab/fail-snapshot exists.
 */
const WRAPPER = `#!/bin/sh
if [ "$1" = snapshot ] && [ -e /etc/lab/slow-snapshot ]; then
  sleep 8
fi
if [ "$1" = snapshot ] && [ -e /etc/lab/fail-snapshot ]; then
  echo "cannot create snapshots : injected failure" >&2
  exit 1
fi
exec /usr/local/sbin/zfs.lab "$@"
`;

describe('freeze and thaw around a failing snapshot', { skip: !labAvailable() }, () => {
  before(async () => {
    await reset();
    await wrapZfs(WRAPPER);
  });
  after(async () => {
    await sh('rm -f /etc/lab/fail-snapshot /etc/lab/slow-snapshot');
    await unwrapZfs();
  });

  it('thaws the guest when the snapshot fails, and reports the guest as failed', async () => {
    await sh('touch /etc/lab/fail-snapshot');
    const r = await zbm('pve1', [...BACKUP_PVE, '--vmid', '100', '--json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /injected failure/);
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100').map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, ['ping', 'fsfreeze-freeze', 'fsfreeze-thaw']);
    assert.equal((await sh('qm guest cmd 100 fsfreeze-status')).trim().replaceAll('"', ''), 'thawed');
    assert.deepEqual(
      (await tree('main/bak-zbm')).filter((n) => n.includes('@')),
      [],
    );
    await sh('rm -f /etc/lab/fail-snapshot /var/log/lab/qm.log');
  });

  it('SIGTERM while the guest is frozen: the snapshot is stopped, the thaw still comes, exit 130', async () => {
    await sh('touch /etc/lab/slow-snapshot');
    const script = `zbm "$@" & pid=$!
for i in $(seq 600); do [ -e /run/lab/frozen/100 ] && break; sleep 0.1; done
sleep 1; kill -TERM $pid; wait $pid`;
    const r = await on('pve1', ['sh', '-c', script, 'zbm-kill', ...BACKUP_PVE, '--vmid', '100']);
    await sh('rm -f /etc/lab/slow-snapshot');
    assert.equal(r.code, 130, r.stderr);
    const calls = (await qmLog()).filter((l) => l.split(' ')[1] === '100').map((l) => l.split(' ')[2]);
    assert.deepEqual(calls, ['ping', 'fsfreeze-freeze', 'fsfreeze-thaw']);
    assert.equal((await sh('qm guest cmd 100 fsfreeze-status')).trim().replaceAll('"', ''), 'thawed');
    assert.equal((await vm('pgrep -f "[z]fs snapshot"')).code, 1, 'no zfs snapshot left running');
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
