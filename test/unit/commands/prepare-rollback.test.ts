/**
 * `zbm prepare-rollback` against fake hosts (the node's zfs and the backup server over "ssh"): it
 * destroys a zbm snapshot only when the backup server was seen to hold it (same guid), refuses
 * otherwise with both sides named, and destroys nothing when the server cannot be reached. The
 * real-ZFS version is the rollback case of test/integration/proxmox.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { type PrepareRollbackOptions, prepareRollback } from '../../../src/commands/prepare-rollback.ts';
import { UsageError } from '../../../src/errors.ts';
import type { Host, Invocation } from '../../../src/host/host.ts';
import { DEFAULT_LOCK_WAIT_SECONDS } from '../../../src/lock/lock.ts';

const P = 'bak-zbm-';
const D0 = 'rpool/data/vm-100-disk-0';
const COPY = 'main/bak-zbm/vm-100-disk-0';

/** `zfs list -Hp` rows (LIST_COLUMNS) of a volume and its snapshots, each `[short, guid, createtxg]`. */
function listing(ds: string, snaps: readonly (readonly [string, string, number])[]): string {
  const row = (name: string, type: string, guid: string, txg: number) =>
    `${[name, type, guid, txg, txg, 0, 0, type === 'snapshot' ? '-' : 0, 'off', type === 'snapshot' ? 0 : '-', '-'].join('\t')}\n`;
  return row(ds, 'volume', '1', 1) + snaps.map(([s, g, t]) => row(`${ds}@${s}`, 'snapshot', g, t)).join('');
}

/** A host whose `zfs list` prints `list`, whose other commands succeed (or all fail with `down`); every call kept. */
class FakeHost implements Host {
  readonly calls: string[][] = [];
  constructor(
    readonly name: string,
    readonly isLocal: boolean,
    private readonly list: string,
    private readonly down?: string,
  ) {}
  invocation(argv: readonly string[]): Invocation {
    this.calls.push([...argv]);
    if (this.down) return { file: 'sh', args: ['-c', 'printf "%s\\n" "$1" >&2; exit 255', 'ssh', this.down] };
    if (argv[1] === 'list') return { file: 'sh', args: ['-c', 'printf "%s" "$1"', 'zfs', this.list] };
    return { file: 'true', args: [] };
  }
  async close(): Promise<void> {}
}

// On the node: zbm 1 (sent), the admin's @before, zbm 2 (sent), zbm 3 (backup-pve took it and failed to send it).
const NODE = listing(D0, [
  [`${P}1`, '11', 10],
  ['before', '12', 11],
  [`${P}2`, '13', 12],
  [`${P}3`, '14', 13],
]);
const SERVER_WITHOUT_3 = listing(COPY, [
  [`${P}1`, '11', 5],
  [`${P}2`, '13', 6],
]);
// The same name on the server, another snapshot.
const SERVER_IMPOSTOR_3 = listing(COPY, [
  [`${P}1`, '11', 5],
  [`${P}2`, '13', 6],
  [`${P}3`, '999', 7],
]);
const SERVER_ALL = listing(COPY, [
  [`${P}1`, '11', 5],
  [`${P}2`, '13', 6],
  [`${P}3`, '14', 7],
]);

describe('prepare-rollback: what the backup server holds', () => {
  let work = '';
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'zbm-rollback-'));
    process.env.ZBM_LOCK_DIR = join(work, 'locks');
    mkdirSync(join(work, 'pve/nodes/pve1/qemu-server'), { recursive: true });
    writeFileSync(
      join(work, 'pve/.vmlist'),
      JSON.stringify({ version: 1, ids: { 100: { node: 'pve1', type: 'qemu', version: 1 } } }),
    );
    writeFileSync(
      join(work, 'pve/storage.cfg'),
      'zfspool: local-zfs\n\tpool rpool/data\n\tcontent images,rootdir\n',
    );
    writeFileSync(
      join(work, 'pve/nodes/pve1/qemu-server/100.conf'),
      `scsi0: local-zfs:vm-100-disk-0,size=1G\n`,
    );
  });
  after(() => {
    delete process.env.ZBM_LOCK_DIR;
    rmSync(work, { recursive: true, force: true });
  });

  async function run(extra: Partial<PrepareRollbackOptions>, server: string, down?: string) {
    const local = new FakeHost('pve1', true, NODE);
    const remote = new FakeHost('zbm-dest', false, server, down);
    const lines: string[] = [];
    let stdout = '';
    const opts: PrepareRollbackOptions = {
      vmid: 100,
      snapshot: 'before',
      prefix: P,
      lockWait: DEFAULT_LOCK_WAIT_SECONDS,
      node: 'pve1',
      yes: true,
      remote: 'zbm-dest',
      remoteZfsRoot: 'main/bak-zbm',
      ...extra,
    };
    const code = await prepareRollback(opts, createLogger({ write: (l) => lines.push(l), journal: false }), {
      out: (s) => {
        stdout += s;
      },
      local,
      remote,
      pveRoot: join(work, 'pve'),
    });
    const destroys = local.calls.filter((c) => c[1] === 'destroy').map((c) => c[2]);
    return { code, stderr: lines.join(''), stdout, destroys, remote };
  }

  it('destroys the zbm snapshots newer than the target when the server has each of them by guid', async () => {
    const r = await run({}, SERVER_ALL);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.destroys, [`${D0}@${P}2,${P}3`]);
    // The server's copy of the guest's disk, listed over the host layer.
    assert.deepEqual(r.remote.calls, [
      [
        'zfs',
        'list',
        '-H',
        '-p',
        '-d',
        '2',
        '-t',
        'filesystem,volume,snapshot,bookmark',
        '-o',
        r.remote.calls[0]?.[9] ?? '',
        // The root's children: each disk's chains (plan/chain.ts) lie side by side there.
        'main/bak-zbm',
      ],
    ]);
    assert.match(r.stdout, /each of them is on zbm-dest:main\/bak-zbm\/vm-100-disk-0 \(same guid\)/);
  });

  it("counts a snapshot the server holds in a later chain of the disk, and none of another disk's", async () => {
    const later = listing(`${COPY}.${P}20261130T100000Z`, [[`${P}3`, '14', 7]]);
    const r = await run({}, SERVER_WITHOUT_3 + later);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.destroys, [`${D0}@${P}2,${P}3`]);
    const other = listing(`main/bak-zbm/vm-101-disk-0.${P}20261130T100000Z`, [[`${P}3`, '14', 7]]);
    const refused = await run({}, SERVER_WITHOUT_3 + other);
    assert.equal(refused.code, 1, refused.stderr);
    assert.deepEqual(refused.destroys, []);
  });

  for (const [what, server] of [
    ['never reached the server', SERVER_WITHOUT_3],
    ['is on the server by name only (another guid)', SERVER_IMPOSTOR_3],
  ] as const) {
    it(`refuses, destroying nothing, when a zbm snapshot that would go ${what}; --force destroys it, saying it is lost`, async () => {
      const r = await run({}, server);
      assert.equal(r.code, 1);
      assert.deepEqual(r.destroys, []);
      assert.match(
        r.stderr,
        /^error: guest 100 on pve1: nothing destroyed: zbm snapshots the backup server zbm-dest does not have/,
      );
      assert.match(
        r.stderr,
        /pve1:rpool\/data\/vm-100-disk-0: bak-zbm-3 \(guid 14\) not on zbm-dest:main\/bak-zbm\/vm-100-disk-0/,
      );
      assert.match(r.stderr, /--force/);

      const f = await run({ force: true }, server);
      assert.equal(f.code, 0, f.stderr);
      assert.deepEqual(f.destroys, [`${D0}@${P}2,${P}3`]);
      assert.match(f.stdout, /bak-zbm-3 not on zbm-dest:main\/bak-zbm\/vm-100-disk-0: lost \(--force\)/);
      assert.match(
        f.stderr,
        /warning: guest 100: --force destroyed restore points zbm-dest does not have, which exist nowhere else now: rpool\/data\/vm-100-disk-0@bak-zbm-3\n/,
      );
      assert.match(f.stderr, /the backup server keeps every restore point it received, but/);
    });
  }

  it('--dry-run prints the refusal and destroys nothing; --json gives it as data', async () => {
    const r = await run({ dryRun: true, json: true, yes: false }, SERVER_WITHOUT_3);
    assert.equal(r.code, 1);
    assert.deepEqual(r.destroys, []);
    const j = JSON.parse(r.stdout) as {
      mode: string;
      refusal: { kind: string; host: string; datasets: { missing: { short: string }[] }[] };
    };
    assert.equal(j.mode, 'refused');
    assert.equal(j.refusal.host, 'zbm-dest');
    assert.deepEqual(
      j.refusal.datasets[0]?.missing.map((s) => s.short),
      [`${P}3`],
    );
  });

  it('refuses, naming the server, when it cannot be reached; destroys nothing', async () => {
    const r = await run({}, SERVER_ALL, 'ssh: connect to host zbm-dest port 22: Connection refused');
    assert.equal(r.code, 1);
    assert.deepEqual(r.destroys, []);
    assert.match(
      r.stderr,
      /^error: guest 100 on pve1: nothing destroyed: cannot see which zbm snapshots the backup server has \(zbm-dest:main\/bak-zbm\/vm-100-disk-0\): cannot reach zbm-dest over ssh: connect to host zbm-dest port 22: Connection refused; run again when zbm-dest answers/,
    );
  });

  it('without --remote: refuses, naming the node, the dataset and the flags; --force destroys unchecked, saying so', async () => {
    const r = await run({ remote: undefined, remoteZfsRoot: undefined }, SERVER_ALL);
    assert.equal(r.code, 1);
    assert.deepEqual(r.destroys, []);
    assert.deepEqual(r.remote.calls, []);
    assert.match(r.stderr, /pve1:rpool\/data\/vm-100-disk-0: bak-zbm-2, bak-zbm-3\n/);
    assert.match(r.stderr, /--remote <host> --remote-zfs-root <dataset>/);

    const f = await run({ remote: undefined, remoteZfsRoot: undefined, force: true }, SERVER_ALL);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(f.destroys, [`${D0}@${P}2,${P}3`]);
    assert.match(f.stderr, /--force destroyed zbm snapshots without checking that a backup server has them/);
  });

  it('--remote without --remote-zfs-root is a usage error', async () => {
    await assert.rejects(run({ remoteZfsRoot: undefined }, SERVER_ALL), (e) => e instanceof UsageError);
  });
});
