/**
 * Operations on real ZFS and real systemd (the lab VM boots with systemd): a config file with
 * named jobs, `zbm run` against the same command typed with flags, and the timers
 * `zbm install-timers` makes, triggered the way systemd triggers them.
 */
import assert from 'node:assert/strict';
import { before } from 'node:test';
import { BACKUP_PVE } from '../lab/commands.ts';
import { it, reset, sh, suite, vm, zbm } from '../lab/lab.ts';

const CONFIG = `# zbm jobs of the lab's node pve1
defaults:
  prefix: bak-zbm-
jobs:
  backup:
    command: backup-pve
    schedule: hourly
    remote: zbm-dest
    local-zfs-root: rpool/data
    remote-zfs-root: main/bak-zbm
    remote-metadata-dir: /root/backups_metadata
    yes: true
    vmid: 102
  check:
    command: verify
    schedule: "*-*-* 06:00"
    local-zfs-root: main/bak-zbm
    max-age-days: 1
    min-snapshots: 1
`;

const destSnapshots = async () =>
  (await sh('zfs list -H -t snapshot -o name -r main/bak-zbm/vm-102-disk-0'))
    .trim()
    .split('\n')
    .filter(Boolean);

suite('config file, zbm run and systemd timers (real ZFS, real systemd)', 6, () => {
  before(async () => {
    await reset();
    await sh('mkdir -p /etc/zbm && cat > /etc/zbm/zbm.yaml', 'pve1', CONFIG);
  });

  it('config check shows each job as its command line; a bad file names the line and key, exit 2', async () => {
    const ok = await zbm('pve1', ['config', 'check']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^backup \(hourly\): zbm backup-pve --remote zbm-dest --prefix bak-zbm- /m);
    await sh(
      'cat > /tmp/bad.yaml',
      'pve1',
      'jobs:\n  backup:\n    command: backup-pve\n    remote: "$(reboot)"\n',
    );
    const bad = await zbm('pve1', ['config', 'check', '--config', '/tmp/bad.yaml']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /\/tmp\/bad.yaml:4: jobs.backup.remote: invalid remote/);
    assert.match(bad.stderr, /\/tmp\/bad.yaml:2: jobs.backup: missing local-zfs-root/);
  });

  it('zbm run <job> does what the typed command does; flags after the job override the file', async () => {
    const typed = await zbm('pve1', [...BACKUP_PVE, '--vmid', '102', '--dry-run']);
    const fromFile = await zbm('pve1', ['run', 'backup', '--dry-run']);
    assert.equal(typed.code, 0, typed.stderr);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout, typed.stdout);
    assert.match(fromFile.stdout, /vm-102-disk-0/);

    const r = await zbm('pve1', ['run', 'backup', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await destSnapshots()).length, 1);
    const unknown = await zbm('pve1', ['run', 'nightly']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /has no job "nightly" \(jobs: backup, check\)/);
  });

  it('install-timers: enabled timers, a triggered run succeeds in the journal, overlapping triggers run once', async () => {
    const r = await zbm('pve1', ['install-timers']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      (await sh('systemctl is-enabled zbm-backup.timer zbm-check.timer', 'pve1')).trim(),
      'enabled\nenabled',
    );
    assert.match(
      await sh('systemctl list-timers --all zbm-backup.timer', 'pve1'),
      /zbm-backup\.timer\s+zbm-backup\.service/,
    );
    assert.match(await sh('systemctl cat zbm-backup.service', 'pve1'), /IOSchedulingClass=idle/);

    // What the timer does when it elapses: start the service (twice, the second while the first runs).
    const before = (await destSnapshots()).length;
    await sh(
      `sleep 1; systemctl start --no-block zbm-backup.service
      until [ "$(systemctl show -p ActiveState --value zbm-backup.service)" = activating ]; do sleep 0.1; done
      systemctl start zbm-backup.service`,
      'pve1',
    );
    assert.equal((await sh('systemctl show -p Result --value zbm-backup.service', 'pve1')).trim(), 'success');
    assert.equal((await destSnapshots()).length, before + 1, 'one run, not two');
    const journal = await sh('journalctl -o cat -t zbm-backup --no-pager', 'pve1');
    assert.match(journal, /backed up|vm-102-disk-0/);

    // A job removed from the file: its units go, after its timer is stopped.
    await sh('sed -i "/^  check:/,\\$d" /etc/zbm/zbm.yaml', 'pve1');
    const again = await zbm('pve1', ['install-timers']);
    assert.equal(again.code, 0, again.stderr);
    assert.notEqual((await vm('systemctl is-enabled zbm-check.timer')).stdout.trim(), 'enabled');
    assert.equal((await vm('test -e /etc/systemd/system/zbm-check.timer')).code, 1);
    await sh(
      'systemctl disable --now zbm-backup.timer && rm -f /etc/systemd/system/zbm-* && systemctl daemon-reload',
      'pve1',
    );
  });
});
