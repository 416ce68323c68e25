/**
 * An administrator's first hour: the README's "Getting started", step by step, with its exact
 * commands (each one is looked up in the README, so guide and test cannot drift apart), with the
 * .deb installed on every host: keys with their forced commands, the three config files, the first
 * runs, the timers under systemd, verify on every tier, and the restore drill from the replica.
 * Also the package itself (formerly package.test.ts): it installs with its dependencies met, runs
 * the original design's commands (and leaves the trees, holds and metadata they make), upgrades
 * keeping the timers, and a purge removes exactly what zbm made.
 *
 * What the lab changes in the guide, and only that:
 * - The main VM is both the node pve1 and the backup server zbm-dest; the replica VM is
 *   zbm-replica. backup1.example.com is 127.0.0.1 from the main VM and 10.0.2.2 (qemu's host, on
 *   the forwarded port the lab's own ssh config names) from the replica; replica1.example.com is
 *   10.0.2.2 from the main VM.
 * - The lab's /root/.ssh/config already names these hosts, and ssh takes the first value it finds:
 *   the guide's Host blocks go before the lab's instead of after them.
 * - zbm-dest's zbm commands run with ZBM_CONFIG=/etc/zbm/zbm.yaml: the same machine, as pve1, has
 *   /etc/pve/zbm.yaml, which zbm would read first.
 * - The authorized_keys lines get the real public keys for the guide's `AAAA... root@host`.
 * - The test's own commands run in each VM directly (the lab's ssh master), whatever the guide
 *   added to the hosts' ssh configs.
 * - The timers are stopped (left enabled) once listed, so that none fires during the test; their
 *   services are started by hand, as the timers would.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';
import { BACKED_UP, BACKUP_PVE, PRUNE_DEST, REPLICATE, verifyCommand } from '../lab/commands.ts';
import { holds, it, type Result, reset, sh, suite, tree, vm, zvolHash } from '../lab/lab.ts';
import { mailHeader, splitMails } from '../support/mail.ts';

const ZBM = '/usr/bin/zbm';
const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

const README = readFileSync('README.md', 'utf8');
const GUIDE = README.slice(
  README.indexOf('## Getting started'),
  README.indexOf('\n## ', README.indexOf('## Getting started') + 3),
);

/** A command of the guide: it must be in the README's Getting started word for word. */
function guide(command: string): string {
  assert.ok(GUIDE.includes(command), `the README's Getting started no longer says: ${command}`);
  return command;
}

const SENDMAIL = '/usr/sbin/sendmail';
const MAIL_LOG = '/var/tmp/zbm-guide-mail.log';

/** On the main VM as the node pve1. */
const onNode = (command: string, input?: string) => vm(command, input);
/** On the main VM as the backup server zbm-dest. */
const onDest = (command: string, input?: string) =>
  vm(`export ZBM_CONFIG=/etc/zbm/zbm.yaml; ${command}`, input);
/** On the replica VM. */
const onReplica = (command: string, input?: string) => vm(command, input, 'zbm-replica');

async function ok(r: Promise<Result>, what: string): Promise<Result> {
  const done = await r;
  assert.equal(done.code, 0, `${what}: ${done.stderr}${done.stdout}`);
  return done;
}

/** The guide's `printf 'Host ...' >> /root/.ssh/config`, placed before the lab's own blocks. */
async function addHostBlock(
  on: (c: string, i?: string) => Promise<Result>,
  printf: string,
  hostName: string,
  labAddress: string,
): Promise<void> {
  const block = printf.replace(` >> /root/.ssh/config`, ' > /tmp/guide-host').replace(hostName, labAddress);
  assert.notEqual(block, printf);
  await ok(
    on(
      `${block} && cat /tmp/guide-host /root/.ssh/config > /root/.ssh/config.new && mv /root/.ssh/config.new /root/.ssh/config`,
    ),
    printf,
  );
}

/** The guide's authorized_keys line for a key, with the key itself for `ssh-ed25519 AAAA... <comment>`. */
async function authorize(
  on: (c: string, i?: string) => Promise<Result>,
  template: string,
  publicKey: string,
): Promise<void> {
  const line = guide(template).replace(/ssh-ed25519 AAAA\.\.\. \S+$/, publicKey.trim());
  await ok(on('cat >> /root/.ssh/authorized_keys', `${line}\n`), 'authorized_keys');
}

async function replicaTree(root: string): Promise<string[]> {
  const r = await onReplica(
    shellJoin(['zfs', 'list', '-H', '-t', 'all', '-r', '-o', 'name', '-s', 'name', root]),
  );
  return r.code === 0 ? r.stdout.trim().split('\n').filter(Boolean) : [];
}

/** The states and subjects of the checks that are not OK, from verify's output. */
function notOk(r: Result): string[] {
  return r.stdout
    .split('\n')
    .slice(1)
    .filter((l) => /^(WARNING|CRITICAL|UNKNOWN) /.test(l))
    .map((l) => l.slice(0, l.indexOf(': ')));
}

/** Where HOLD_SERVICES puts its drop-ins: removing them (and a daemon-reload) lets the services go. */
const HELD = '/run/systemd/system/zbm-*.service.d';

/** Keeps every zbm service from starting until LET_GO. */
const HOLD_SERVICES = `set -e
for s in backup coverage prune verify drill replicate; do
  mkdir -p /run/systemd/system/zbm-$s.service.d
  printf '[Unit]\\nConditionPathExists=/nonexistent/zbm-guide-test\\n' > /run/systemd/system/zbm-$s.service.d/zz-guide-test.conf
done
systemctl daemon-reload`;
const LET_GO = `rm -rf ${HELD} && systemctl daemon-reload`;

/** Undoes what this file did to a VM: the package, units, configs, keys, the lab's zbm aside. */
const CLEANUP = `
for f in /etc/systemd/system/zbm-*.timer /etc/systemd/system/zbm-*.service; do
  [ -e "$f" ] || continue
  head -n 1 "$f" | grep -q '^# Generated by zbm install-timers' || continue
  systemctl disable --now "$(basename "$f")" >/dev/null 2>&1; rm -f "$f"
done
rm -rf ${HELD}
systemctl daemon-reload
dpkg -P zbm >/dev/null 2>&1
[ -e /usr/local/bin/zbm.lab ] && mv -f /usr/local/bin/zbm.lab /usr/local/bin/zbm
[ -e /root/.ssh/authorized_keys.lab ] && mv -f /root/.ssh/authorized_keys.lab /root/.ssh/authorized_keys
[ -e /root/.ssh/config.lab ] && mv -f /root/.ssh/config.lab /root/.ssh/config
rm -f /root/.ssh/zbm_backup* /root/.ssh/zbm_pull* /root/.ssh/zbm_restore* /etc/zbm/zbm.yaml /etc/pve/zbm.yaml /tmp/guide-host
if [ -e ${SENDMAIL}.guide-test ]; then mv -f ${SENDMAIL}.guide-test ${SENDMAIL}; elif [ -e ${MAIL_LOG} ]; then rm -f ${SENDMAIL}; fi
rm -f ${MAIL_LOG}
true`;

suite(
  "the README's Getting started, step by step, with the .deb on every host (real dpkg, ssh, systemd, ZFS)",
  30,
  () => {
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
      const b64 = readFileSync(deb).toString('base64');
      const prepare = `set -e
      [ -e /root/.ssh/config.lab ] || cp /root/.ssh/config /root/.ssh/config.lab
      cp /root/.ssh/authorized_keys /root/.ssh/authorized_keys.lab
      rm -f /root/.ssh/zbm_backup* /root/.ssh/zbm_pull* /root/.ssh/zbm_restore*
      # zbm is the package's here: the lab's copy of the bundle steps aside.
      if [ -e /usr/local/bin/zbm ]; then mv /usr/local/bin/zbm /usr/local/bin/zbm.lab; fi
      # The lab's node is a copied binary: a stand-in for the nodejs package (Debian's or NodeSource's).
      if ! dpkg -s nodejs >/dev/null 2>&1; then
        d=$(mktemp -d); mkdir -p $d/DEBIAN $d/usr/bin; ln -s /usr/local/bin/node $d/usr/bin/node
        printf 'Package: nodejs\\nVersion: 20.99-lab\\nArchitecture: all\\nMaintainer: lab <lab@example.org>\\nDescription: lab stand-in for nodejs\\n' > $d/DEBIAN/control
        dpkg-deb --root-owner-group -b $d /tmp/nodejs-lab.deb >/dev/null && dpkg -i /tmp/nodejs-lab.deb >/dev/null
      fi
      # Mail to root is kept where the test can read it (a stand-in for the MTA, if there is none).
      if [ -e ${SENDMAIL} ]; then mv ${SENDMAIL} ${SENDMAIL}.guide-test; fi
      printf '#!/bin/sh\\n{ echo "ARGS: $*"; cat; echo "--END--"; } >> ${MAIL_LOG}\\n' > ${SENDMAIL}; chmod 755 ${SENDMAIL}; : > ${MAIL_LOG}
      base64 -d > /tmp/zbm.deb`;
      await ok(vm(prepare, b64), 'prepare the main VM');
      await ok(onReplica(prepare, b64), 'prepare the replica');
    });

    after(async () => {
      await vm(CLEANUP);
      await onReplica(CLEANUP);
    });

    it("installs on every host with its dependencies met, its man page, completion, docs and licences; the original design's commands run as written", async () => {
      for (const on of [onNode, onReplica]) {
        await ok(on('dpkg -i /tmp/zbm.deb'), 'dpkg -i');
        assert.equal((await ok(on('zbm --version'), 'version')).stdout.trim(), version);
      }
      await sh(
        `test -s /usr/share/man/man8/zbm.8.gz && zcat /usr/share/man/man8/zbm.8.gz | grep -qxF '.SS backup\\-pve'`,
      );
      const sections = (await sh(`zcat /usr/share/man/man8/zbm.8.gz | grep '^\\.SH '`)).trim().split('\n');
      assert.deepEqual(sections, [
        '.SH NAME',
        '.SH SYNOPSIS',
        '.SH DESCRIPTION',
        '.SH COMMANDS',
        '.SH CONFIGURATION',
        '.SH FILES',
        '.SH ENVIRONMENT',
        '.SH EXAMPLES',
        '.SH "EXIT STATUS"',
        '.SH "SEE ALSO"',
      ]);
      await sh('bash -c ". /usr/share/bash-completion/completions/zbm && complete -p zbm"');
      // The docs --help points to are there.
      const serveHelp = await sh('zbm serve --help');
      const doc = /(\/usr\/share\/doc\/zbm\/\S+\.md)/.exec(serveHelp)?.[1] ?? '';
      assert.equal(doc, '/usr/share/doc/zbm/docs/serve.md');
      await sh(
        `test -s ${doc} && test -s /usr/share/doc/zbm/README.md && test -s /usr/share/doc/zbm/docs/restore.md`,
      );
      // The bundled libraries' licences: in the binary and in the copyright file.
      await sh(`grep -q 'TJ Holowaychuk' ${ZBM} && grep -q 'Eemeli Aro' ${ZBM}`);
      assert.match(await sh('cat /usr/share/doc/zbm/copyright'), /^License: Expat and ISC$/m);
      assert.doesNotMatch(await sh(shellJoin(['dpkg-query', '-W', `-f=\${Homepage}`, 'zbm'])), /\S/);

      // CT 104 has every disk on ZFS, and a new pool is not due for a scrub: verify has nothing to warn about.
      for (const args of [[...BACKUP_PVE, '--vmid', '104'], REPLICATE, PRUNE_DEST, verifyCommand(1)]) {
        const r = await vm(shellJoin([ZBM, ...args]));
        assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
      }
      // What the workflow left, as an admin would look: one backup on every tier, the node's base
      // snapshot alone on the node (no bookmark, no hold: Proxmox's destroy and rollback stay free),
      // every base held by its pair on the servers, the config and manifest on both servers.
      const [snap] = (await tree('main/bak-zbm/subvol-104-disk-0'))
        .filter((n) => n.includes('@'))
        .map((n) => n.split('@')[1]);
      assert.match(snap ?? '', /^bak-zbm-\d{8}T\d{6}Z$/);
      const node = 'rpool/data/subvol-104-disk-0';
      assert.deepEqual(
        (await tree(node)).filter((n) => n.includes('bak-zbm-')),
        [`${node}@${snap}`],
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
      assert.deepEqual(await holds(node, 'pve1'), []);
      const ds = `main/bak-zbm/subvol-104-disk-0@${snap}`;
      assert.deepEqual(await holds('main/bak-zbm'), [
        `${ds}\tzbm-base:pve1:zbm-replica`,
        `${ds}\tzbm-base:pve:zbm-dest`,
      ]);
      assert.deepEqual(await holds('main/bak-zbm', 'zbm-replica'), [`${ds}\tzbm-base:pve1:zbm-replica`]);
    }, 10);

    it('step 2: the nodes reach the backup server only through zbm serve; the host key is accepted with a command serve allows', async () => {
      await reset();
      await ok(onDest(guide('zfs create -p main/bak-zbm')), 'zfs create');
      await ok(onNode(guide("ssh-keygen -t ed25519 -N '' -f /root/.ssh/zbm_backup")), 'ssh-keygen');
      await addHostBlock(
        onNode,
        guide(
          "printf 'Host zbm-dest\\n  HostName backup1.example.com\\n  IdentityFile /root/.ssh/zbm_backup\\n  IdentitiesOnly yes\\n' >> /root/.ssh/config",
        ),
        'backup1.example.com',
        '127.0.0.1',
      );
      await authorize(
        onDest,
        'command="zbm serve --root main/bak-zbm --metadata-dir /root/backups_metadata --tag zbm-base:pve:zbm-dest",restrict ssh-ed25519 AAAA... root@pve1',
        await sh('cat /root/.ssh/zbm_backup.pub'),
      );
      const listed = await ok(
        onNode(guide('ssh zbm-dest zfs list main/bak-zbm')),
        'the host key, through serve',
      );
      assert.match(listed.stdout, /^main\/bak-zbm\s/m);
      // The key can do nothing else; the guide's old way to accept the host key is refused too.
      const destroy = await onNode('ssh zbm-dest zfs destroy -r main/bak-zbm');
      assert.notEqual(destroy.code, 0);
      assert.match(destroy.stderr, /zfs destroy is not allowed/);
      const outside = await onNode('ssh zbm-dest zfs list main');
      assert.notEqual(outside.code, 0);
      assert.match(outside.stderr, /main is outside main\/bak-zbm/);
    });

    it("step 3: the replica's key on the backup server is send-only", async () => {
      await ok(onReplica(guide("ssh-keygen -t ed25519 -N '' -f /root/.ssh/zbm_pull")), 'ssh-keygen');
      await addHostBlock(
        onReplica,
        guide(
          "printf 'Host zbm-dest\\n  HostName backup1.example.com\\n  IdentityFile /root/.ssh/zbm_pull\\n  IdentitiesOnly yes\\n' >> /root/.ssh/config",
        ),
        'backup1.example.com',
        '10.0.2.2',
      );
      await authorize(
        onDest,
        'command="zbm serve --send-only --root main/bak-zbm --metadata-dir /root/backups_metadata --tag zbm-base:zbm-dest:zbm-replica",restrict ssh-ed25519 AAAA... root@zbm-replica',
        (await ok(onReplica('cat /root/.ssh/zbm_pull.pub'), 'the key')).stdout,
      );
      await ok(
        onReplica(guide('ssh zbm-dest zfs list main/bak-zbm')),
        'the host key, through serve --send-only',
      );
      const write = await onReplica('ssh zbm-dest zfs create main/bak-zbm/evil');
      assert.notEqual(write.code, 0);
      assert.match(write.stderr, /writes nothing/);
    });

    it('step 4: the example configs, copied as shipped, pass config check on every host', async () => {
      await ok(onNode(guide('cp /usr/share/doc/zbm/examples/zbm.yaml /etc/pve/zbm.yaml')), 'node config');
      await ok(
        onDest(
          guide('mkdir -p /etc/zbm && cp /usr/share/doc/zbm/examples/backup-server.yaml /etc/zbm/zbm.yaml'),
        ),
        'backup server config',
      );
      await ok(
        onReplica(
          guide('mkdir -p /etc/zbm && cp /usr/share/doc/zbm/examples/replica.yaml /etc/zbm/zbm.yaml'),
        ),
        'replica config',
      );
      const check = guide('zbm config check');
      for (const [on, first] of [
        [onNode, '/etc/pve/zbm.yaml: 2 job(s), valid'],
        [onDest, '/etc/zbm/zbm.yaml: 3 job(s), valid'],
        [onReplica, '/etc/zbm/zbm.yaml: 4 job(s), valid'],
      ] as const) {
        const r = await ok(on(check), first);
        assert.equal(r.stdout.split('\n')[0], first);
      }
    });

    it('step 5: the first backup and pull by hand, then the timers, whose services run under systemd', async () => {
      const plan = await ok(onNode(guide('zbm run backup --dry-run')), 'dry run');
      assert.match(plan.stdout, /vm-100-disk-0/);
      assert.deepEqual(await tree('main/bak-zbm'), ['main/bak-zbm'], 'a dry run sends nothing');
      await ok(onNode(guide('zbm run backup')), 'the first backup');
      const dest = await tree('main/bak-zbm');
      assert.deepEqual(
        dest.filter((n) => !n.includes('@') && n !== 'main/bak-zbm'),
        BACKED_UP.map((d) => `main/bak-zbm/${d}`),
      );
      for (const d of BACKED_UP)
        assert.equal(dest.filter((n) => n.startsWith(`main/bak-zbm/${d}@`)).length, 1, d);

      await ok(onReplica(guide('zbm run replicate')), 'the first pull');
      const noBookmarks = (names: string[]) => names.filter((n) => !n.includes('#'));
      assert.deepEqual(noBookmarks(await replicaTree('main/bak-zbm')), noBookmarks(dest));
      // The replica's base is held on the backup server, so its prune keeps it without reaching the replica.
      const newest = dest.filter((n) => n.startsWith('main/bak-zbm/vm-100-disk-0@')).at(-1);
      assert.deepEqual(await holds('main/bak-zbm/vm-100-disk-0'), [
        `${newest}\tzbm-base:pve:zbm-dest`,
        `${newest}\tzbm-base:zbm-dest:zbm-replica`,
      ]);

      // A timer may elapse between install-timers and the stop below (the jobs fire at :00 to :05,
      // :20, :40 and :50): its service would run a job this test did not ask for, and the trees
      // and mails asserted below would not be the guide's. Until the stop, the services are held
      // back by a runtime drop-in (a condition that is false), and let go afterwards.
      await ok(vm(HOLD_SERVICES), 'hold the services back');
      await ok(onReplica(HOLD_SERVICES), 'hold the services back');
      await ok(onNode(guide('zbm install-timers')), 'install-timers on the node');
      await ok(onDest(guide('zbm install-timers')), 'install-timers on the backup server');
      await ok(onReplica(guide('zbm install-timers')), 'install-timers on the replica');
      const list = guide("systemctl list-timers 'zbm-*'");
      const here = (await ok(onNode(list), 'list-timers')).stdout;
      for (const t of ['zbm-backup', 'zbm-coverage', 'zbm-prune', 'zbm-verify'])
        assert.match(here, new RegExp(`${t}\\.timer\\s+${t}\\.service`), t);
      // The node's timers as systemd read them: a fixed offset within 5 minutes (FixedRandomDelay, systemd 247).
      const spread = (await ok(onNode('systemctl show zbm-backup.timer zbm-coverage.timer'), 'timer spread'))
        .stdout;
      assert.equal(spread.match(/^RandomizedDelayUSec=5min$/gm)?.length, 2, spread);
      assert.equal(spread.match(/^FixedRandomDelay=yes$/gm)?.length, 2, spread);
      const there = (await ok(onReplica(list), 'list-timers')).stdout;
      for (const t of ['zbm-replicate', 'zbm-prune', 'zbm-verify'])
        assert.match(there, new RegExp(`${t}\\.timer\\s+${t}\\.service`), t);
      assert.match(
        await sh('systemctl cat zbm-prune.service'),
        /^ExecStart=\/usr\/bin\/zbm run --config \/etc\/zbm\/zbm\.yaml prune$/m,
      );
      assert.match(
        await sh('systemctl cat zbm-backup.service'),
        /^ExecStart=\/usr\/bin\/zbm run --config \/etc\/pve\/zbm\.yaml backup$/m,
      );
      await sh("systemctl stop 'zbm-*.timer'");
      await ok(onReplica("systemctl stop 'zbm-*.timer'"), 'stop the timers');
      await ok(vm(LET_GO), 'let the services go');
      await ok(onReplica(LET_GO), 'let the services go');

      // What the timers do when they elapse: start their services.
      await sh('systemctl start zbm-backup.service');
      assert.equal((await sh('systemctl show -p Result --value zbm-backup.service')).trim(), 'success');
      await ok(onReplica('systemctl start zbm-replicate.service'), 'replicate under systemd');
      assert.equal(
        (
          await ok(onReplica('systemctl show -p Result --value zbm-replicate.service'), 'result')
        ).stdout.trim(),
        'success',
      );
      await sh('systemctl start zbm-prune.service');
      assert.equal((await sh('systemctl show -p Result --value zbm-prune.service')).trim(), 'success');
      const now = await tree('main/bak-zbm/vm-100-disk-0');
      assert.equal(now.filter((n) => n.includes('@')).length, 2, 'the second backup, kept by prune');
      assert.deepEqual(noBookmarks(await replicaTree('main/bak-zbm/vm-100-disk-0')), noBookmarks(now));
    }, 10);

    it('step 6: verify on every tier: the status line first with performance data; the only warning is the guest with a disk zbm cannot take (the new pools, never scrubbed, are OK), and root gets a mail', async () => {
      // No scrub first: the guide no longer asks for one, a new pool is judged by its age.
      const fresh =
        /ONLINE, never scrubbed: the pool is \S+ (s|min|h) old, younger than --max-scrub-age-days \(35\.0 d\)$/;
      const verifyJob = guide('zbm run verify');
      // The shipped verify jobs want a restore drill of every guest within the week: the guide
      // runs the drill job once by hand, every block read back, before the first verify.
      for (const [on, host] of [
        [onDest, 'pve1'],
        [onReplica, 'zbm-replica'],
      ] as const) {
        const drill = await on(guide('zbm run drill'));
        assert.equal(drill.code, 0, drill.stdout + drill.stderr);
        assert.match(
          drill.stdout.split('\n')[0] ?? '',
          new RegExp(
            `^ZBM OK - restore drill of 5 guest\\(s\\) on ${host}:main/bak-zbm: 0 critical, 0 warning, 0 unknown, 5 ok \\|`,
          ),
        );
      }

      const dest = await onDest(verifyJob);
      assert.equal(dest.code, 1, dest.stdout + dest.stderr);
      assert.match(
        dest.stdout.split('\n')[0] ?? '',
        /^ZBM WARNING - main\/bak-zbm on pve1: 0 critical, 1 warning, 0 unknown, \d+ ok \| datasets=9;;;0 backup_age=\d+s;;7200;0 snapshots=2;1:;;0 pool_age=\d+s;3024000;;0$/,
      );
      assert.deepEqual(notOk(dest), ['WARNING guest 102 (noagent)']);
      assert.match(dest.stdout, new RegExp(`^OK pool main: ${fresh.source}`, 'm'));
      assert.match(
        dest.stdout,
        /^WARNING guest 102 \(noagent\): the newest backup \S+ lacks disk\(s\): sata0/m,
      );

      const replica = await onReplica(verifyJob);
      assert.equal(replica.code, 1, replica.stdout + replica.stderr);
      assert.match(
        replica.stdout.split('\n')[0] ?? '',
        /^ZBM WARNING - main\/bak-zbm on zbm-replica: 0 critical, 1 warning, 0 unknown, \d+ ok \| datasets=9;;;0 backup_age=\d+s;;10800;0 snapshots=2;1:;;0 pool_age=\d+s;3024000;;0$/,
      );
      assert.deepEqual(notOk(replica), ['WARNING guest 102 (noagent)']);
      assert.match(replica.stdout, new RegExp(`^OK pool main: ${fresh.source}`, 'm'));

      // The node's coverage check reaches the backup server through its restricted key.
      const node = await onNode(guide('zbm run coverage'));
      assert.equal(node.code, 1, node.stdout + node.stderr);
      assert.match(
        node.stdout.split('\n')[0] ?? '',
        /^ZBM WARNING - guests of pve1 on zbm-dest:main\/bak-zbm: 0 critical, 1 warning, 0 unknown, 5 ok \| guests=5;;;0 disks=9;;;0 disks_backed_up=9;;;0 backup_age=\d+s;;7200;0 pool_age=\d+s;3024000;;0$/,
      );
      assert.deepEqual(notOk(node), ['WARNING guest 102 (noagent)']);
      // Through zbm serve: the pool's health, and its age from the creation serve allows.
      assert.match(node.stdout, new RegExp(`^OK pool main on zbm-dest: ${fresh.source}`, 'm'));

      // Step 4's backups mailed too: only the mails of this step count.
      const verifyMails = splitMails(await sh(`cat ${MAIL_LOG}`)).filter((m) =>
        mailHeader(m, 'Subject').startsWith('zbm verify on pve1: '),
      );
      assert.ok(verifyMails.length > 0, 'verify sent no mail');
      for (const m of verifyMails) {
        assert.equal(mailHeader(m, 'To'), 'root');
        assert.match(
          mailHeader(m, 'Subject'),
          /^zbm verify on pve1: WARNING \(1 problem\): WARNING guest 102/,
        );
      }
    });

    it('step 7: the restore drill from the replica, through a send-only key, as a new guest', async () => {
      await ok(onNode(guide("ssh-keygen -t ed25519 -N '' -f /root/.ssh/zbm_restore")), 'ssh-keygen');
      await addHostBlock(
        onNode,
        guide(
          "printf 'Host zbm-replica\\n  HostName replica1.example.com\\n  IdentityFile /root/.ssh/zbm_restore\\n  IdentitiesOnly yes\\n' >> /root/.ssh/config",
        ),
        'replica1.example.com',
        '10.0.2.2',
      );
      await authorize(
        onReplica,
        'command="zbm serve --send-only --root main/bak-zbm --metadata-dir /root/backups_metadata",restrict ssh-ed25519 AAAA... root@pve1',
        await sh('cat /root/.ssh/zbm_restore.pub'),
      );
      const before = await replicaTree('main/bak-zbm');
      await ok(
        onNode(guide('ssh zbm-replica zfs list main/bak-zbm')),
        'the host key, through serve --send-only',
      );
      const listed = await ok(
        onNode(guide('zbm list-backups --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100')),
        'list-backups',
      );
      assert.match(listed.stdout, /^100 +qemu +web +bak-zbm-\d{8}T\d{6}Z +\S+ +4\/4 /m);
      await ok(
        onNode(
          guide(
            'zbm restore --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100 --as-vmid 9100 --new-macs -y',
          ),
        ),
        'restore',
      );
      const conf = await sh('cat /etc/pve/nodes/pve1/qemu-server/9100.conf');
      const original = await sh('cat /etc/pve/nodes/pve1/qemu-server/100.conf');
      const mac = (c: string) => /^net0: \w+=([0-9A-F:]{17})/im.exec(c)?.[1];
      assert.ok(mac(conf) && mac(original) && mac(conf) !== mac(original), 'a new MAC address');
      for (const n of [0, 1, 2, 3])
        assert.deepEqual(await tree(`rpool/data/vm-9100-disk-${n}`), [`rpool/data/vm-9100-disk-${n}`]);
      assert.equal(await zvolHash('rpool/data/vm-9100-disk-0'), await zvolHash('rpool/data/vm-100-disk-0'));
      // The node could read the replica, and change nothing there.
      assert.deepEqual(await replicaTree('main/bak-zbm'), before);
      const destroy = await onNode('ssh zbm-replica zfs destroy -r main/bak-zbm');
      assert.notEqual(destroy.code, 0);
      assert.match(destroy.stderr, /not allowed/);
    }, 8);

    it('upgrades keeping the timers, and a purge removes exactly what zbm made', async () => {
      await sh(`set -e
      mkdir -p /etc/zbm && printf 'jobs:\\n  check:\\n    command: verify\\n    schedule: daily\\n    local-zfs-root: main/bak-zbm\\n' > /etc/zbm/zbm.yaml
      ZBM_CONFIG=/etc/zbm/zbm.yaml ${ZBM} install-timers >/dev/null
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
      // The backup server's earlier jobs left the file: their units went with them, the node's stayed.
      assert.equal((await vm('test -e /etc/systemd/system/zbm-prune.timer')).code, 1);
      assert.equal((await vm('test -e /etc/systemd/system/zbm-backup.timer')).code, 0);

      const purge = await vm('dpkg -P zbm');
      assert.equal(purge.code, 0, purge.stderr);
      assert.equal((await vm(`test -e ${ZBM}`)).code, 1);
      // The code cache and the drills' records (step 6) go too; what zbm keeps for the user
      // (configs replaced by a restore, in /var/lib/zbm/replaced) stays.
      assert.equal((await vm('test -e /var/cache/zbm || test -e /var/lib/zbm/drill')).code, 1);
      assert.equal(
        (
          await vm(
            'test -e /etc/systemd/system/zbm-check.timer || test -e /etc/systemd/system/zbm-check.service',
          )
        ).code,
        1,
      );
      assert.notEqual((await vm('systemctl is-active zbm-check.timer')).stdout.trim(), 'active');
      for (const u of ['zbm-backup', 'zbm-coverage'])
        assert.equal(
          (await vm(`test -e /etc/systemd/system/${u}.timer || test -e /etc/systemd/system/${u}.service`))
            .code,
          1,
          u,
        );
      await sh('test -e /etc/systemd/system/zbm-mine.timer', 'pve1');
      await sh('rm -f /etc/systemd/system/zbm-mine.timer /etc/zbm/zbm.yaml && systemctl daemon-reload');

      const replica = await onReplica(
        'dpkg -P zbm >/dev/null && { ls /etc/systemd/system | grep "^zbm-" || true; }',
      );
      assert.equal(replica.code, 0, replica.stderr);
      assert.equal(replica.stdout.trim(), '', 'no zbm unit left on the replica');
    });
  },
);
