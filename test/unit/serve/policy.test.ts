import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shellJoin } from '../../../src/host/quote.ts';
import { legacyLockFileName, receiveLockName } from '../../../src/lock/lock.ts';
import { lockedArgv } from '../../../src/lock/remote.ts';
import { listMetadataArgv, tarMetadataArgv } from '../../../src/metadata/copy.ts';
import { dumpManifestsArgv, readConfigArgv } from '../../../src/metadata/manifest.ts';
import { WRITE_FILE_ARGV, WRITE_FILES_ARGV, writeFilesCommands } from '../../../src/metadata/write.ts';
import { authorize, type Decision } from '../../../src/serve/policy.ts';
import { splitShellWords } from '../../../src/serve/words.ts';
import {
  abortReceiveArgv,
  bookmarkArgv,
  createArgv,
  creationArgv,
  destroyBookmarkArgv,
  destroySnapshotsArgv,
  getArgv,
  holdArgv,
  holdsArgv,
  listArgv,
  receiveArgv,
  releaseArgv,
  resumeSendArgv,
  sendArgv,
  setArgv,
} from '../../../src/zfs/argv.ts';
import { countedSendArgv } from '../../../src/zfs/counted-send.ts';
import { moveHoldArgv } from '../../../src/zfs/move-hold.ts';
import { BATCH_SCRIPT, batchArgv } from '../../../src/zfs/program.ts';
import { hostileStrings } from '../../support/hostile.ts';

const policy = {
  root: 'main/bak-zbm/pve1',
  metadataDir: '/root/backups_metadata',
  tag: 'zbm-base:pve:zbm-dest',
};
const R = policy.root;
const decide = (argv: readonly string[]): Decision => {
  // What arrives is what zbm's ssh host sends: the quoted line, split again.
  const words = splitShellWords(shellJoin(argv));
  assert.deepEqual(words, argv);
  return authorize(words ?? [], policy);
};
const allowed = (argv: readonly string[]) => assert.equal(decide(argv).kind, 'exec', shellJoin(argv));
const refused = (argv: readonly string[], why: RegExp) => {
  const d = decide(argv);
  assert.equal(d.kind, 'refuse', shellJoin(argv));
  assert.match(d.kind === 'refuse' ? d.reason : '', why);
};

describe('splitShellWords', () => {
  it('gives back exactly the words shellJoin quoted, hostile ones included', () => {
    for (const h of hostileStrings('/tmp/zbm-pwned')) {
      const argv = ['zfs', 'list', h, `${h}@${h}`, ''];
      assert.deepEqual(splitShellWords(shellJoin(argv)), argv);
    }
  });

  it('refuses every line outside that grammar: no expansion, no operators, no double quotes', () => {
    for (const line of [
      'zfs list $(id)',
      'zfs list `id`',
      'zfs destroy x; id',
      'zfs list "a"',
      'a  b',
      'a ',
      ' a',
      'a|b',
      "'open",
      'zfs list a\nid',
      'x\\y',
      '',
    ]) {
      assert.equal(splitShellWords(line), null, line);
    }
  });
});

describe("zbm serve's policy", () => {
  it("allows every command backup-pve sends to the backup server, inside the node's root", () => {
    allowed(listArgv({ roots: [R] }));
    allowed(listArgv({ roots: [R], depth: 0, withSnapshots: false }));
    allowed(createArgv(R));
    allowed(setArgv(R, { 'zbm:metadata-dir': '/root/backups_metadata' }));
    allowed(getArgv(['receive_resume_token'], [`${R}/vm-100-disk-0`]));
    allowed(abortReceiveArgv(`${R}/vm-100-disk-0`));
    allowed(holdsArgv([`${R}/vm-100-disk-0@bak-zbm-1`]));
    allowed(holdArgv('zbm-base:pve:zbm-dest', [`${R}/vm-100-disk-0@bak-zbm-1`]));
    allowed(releaseArgv('zbm-base:pve:zbm-dest', [`${R}/vm-100-disk-0@bak-zbm-1`]));
    // The stream itself is checked when it arrives (stream.test.ts).
    assert.deepEqual(decide(receiveArgv({ target: `${R}/vm-100-disk-0` })), {
      kind: 'receive',
      target: `${R}/vm-100-disk-0`,
      flags: ['-s', '-u'],
    });
    const chain = `${R}/vm-100-disk-0.bak-zbm-20261126T110503Z`;
    assert.deepEqual(
      decide(receiveArgv({ target: chain, set: { origin: `${R}/vm-100-disk-0@bak-zbm-1` } })),
      {
        kind: 'receive',
        target: chain,
        flags: ['-s', '-u', '-o', `origin=${R}/vm-100-disk-0@bak-zbm-1`],
        origin: `${R}/vm-100-disk-0@bak-zbm-1`,
      },
    );
    // A template's @__base__, kept under zbm's name: the name is checked with the stream.
    assert.deepEqual(decide(receiveArgv({ target: `${R}/base-900-disk-0@bak-zbm-20261126T110503Z` })), {
      kind: 'receive',
      target: `${R}/base-900-disk-0`,
      flags: ['-s', '-u'],
      as: 'bak-zbm-20261126T110503Z',
    });
    assert.deepEqual(
      decide([...WRITE_FILE_ARGV, '/root/backups_metadata/100/bak-zbm-20261126T110503Z.conf']),
      {
        kind: 'write',
        files: [
          {
            path: '/root/backups_metadata/100/bak-zbm-20261126T110503Z.conf',
            snapshot: 'bak-zbm-20261126T110503Z',
            bytes: null,
          },
        ],
      },
    );
  });

  it('refuses destroy, rollback, rename, send, receive -F and everything outside the root', () => {
    refused(destroySnapshotsArgv(`${R}/vm-100-disk-0`, ['bak-zbm-1']), /not allowed/);
    refused(['zfs', 'destroy', '-r', R], /not allowed/);
    refused(['zfs', 'rollback', '-r', `${R}/vm-100-disk-0@bak-zbm-1`], /not allowed/);
    refused(['zfs', 'rename', `${R}/a`, `${R}/b`], /not allowed/);
    refused(['zfs', 'send', `${R}/a@b`], /not allowed/);
    refused(receiveArgv({ target: `${R}/vm-100-disk-0`, force: true }), /-F is not allowed/);
    refused(
      ['zfs', 'receive', '-o', 'mountpoint=/root/.ssh', `${R}/x`],
      /-o mountpoint=\/root\/.ssh: value not allowed/,
    );
    // A new chain's origin: only a snapshot inside the root, and only one.
    refused(['zfs', 'receive', '-o', 'origin=main/other@bak-zbm-1', `${R}/x`], /value not allowed/);
    refused(['zfs', 'receive', '-o', `origin=${R}/a`, `${R}/x`], /value not allowed/);
    refused(['zfs', 'receive', '-o', `origin=${R}/a@s`, '-o', `origin=${R}/b@s`, `${R}/x`], /one -o origin=/);
    refused(['zfs', 'receive', '-d', 'main'], /-d is not allowed/);
    // Into one new snapshot of a dataset inside the root, by a plain name: nothing else.
    refused(['zfs', 'receive', `${R}/x@a@b`], /into a dataset, or into one new snapshot/);
    refused(['zfs', 'receive', `${R}/x#b`], /into a dataset, or into one new snapshot/);
    refused(['zfs', 'receive', `${R}/x@$(reboot)`], /into a dataset, or into one new snapshot/);
    refused(['zfs', 'receive', 'main/other@bak-zbm-1'], /outside main\/bak-zbm\/pve1/);
    refused(listArgv({ roots: ['main/bak-zbm/pve2'] }), /outside main\/bak-zbm\/pve1/);
    refused(listArgv({ roots: ['main/bak-zbm/pve1x'] }), /outside/);
    refused(listArgv({ roots: ['rpool'] }), /outside/);
    refused(createArgv('main/other'), /outside/);
    refused(['zfs', 'set', 'mountpoint=/etc', R], /only zbm:metadata-dir=\/root\/backups_metadata/);
    refused(
      ['zfs', 'set', 'zbm:metadata-dir=/root/backups_metadata', 'readonly=off', R],
      /only zbm:metadata-dir/,
    );
    refused(holdArgv('zbm-base:zbm-dest:zbm-replica', [`${R}/a@b`]), /only the tag zbm-base:pve:zbm-dest/);
    refused(releaseArgv('admin', [`${R}/a@b`]), /only the tag/);
    refused(receiveArgv({ target: R }), /itself: only into datasets below it/);
    refused(['sh', '-c', 'rm -rf /'], /only zfs commands/);
    refused(['bash'], /only zfs commands/);
    refused(['zfs', 'list', '-H', '--', R], /-- is not allowed/);
  });

  it('lets zbm:metadata-dir name only its own --metadata-dir: a client cannot point commands elsewhere', () => {
    for (const dir of ['/srv/victim', '/root/backups_metadata/', '/root/backups_metadata/../x', '/']) {
      refused(setArgv(R, { 'zbm:metadata-dir': dir }), /only zbm:metadata-dir=\/root\/backups_metadata,/);
    }
    refused(setArgv(R, { 'zbm:other': '1' }), /only zbm:metadata-dir/);
    refused(setArgv('main/other', { 'zbm:metadata-dir': '/root/backups_metadata' }), /outside/);
    const none = authorize(setArgv(R, { 'zbm:metadata-dir': '/x' }), { root: R, metadataDir: null });
    assert.match(none.kind === 'refuse' ? none.reason : '', /no --metadata-dir/);
  });

  it("holds and releases only this key's exact tag; without --tag, none", () => {
    for (const tag of [
      'zbm-base:pve:zbm-dest2',
      'zbm-base:pve:zbm-des',
      'zbm-base:pve:',
      'zbm-base:pve:other',
    ]) {
      refused(releaseArgv(tag, [`${R}/vm-100-disk-0@a`]), /only the tag zbm-base:pve:zbm-dest is allowed/);
    }
    refused(['zfs', 'hold', 'zbm-base:pve:zbm-dest'], /takes a tag and snapshots/);
    refused(holdArgv('zbm-base:pve:zbm-dest', [`${R}/vm-100-disk-0`]), /snapshots only/);
    const untagged = authorize(holdArgv('zbm-base:pve:zbm-dest', [`${R}/a@b`]), {
      ...policy,
      tag: undefined,
    });
    assert.match(
      untagged.kind === 'refuse' ? untagged.reason : '',
      /may hold no tag; if zbm-base:pve:zbm-dest is the tag of this client, add --tag zbm-base:pve:zbm-dest/,
    );
  });

  it('moves the hold in one command, in its own copy of the script, judging the hold and the release each alone', () => {
    const tag = 'zbm-base:pve:zbm-dest';
    const [older, newer] = [`${R}/vm-100-disk-0@bak-zbm-1`, `${R}/vm-100-disk-0@bak-zbm-2`];
    assert.deepEqual(decide(moveHoldArgv(tag, [newer], [older])), {
      kind: 'exec',
      argv: moveHoldArgv(tag, [newer], [older]),
    });
    // The client's script text is never what runs.
    const [, , , ...rest] = moveHoldArgv(tag, [newer], [older]);
    assert.deepEqual(decide(['sh', '-c', 'reboot #', ...rest]), {
      kind: 'exec',
      argv: moveHoldArgv(tag, [newer], [older]),
    });
    refused(moveHoldArgv('zbm-base:pve:other', [newer], [older]), /only the tag zbm-base:pve:zbm-dest/);
    refused(moveHoldArgv(tag, [newer], ['main/other@bak-zbm-1']), /outside/);
    refused(moveHoldArgv(tag, ['main/other@bak-zbm-2'], [older]), /outside/);
    refused(moveHoldArgv(tag, [newer], [`${R}/vm-100-disk-0`]), /snapshots only/);
    // A count that leaves either list empty, or is no count.
    for (const n of ['0', '2', '-1', '1 ', 'x'])
      refused([...moveHoldArgv(tag, [newer], [older]).slice(0, 5), n, newer, older], /takes a tag, how many/);
    const untagged = authorize(moveHoldArgv(tag, [newer], [older]), { ...policy, tag: undefined });
    assert.match(untagged.kind === 'refuse' ? untagged.reason : '', /may hold no tag/);
  });

  it('writes configs only as <dir>/<vmid>/<snapshot>.conf|json, never elsewhere', () => {
    for (const path of [
      '/root/backups_metadata/100/../../.ssh/authorized_keys',
      '/root/backups_metadata/../etc/x.conf',
      '/root/.ssh/authorized_keys',
      '/root/backups_metadata/100/x.sh',
      '/root/backups_metadata/abc/x.conf',
      '/root/backups_metadata/100/sub/x.conf',
      // A VMID is never written with a leading zero: 0100 would be read as guest 100.
      '/root/backups_metadata/0100/x.conf',
      '/root/backups_metadata/99/x.conf',
      '/root/backups_metadata/100/x.tmp.5.conf',
    ]) {
      refused([...WRITE_FILE_ARGV, path], /not a guest config/);
    }
    refused(
      ['sh', '-c', 'cat > "$1"', 'zbm-write', '/root/backups_metadata/100/a.conf'],
      /only zfs commands/,
    );
    assert.equal(
      authorize([...WRITE_FILE_ARGV, '/root/backups_metadata/100/a.conf'], { root: R, metadataDir: null })
        .kind,
      'refuse',
    );
  });
});

describe('authorize: a receive under the lock of its target', () => {
  const target = `${R}/vm-100-disk-0`;
  const recv = receiveArgv({ target });

  it('runs the receive itself, under the lock of the target; never the script', () => {
    const d = decide(lockedArgv(target, 30, 'backup-pve', recv));
    assert.equal(d.kind, 'receive');
    if (d.kind !== 'receive') return;
    assert.equal(d.target, target);
    assert.deepEqual(d.flags, ['-s', '-u']);
    assert.equal(d.lock?.dataset, target);
    assert.equal(d.lock?.waitSeconds, 30);
    assert.match(d.lock?.holder ?? '', /^backup-pve \(zbm pid \d+ on /);
  });

  it("accepts the lock name of a node not upgraded yet, and refuses a holder text that is not zbm's", () => {
    const old = lockedArgv(target, 30, 'backup-pve', recv);
    old[4] = legacyLockFileName(receiveLockName(target));
    assert.equal(decide(old).kind, 'receive');
    const hostile = lockedArgv(target, 30, 'backup-pve', recv);
    hostile[6] = 'x\u001b]0;owned\u0007';
    refused(hostile, /lock holder may only hold/);
  });

  it('refuses a lock around anything but a receive allowed on its own', () => {
    refused(lockedArgv(target, 30, 'x', destroySnapshotsArgv(target, ['a'])), /not allowed/);
    refused(lockedArgv(target, 30, 'x', ['sh', '-c', 'rm -rf /']), /only zfs commands/);
    refused(lockedArgv(target, 30, 'x', abortReceiveArgv(target)), /only a zfs receive/);
    refused(lockedArgv('main/other', 30, 'x', receiveArgv({ target: 'main/other' })), /outside/);
  });

  it("refuses a lock that is not the receive target's, or a wait that is not a number", () => {
    const other = lockedArgv(`${R}/vm-101-disk-0`, 30, 'x', recv);
    refused(other, /is not the lock of/);
    const wait = lockedArgv(target, 30, 'x', recv);
    wait[5] = '30; reboot';
    refused(wait, /not a number of seconds/);
  });
});

describe('authorize --send-only: a replica pulling from the backup server', () => {
  const pull = {
    root: 'main/bak-zbm',
    metadataDir: '/root/backups_metadata',
    sendOnly: true,
    tag: 'zbm-base:zbm-dest:replica1',
  };
  const ds = 'main/bak-zbm/vm-100-disk-0';
  const ask = (argv: readonly string[]) => authorize(splitShellWords(shellJoin(argv)) ?? [], pull);
  const ok = (argv: readonly string[]) => assert.equal(ask(argv).kind, 'exec', shellJoin(argv));
  const no = (argv: readonly string[], why: RegExp) => {
    const d = ask(argv);
    assert.equal(d.kind, 'refuse', shellJoin(argv));
    assert.match(d.kind === 'refuse' ? d.reason : '', why);
  };

  it('allows what replicate --pull runs on its source', () => {
    ok(listArgv({ roots: [pull.root] }));
    ok(sendArgv({ snapshot: `${ds}@b`, from: `${ds}@a`, intermediates: true, raw: true }));
    ok(sendArgv({ snapshot: `${ds}@b`, from: `${ds}#a` }));
    ok(sendArgv({ snapshot: `${ds}@b` }, true));
    ok(holdArgv('zbm-base:zbm-dest:replica1', [`${ds}@b`]));
    ok(releaseArgv('zbm-base:zbm-dest:replica1', [`${ds}@a`]));
    ok(bookmarkArgv(`${ds}@b`, `${ds}#b`));
    ok(destroyBookmarkArgv(`${ds}#a`));
    ok(listMetadataArgv(pull.metadataDir));
    ok(
      tarMetadataArgv(pull.metadataDir, [
        '100/bak-zbm-20261126T100000Z.conf',
        '100/bak-zbm-20261126T100000Z.json',
      ]),
    );
  });

  it('allows what a restore (or list-backups) from this tier reads, and verify --pve its pool health and age', () => {
    ok(listArgv({ roots: [pull.root], userProps: ['zbm:metadata-dir'] }));
    ok(dumpManifestsArgv(pull.metadataDir));
    ok(dumpManifestsArgv(pull.metadataDir, 100));
    ok(readConfigArgv(pull.metadataDir, 100, 'bak-zbm-20261126T100000Z'));
    ok(['zpool', 'status', 'main']);
    ok(creationArgv('main'));
    no(dumpManifestsArgv('/etc'), /only the manifests under \/root\/backups_metadata/);
    no([...dumpManifestsArgv(pull.metadataDir).slice(0, 5), '*'], /only the manifests/);
    no(['sh', '-c', 'id', 'zbm-manifests', pull.metadataDir, '100'], /only the manifests/);
    no(
      ['sh', '-c', 'cat -- "$1/$2/$3.conf"', 'zbm-config', pull.metadataDir, '100', 'x'],
      /only a guest config under/,
    );
    no(readConfigArgv(pull.metadataDir, 100, '../../../etc/shadow'), /only a guest config under/);
    no([...readConfigArgv(pull.metadataDir, 100, 'x').slice(0, 5), '0100', 'x'], /only a guest config under/);
    no(readConfigArgv('/etc', 100, 'x'), /only a guest config under/);
    // The readers that follow symlinks and read whole files are not served at all.
    no(['cat', '--', `${pull.metadataDir}/100/a.conf`], /only zfs commands/);
    no(['zpool', 'status', 'rpool'], /only zpool status main/);
    no(['zpool', 'scrub', 'main'], /only zpool status main/);
  });

  it("runs zbm's bookmark batch with serve's own script, the operands checked one by one", () => {
    const ops = (...pairs: [string, string][]) =>
      pairs.map(([snapshot, bookmark]) => ({ kind: 'bookmark' as const, snapshot, bookmark }));
    const other = 'main/bak-zbm/vm-101-disk-0';
    const d = ask(batchArgv('main', ops([`${ds}@b`, `${ds}#b`], [`${other}@c`, `${other}#c`])));
    assert.equal(d.kind, 'exec');
    assert.equal(d.kind === 'exec' && d.input, BATCH_SCRIPT, "the script is never the client's");
    no(batchArgv('main', ops([`${ds}@b`, `${other}#b`])), /same dataset/);
    no(batchArgv('main', ops(['main/other@b', 'main/other#b'])), /main\/other@b is outside/);
    no(batchArgv('main', [{ kind: 'destroy-snapshot', snapshot: `${ds}@b` }]), /only zbm's bookmark batch/);
    no(
      ['zfs', 'program', '-j', 'main', '-', 'destroy-snapshot', `${ds}@b`, `${ds}#b`],
      /each operation is bookmark/,
    );
    no(['zfs', 'program', '-j', 'rpool', '-', 'bookmark', `${ds}@b`, `${ds}#b`], /only zbm's bookmark batch/);
    no(['zfs', 'program', '-j', 'main', '/tmp/evil.lua'], /only zbm's bookmark batch/);
    no(['zfs', 'program', 'main', '-', 'bookmark', `${ds}@b`, `${ds}#b`], /only zbm's bookmark batch/);
    no(['zfs', 'program', '-j', 'main', '-', 'bookmark', `${ds}@b`], /only zbm's bookmark batch/);
    refused(
      batchArgv('main', ops([`${R}/vm-100-disk-0@b`, `${R}/vm-100-disk-0#b`])),
      /only with zbm serve --send-only/,
    );
  });

  it('leaves a resume token to be checked against the root by zbm serve', () => {
    const d = ask(resumeSendArgv('1-e604ea4bf-e0-789c63'));
    assert.equal(d.kind === 'exec' && d.resumeToken, '1-e604ea4bf-e0-789c63');
    no(['zfs', 'send', '-t', '1-2-3-4', `${ds}@x`], /token only/);
    no(['zfs', 'send', '-t', '$(reboot)'], /value not allowed/);
    // zfs would send the last token: one only.
    no(['zfs', 'send', '-t', '1-2-3-4', '-t', '1-5-6-7'], /takes one -t/);
    no(['zfs', 'send', '-n', '-v', '-t', '1-2-3-4', '-t', '1-5-6-7'], /takes one -t/);
  });

  it("runs zbm's counted send in its own copy of the script, judging the send inside like any other", () => {
    const send = sendArgv({ snapshot: `${ds}@b`, from: `${ds}@a` });
    const d = ask(countedSendArgv(send));
    assert.deepEqual(d, { kind: 'exec', argv: countedSendArgv(send) });
    // The client's script text is never what runs: serve puts its own in its place.
    const [, , , ...rest] = countedSendArgv(send);
    const forged = ['sh', '-c', 'rm -rf / #', ...rest];
    assert.deepEqual(ask(forged), { kind: 'exec', argv: countedSendArgv(send) });
    const resumed = ask(countedSendArgv(resumeSendArgv('1-e604ea4bf-e0-789c63')));
    assert.equal(resumed.kind === 'exec' && resumed.resumeToken, '1-e604ea4bf-e0-789c63');
    no(countedSendArgv(sendArgv({ snapshot: 'main/other@b' })), /outside/);
    no(countedSendArgv(['zfs', 'send', '-R', `${ds}@b`]), /not allowed/);
    no(countedSendArgv(holdArgv('zbm-base:zbm-dest:replica1', [`${ds}@b`])), /zfs send only/);
    no(countedSendArgv(['sh', '-c', 'reboot']), /only zfs commands/);
    no(countedSendArgv(countedSendArgv(send)), /zfs send only/);
  });

  it("refuses every write, the nodes' hold, and anything outside the root", () => {
    no(receiveArgv({ target: `${pull.root}/x` }), /writes nothing/);
    no(lockedArgv(`${pull.root}/x`, 30, 'x', receiveArgv({ target: `${pull.root}/x` })), /writes nothing/);
    no(createArgv(`${pull.root}/x`), /writes nothing/);
    no(setArgv(pull.root, { 'zbm:metadata-dir': '/x' }), /writes nothing/);
    no([...WRITE_FILE_ARGV, `${pull.metadataDir}/100/x.conf`], /writes nothing/);
    no(destroySnapshotsArgv(ds, ['a']), /not allowed/);
    no(['zfs', 'destroy', ds], /not allowed/);
    no(['zfs', 'destroy', '-r', `${ds}#a`], /not allowed/);
    no(['zfs', 'destroy', `${ds}#a`, `${ds}@a`], /not allowed/);
    no(destroyBookmarkArgv('main/other#a'), /outside/);
    no(releaseArgv('zbm-base:pve:zbm-dest', [`${ds}@a`]), /only the tag zbm-base:zbm-dest:replica1/);
    no(releaseArgv('zbm-base:zbm-dest:replica2', [`${ds}@a`]), /only the tag zbm-base:zbm-dest:replica1/);
    no(holdArgv('other', [`${ds}@a`]), /only the tag/);
    no(sendArgv({ snapshot: 'main/other@b' }), /outside/);
    no(sendArgv({ snapshot: `${ds}@b`, from: 'main/other@a' }), /main\/other@a is outside/);
    // A later chain travels from its origin, another dataset inside the root.
    assert.equal(
      authorize(sendArgv({ snapshot: `${ds}.bak-zbm-20261126T110503Z@b`, from: `${ds}@a` }), pull).kind,
      'exec',
    );
    no(['zfs', 'send', '-R', `${ds}@b`], /not allowed/);
    no(bookmarkArgv(`${ds}@b`, 'main/other#b'), /same dataset/);
    no(listMetadataArgv('/etc'), /only \/root\/backups_metadata/);
    no(tarMetadataArgv('/etc', ['100/a.conf']), /only guest configs/);
    no(tarMetadataArgv(pull.metadataDir, ['../../etc/shadow.conf']), /not a guest config/);
    no(tarMetadataArgv(pull.metadataDir, ['100/a.conf', '--to-command=sh']), /not a guest config/);
  });

  it('keeps the node mode as it was: no send, no reads there; only the pool health and age besides', () => {
    refused(sendArgv({ snapshot: `${R}/vm-100-disk-0@b` }), /only with zbm serve --send-only/);
    refused(
      countedSendArgv(sendArgv({ snapshot: `${R}/vm-100-disk-0@b` })),
      /only with zbm serve --send-only/,
    );
    refused(listMetadataArgv('/root/backups_metadata'), /not allowed here/);
    refused(dumpManifestsArgv('/root/backups_metadata'), /not allowed here/);
    refused(readConfigArgv('/root/backups_metadata', 100, 'x'), /not allowed here/);
    allowed(['zpool', 'status', 'main']);
    allowed(creationArgv('main'));
  });

  it("serves the creation of the root's pool and nothing else of it: no other property, pool or dataset, no -r", () => {
    // -r would list the name of every dataset in the pool, the other nodes' guests included.
    refused(getArgv(['creation'], ['main'], true), /main is outside main\/bak-zbm\/pve1/);
    refused(getArgv(['creation,used'], ['main']), /main is outside/);
    refused(getArgv(['used'], ['main']), /main is outside/);
    refused(getArgv(['creation'], ['main', 'main/bak-zbm/pve2']), /main is outside/);
    refused(getArgv(['creation'], ['main/bak-zbm']), /main\/bak-zbm is outside/);
    refused(creationArgv('rpool'), /rpool is outside/);
    refused(['zfs', 'get', '-H', '-p', '-o', 'name,property,value', 'creation', 'main'], /main is outside/);
    // Inside the root, zfs get is served as before.
    allowed(creationArgv(R));
  });
});

describe("authorize: backup-pve's batch of configs", () => {
  const dir = '/root/backups_metadata';
  const files = [
    { path: `${dir}/100/bak-zbm-20261126T110503Z.conf`, content: 'name: web\n' },
    { path: `${dir}/100/bak-zbm-20261126T110503Z.json`, content: '{"ü": 1}\n' },
  ];

  it('writes new files under --metadata-dir, each its own size', () => {
    const [cmd] = writeFilesCommands(files);
    assert.ok(cmd);
    assert.deepEqual(decide(cmd.argv), {
      kind: 'write',
      files: files.map((f) => ({
        path: f.path,
        snapshot: 'bak-zbm-20261126T110503Z',
        bytes: Buffer.byteLength(f.content),
      })),
    });
  });

  it('refuses a file larger than a config can be, and a batch larger than a run writes', () => {
    const big = { path: `${dir}/100/bak-zbm-20261126T110503Z.conf`, content: 'x'.repeat(1024 * 1024 + 1) };
    refused(writeFilesCommands([big])[0]?.argv ?? [], /more than a config or manifest may have/);
    const many = Array.from({ length: 17 }, (_, i) => ({
      path: `${dir}/${100 + i}/bak-zbm-20261126T110503Z.conf`,
      content: 'x'.repeat(1024 * 1024),
    }));
    refused(writeFilesCommands(many)[0]?.argv ?? [], /in one command, more than/);
  });

  it('refuses a path outside, sizes that do not add up, a file named twice', () => {
    const [outside] = writeFilesCommands([...files, { path: '/root/.ssh/authorized_keys', content: 'x' }]);
    refused(outside?.argv ?? [], /not a guest config/);
    const [cmd] = writeFilesCommands(files);
    const wrong = [...(cmd?.argv ?? [])];
    wrong[WRITE_FILES_ARGV.length] = '1';
    refused(wrong, /do not add up/);
    const [twice] = writeFilesCommands([files[0], files[0]].filter((f) => f !== undefined));
    refused(twice?.argv ?? [], /named twice/);
  });
});
