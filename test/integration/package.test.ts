/**
 * The Debian package in the lab VM: installs with dpkg next to real zfsutils-linux and
 * openssh-client, runs the original workflow, upgrades keeping the admin's timers, and purges
 * cleanly (only what zbm made goes).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKUP_PVE, PRUNE_DEST, REPLICATE, verifyCommand } from '../lab/commands.ts';
import { holds, it, reset, sh, suite, tree, vm } from '../lab/lab.ts';

const ZBM = '/usr/bin/zbm';
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

suite('the .deb package (real dpkg, systemd and ZFS)', 8, () => {
  before(async () => {
    await reset();
    const deb = execFileSync('bash', ['scripts/build-deb.sh'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
      .trim()
      .split('\n')
      .at(-1);
    assert.ok(deb);
    await sh('base64 -d > /tmp/zbm.deb', 'pve1', readFileSync(deb).toString('base64'));
    // The lab's node is a copied binary: a stand-in for the nodejs package (Debian's or NodeSource's).
    await sh(`set -e
      if ! dpkg -s nodejs >/dev/null 2>&1; then
        d=$(mktemp -d); mkdir -p $d/DEBIAN $d/usr/bin; ln -s /usr/local/bin/node $d/usr/bin/node
        printf 'Package: nodejs\\nVersion: 20.99-lab\\nArchitecture: all\\nMaintainer: lab <lab@example.org>\\nDescription: lab stand-in for nodejs\\n' > $d/DEBIAN/control
        dpkg-deb --root-owner-group -b $d /tmp/nodejs-lab.deb >/dev/null && dpkg -i /tmp/nodejs-lab.deb >/dev/null
      fi`);
  });

  it('installs with its dependencies met, with the man page and completion, and runs the workflow', async () => {
    const install = await vm('dpkg -i /tmp/zbm.deb');
    assert.equal(install.code, 0, install.stderr);
    assert.equal((await sh(`${ZBM} --version`)).trim(), version);
    await sh(
      'test -s /usr/share/man/man8/zbm.8.gz && zcat /usr/share/man/man8/zbm.8.gz | grep -q "^.SS backup-pve"',
    );
    await sh('bash -c ". /usr/share/bash-completion/completions/zbm && complete -p zbm"');
    // CT 104 has every disk on ZFS, so once the pool was scrubbed verify has nothing to warn about.
    await sh('zpool scrub -w main');
    for (const args of [[...BACKUP_PVE, '--vmid', '104'], REPLICATE, PRUNE_DEST, verifyCommand(1)]) {
      const r = await vm(shellJoin([ZBM, ...args]));
      assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
    }
    // What the workflow left, as an admin would look: one backup on every tier, the node's base
    // snapshot bookmarked, every base held by its pair, the config and manifest on both servers.
    const [snap] = (await tree('main/bak-zbm/subvol-104-disk-0'))
      .filter((n) => n.includes('@'))
      .map((n) => n.split('@')[1]);
    assert.match(snap ?? '', /^bak-zbm-\d{8}T\d{6}Z$/);
    const node = 'rpool/data/subvol-104-disk-0';
    assert.deepEqual(
      (await tree(node)).filter((n) => n.includes('bak-zbm-')),
      [`${node}#${snap}`, `${node}@${snap}`],
    );
    // replicate bookmarked its base on the backup server too (its own next incremental's source).
    const copy = 'main/bak-zbm/subvol-104-disk-0';
    for (const [host, bookmark] of [
      ['zbm-dest', [`${copy}#${snap}`]],
      ['zbm-replica', []],
    ] as const) {
      assert.deepEqual(
        await tree('main/bak-zbm', host),
        ['main/bak-zbm', copy, ...bookmark, `${copy}@${snap}`],
        host,
      );
      assert.equal(
        await sh('cd /root/backups_metadata && find . -type f | sort', host),
        `./104/${snap}.conf\n./104/${snap}.json\n`,
        host,
      );
    }
    assert.deepEqual(await holds(node, 'pve1'), [`${node}@${snap}\tzbm-base:pve:zbm-dest`]);
    const ds = `main/bak-zbm/subvol-104-disk-0@${snap}`;
    assert.deepEqual(await holds('main/bak-zbm'), [
      `${ds}\tzbm-base:pve1:zbm-replica`,
      `${ds}\tzbm-base:pve:zbm-dest`,
    ]);
    assert.deepEqual(await holds('main/bak-zbm', 'zbm-replica'), [`${ds}\tzbm-base:pve1:zbm-replica`]);
  });

  it('upgrades keeping the timers, and a purge removes exactly what zbm made', async () => {
    await sh(`set -e
      mkdir -p /etc/zbm && printf 'jobs:\\n  check:\\n    command: verify\\n    schedule: daily\\n    local-zfs-root: main/bak-zbm\\n' > /etc/zbm/zbm.yaml
      ${ZBM} install-timers >/dev/null
      printf '[Timer]\\nOnCalendar=daily\\n' > /etc/systemd/system/zbm-mine.timer
      rm -rf /tmp/up && dpkg-deb -R /tmp/zbm.deb /tmp/up && sed -i 's/^Version: .*/Version: ${version}+lab1/' /tmp/up/DEBIAN/control
      dpkg-deb --root-owner-group -b /tmp/up /tmp/zbm-up.deb >/dev/null`);
    const up = await vm('dpkg -i /tmp/zbm-up.deb');
    assert.equal(up.code, 0, up.stderr);
    assert.match(
      await sh(shellJoin(['dpkg-query', '-W', `-f=\${Version}`, 'zbm'])),
      new RegExp(`^${version.replaceAll('.', '\\.')}\\+lab1$`),
    );
    assert.equal((await sh('systemctl is-enabled zbm-check.timer')).trim(), 'enabled');

    const purge = await vm('dpkg -P zbm');
    assert.equal(purge.code, 0, purge.stderr);
    assert.equal((await vm(`test -e ${ZBM}`)).code, 1);
    assert.equal(
      (
        await vm(
          'test -e /etc/systemd/system/zbm-check.timer || test -e /etc/systemd/system/zbm-check.service',
        )
      ).code,
      1,
    );
    assert.notEqual((await vm('systemctl is-active zbm-check.timer')).stdout.trim(), 'active');
    await sh('test -e /etc/systemd/system/zbm-mine.timer', 'pve1');
    await sh('rm -f /etc/systemd/system/zbm-mine.timer /etc/zbm/zbm.yaml && systemctl daemon-reload');
  });
});
