import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BACKUP_PVE } from '../lab/commands.ts';
import { labAvailable, qmLog, reset, sh, tree, zbm } from '../lab/lab.ts';

/**
 * A snapshot that fails while the guest is frozen: the thaw must still come. The failure is
 * injected by a zfs wrapper that refuses `zfs snapshot` while /etc/lab/fail-snapshot exists.
 */
const WRAPPER = `#!/bin/sh
if [ "$1" = snapshot ] && [ -e /etc/lab/fail-snapshot ]; then
  echo "cannot create snapshots : injected failure" >&2
  exit 1
fi
exec /usr/local/sbin/zfs.lab "$@"
`;

describe('freeze and thaw around a failing snapshot', { skip: !labAvailable() }, () => {
  before(async () => {
    await reset();
    await sh(
      'mv /usr/local/sbin/zfs /usr/local/sbin/zfs.lab && cat > /usr/local/sbin/zfs && chmod 755 /usr/local/sbin/zfs',
      'zbm-dest',
      WRAPPER,
    );
    await sh('touch /etc/lab/fail-snapshot');
  });
  after(async () => {
    await sh('rm -f /etc/lab/fail-snapshot; mv /usr/local/sbin/zfs.lab /usr/local/sbin/zfs');
  });

  it('thaws the guest when the snapshot fails, and reports the guest as failed', async () => {
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
  });
});
