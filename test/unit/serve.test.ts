import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WRITE_FILE_ARGV } from '../../src/backup/metadata.ts';
import { shellJoin } from '../../src/host/quote.ts';
import { authorize, type Decision } from '../../src/serve/policy.ts';
import { splitShellWords } from '../../src/serve/words.ts';
import {
  abortReceiveArgv,
  createArgv,
  destroySnapshotsArgv,
  getArgv,
  holdArgv,
  holdsArgv,
  listArgv,
  receiveArgv,
  releaseArgv,
  setArgv,
} from '../../src/zfs/argv.ts';
import { hostileStrings } from '../support/hostile.ts';

const policy = { root: 'main/bak-zbm/pve1', metadataDir: '/root/backups_metadata' };
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
    const recv = decide(receiveArgv({ target: `${R}/vm-100-disk-0` }));
    assert.deepEqual(recv.kind === 'exec' && recv.argv, [
      'zfs',
      'receive',
      '-s',
      '-u',
      '-x',
      'mountpoint',
      '-x',
      'canmount',
      '-x',
      'sharenfs',
      '-x',
      'sharesmb',
      `${R}/vm-100-disk-0`,
    ]);
    assert.deepEqual(
      decide([...WRITE_FILE_ARGV, '/root/backups_metadata/100/bak-zbm-20261126T110503Z.conf']),
      {
        kind: 'write',
        path: '/root/backups_metadata/100/bak-zbm-20261126T110503Z.conf',
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
    refused(['zfs', 'receive', '-o', 'mountpoint=/root/.ssh', `${R}/x`], /-o is not allowed/);
    refused(['zfs', 'receive', '-d', 'main'], /-d is not allowed/);
    refused(listArgv({ roots: ['main/bak-zbm/pve2'] }), /outside main\/bak-zbm\/pve1/);
    refused(listArgv({ roots: ['main/bak-zbm/pve1x'] }), /outside/);
    refused(listArgv({ roots: ['rpool'] }), /outside/);
    refused(createArgv('main/other'), /outside/);
    refused(['zfs', 'set', 'mountpoint=/etc', R], /only zbm's own properties/);
    refused(['zfs', 'set', 'zbm:x=1', 'readonly=off', R], /only zbm's own properties/);
    refused(holdArgv('zbm-base:zbm-dest:zbm-replica', [`${R}/a@b`]), /own base tag/);
    refused(releaseArgv('admin', [`${R}/a@b`]), /own base tag/);
    refused(['sh', '-c', 'rm -rf /'], /only zfs commands/);
    refused(['bash'], /only zfs commands/);
    refused(['zfs', 'list', '-H', '--', R], /-- is not allowed/);
  });

  it('writes configs only as <dir>/<vmid>/<snapshot>.conf|json, never elsewhere', () => {
    for (const path of [
      '/root/backups_metadata/100/../../.ssh/authorized_keys',
      '/root/backups_metadata/../etc/x.conf',
      '/root/.ssh/authorized_keys',
      '/root/backups_metadata/100/x.sh',
      '/root/backups_metadata/abc/x.conf',
      '/root/backups_metadata/100/sub/x.conf',
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
