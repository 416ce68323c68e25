import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandLabel, describeFailure, type Failure, showCommandLines } from '../../../src/host/failure.ts';

const LIST = ['zfs', 'list', '-H', '-p', '-r', '-t', 'filesystem,volume', 'rpool/data'];

function failure(f: Partial<Failure>): Failure {
  return { host: 'pve1', remote: false, argv: LIST, exitCode: 1, stderr: '', ...f };
}

function enoent(): NodeJS.ErrnoException {
  return Object.assign(new Error('spawn zfs ENOENT'), { code: 'ENOENT' });
}

describe('messages about failed commands: the cause first, the command line only with --verbose', () => {
  it('a program that is not installed names its package', () => {
    assert.equal(
      describeFailure(failure({ spawnError: enoent(), exitCode: null })),
      'zfs is not installed on pve1 (zfsutils-linux)',
    );
    // ssh itself missing here, for a remote host.
    assert.equal(
      describeFailure(failure({ host: 'zbm-dest', remote: true, spawnError: enoent(), exitCode: null })),
      'ssh is not installed on this host (openssh-client), so zbm-dest cannot be reached',
    );
    // Missing on the remote side: the remote shell's "not found", exit code 127.
    assert.equal(
      describeFailure(
        failure({
          host: 'zbm-dest',
          remote: true,
          exitCode: 127,
          stderr: 'bash: line 1: zfs: command not found\n',
        }),
      ),
      'zfs is not installed on zbm-dest (zfsutils-linux)',
    );
    assert.equal(
      describeFailure(
        failure({ host: 'b', remote: true, exitCode: 127, stderr: 'sh: 1: zpool: not found\n' }),
      ),
      'zpool is not installed on b (zfsutils-linux)',
    );
  });

  it('a host ssh cannot reach says so, with ssh own reason, not the remote command', () => {
    assert.equal(
      describeFailure(
        failure({
          host: 'nosuchhost',
          remote: true,
          exitCode: 255,
          stderr: 'ssh: Could not resolve hostname nosuchhost: Name or service not known\n',
        }),
      ),
      'cannot reach nosuchhost over ssh: Could not resolve hostname nosuchhost: Name or service not known',
    );
    assert.equal(
      describeFailure(
        failure({
          host: 'b',
          remote: true,
          exitCode: 255,
          stderr: 'root@b: Permission denied (publickey).\n',
        }),
      ),
      'cannot reach b over ssh: root@b: Permission denied (publickey).',
    );
    // 255 from the remote command itself, without ssh's words, is the command's failure.
    assert.equal(
      describeFailure(failure({ host: 'b', remote: true, exitCode: 255, stderr: 'qm: guest agent died\n' })),
      'on b: qm: guest agent died (zfs list, exit code 255)',
    );
  });

  it("a command's own error comes first, with the command's name and exit code after it", () => {
    assert.equal(
      describeFailure(failure({ stderr: "cannot open 'rpool/data': dataset does not exist\n" })),
      "on pve1: cannot open 'rpool/data': dataset does not exist (zfs list, exit code 1)",
    );
    assert.equal(describeFailure(failure({ stderr: '' })), 'on pve1: zfs list failed (exit code 1)');
    assert.equal(describeFailure(failure({ exitCode: null, timedOut: true })), 'on pve1: zfs list timed out');
    assert.equal(
      describeFailure(failure({ exitCode: null, signal: 'SIGKILL' })),
      'on pve1: zfs list was stopped (SIGKILL)',
    );
    assert.equal(
      describeFailure(failure({ host: 'b', remote: true, exitCode: null, signal: 'SIGTERM' })),
      'the ssh session to b running zfs list was stopped (SIGTERM)',
    );
  });

  it('--verbose adds the whole command line', () => {
    showCommandLines(true);
    try {
      assert.equal(
        describeFailure(failure({ stderr: 'boom' })),
        'on pve1: boom (zfs list, exit code 1); command: zfs list -H -p -r -t filesystem,volume rpool/data',
      );
    } finally {
      showCommandLines(false);
    }
  });

  it("labels zfs and zpool by their subcommand and zbm's sh wrappers by their name", () => {
    assert.equal(commandLabel(['zpool', 'status', 'main']), 'zpool status');
    assert.equal(commandLabel(['/usr/sbin/zfs', '-V']), 'zfs');
    assert.equal(commandLabel(['sh', '-c', 'exit 1', 'zbm-lock', 'f']), 'zbm-lock');
    assert.equal(commandLabel(['cat', '--', '/x']), 'cat');
  });
});
