import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalHost } from '../../../src/host/local.ts';
import { run } from '../../../src/host/process.ts';
import { SshHost } from '../../../src/host/ssh.ts';

// An ssh client on a master connection exits when the master tells it the command's exit status;
// the master, which holds the client's output pipes, may write the command's last output after
// that. This stand-in does the same: it exits at once, and its output comes 1.5 s later from a
// process that holds its stdout.
const LATE = `#!/bin/sh
[ "$1" = -O ] && exit 0
( sleep 1.5; printf '%s\\n' 'main/b@bak-zbm-1	zbm-base:pve:backup1	1700000000' ) &
exit 0
`;

describe("an ssh session's output that comes after the client exited", () => {
  const dir = mkdtempSync(join(tmpdir(), 'zbm-ssh-late-'));
  const path = process.env.PATH;
  before(() => {
    writeFileSync(join(dir, 'ssh'), LATE);
    chmodSync(join(dir, 'ssh'), 0o755);
    process.env.PATH = `${dir}:${path ?? ''}`;
  });
  after(() => {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  });

  it('is read whole: a listing or a lookup is never cut short', async () => {
    const host = new SshHost('backup1', { connectRetry: null });
    try {
      const { stdout } = await run(host, ['zfs', 'holds', '-H', '-p', 'main/b@bak-zbm-1']);
      assert.equal(stdout, 'main/b@bak-zbm-1\tzbm-base:pve:backup1\t1700000000\n');
    } finally {
      await host.close();
    }
  });

  it("a local command's grandchild that holds its output is waited for a moment only", async () => {
    const t0 = performance.now();
    const { stdout } = await run(new LocalHost('here'), ['sh', '-c', '( sleep 3; echo late ) & exit 0']);
    assert.equal(stdout, '');
    assert.ok(performance.now() - t0 < 2500);
  });
});
