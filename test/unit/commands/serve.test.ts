/**
 * `zbm serve` as sshd runs it (SSH_ORIGINAL_COMMAND, the stream on stdin) against a fake `zfs` on
 * PATH that records what it was asked and what it received: the stream reaches zfs byte for byte
 * when it passes, and nothing reaches zfs (or the metadata directory) when it does not. The
 * real-ZFS version is test/integration/serve.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { shellJoin } from '../../../src/host/quote.ts';
import { lockedArgv } from '../../../src/lock/remote.ts';
import { dumpManifestsArgv, readConfigArgv } from '../../../src/metadata/manifest.ts';
import { WRITE_FILE_ARGV, writeFilesCommands } from '../../../src/metadata/write.ts';
import { receiveArgv, sendArgv } from '../../../src/zfs/argv.ts';
import { countedSendArgv, streamBytes } from '../../../src/zfs/counted-send.ts';
import { moveHoldArgv } from '../../../src/zfs/move-hold.ts';
import { refusedByOlderServe } from '../../../src/zfs/older-serve.ts';

const FAKE_ZFS = `#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE/calls"
case "$1" in
  list) if [ -f "$FAKE/list" ]; then cat "$FAKE/list"; else echo "cannot open: dataset does not exist" >&2; exit 1; fi ;;
  get) cat "$FAKE/get" ;;
  send) cat "$FAKE/send" ;;
  receive) printf '%s\\n' "$@" > "$FAKE/receive.argv"; cat > "$FAKE/received" ;;
  hold|release) [ ! -f "$FAKE/fail-$1" ] || { echo "cannot $1: injected" >&2; exit 1; } ;;
  *) exit 1 ;;
esac
`;

const work = mkdtempSync(join(tmpdir(), 'zbm-serve-'));
const bin = join(work, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'zfs'), FAKE_ZFS);
chmodSync(join(bin, 'zfs'), 0o755);
const main = new URL('../../../src/main.ts', import.meta.url).pathname;
const ROOT = 'main/bak-zbm';
const T = `${ROOT}/vm-100-disk-0`;

/** `zfs list -H -p` lines: the target's snapshots, oldest first. */
function listing(snaps: readonly { short: string; guid: string }[], dataset = T): string {
  const ds = `${dataset}\tvolume\t1\t1\t1700000000\t0\t0\t0\toff\t-\t-\n`;
  return (
    ds +
    snaps
      .map((s, i) => `${dataset}@${s.short}\tsnapshot\t${s.guid}\t${10 + i}\t1700000000\t0\t0\t-\t-\t0\t-\n`)
      .join('')
  );
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Each test's own fake zfs state and metadata directory: the tests run at the same time. */
let made = 0;
function place(): { fake: string; meta: string } {
  made++;
  const fake = join(work, `fake${made}`);
  mkdirSync(fake);
  return { fake, meta: join(work, `meta${made}`) };
}

function serve(
  where: { fake: string; meta: string },
  argv: readonly string[],
  input: Buffer | string | null,
  extra: readonly string[] = [],
): Promise<Run> {
  const { fake, meta } = where;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', main, 'serve', '--root', ROOT, '--metadata-dir', meta, ...extra],
      {
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH ?? ''}`,
          FAKE: fake,
          SSH_ORIGINAL_COMMAND: shellJoin(argv),
          ZBM_LOCK_DIR: join(work, 'locks'),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {});
    // null: stdin stays open while serve runs, as a client's ssh keeps it.
    if (input === null) child.on('exit', () => child.stdin.end());
    else child.stdin.end(input);
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      }),
    );
  });
}

/** A BEGIN record of a plain stream of one snapshot, then body. */
function stream(toname: string, fromguid: bigint, body: Buffer): Buffer {
  const head = Buffer.alloc(312);
  const v = new DataView(head.buffer, head.byteOffset, head.length);
  v.setBigUint64(8, 0x2f5bacbacn, true);
  v.setBigUint64(16, (0x80004n << 2n) | 1n, true);
  v.setBigUint64(24, BigInt(Math.floor(Date.now() / 1000) - 60), true);
  v.setUint32(32, 3, true);
  v.setUint32(36, 0xc, true);
  v.setBigUint64(40, 777n, true);
  v.setBigUint64(48, fromguid, true);
  head.write(toname, 56, 'latin1');
  return Buffer.concat([head, body]);
}

/** A snapshot name of a minute ago, as backup-pve gives them. */
function recent(minutesAgo = 1): string {
  return `bak-zbm-${new Date(Date.now() - minutesAgo * 60_000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

describe('zbm serve: what reaches zfs and the metadata directory', { concurrency: true }, () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  it('hands an honest incremental to zfs byte for byte, streamed, with the forced excludes', async () => {
    const at = place();
    const { fake } = at;
    writeFileSync(join(fake, 'list'), listing([{ short: recent(60), guid: '555' }]));
    const data = stream(`rpool/data/vm-100-disk-0@${recent()}`, 555n, randomBytes(3 * 1024 * 1024 + 17));
    const r = await serve(at, lockedArgv(T, 5, 'backup-pve', receiveArgv({ target: T })), data);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(join(fake, 'received')).equals(data), 'the exact bytes, header included');
    const argv = readFileSync(join(fake, 'receive.argv'), 'utf8').trim().split('\n');
    assert.deepEqual(argv.slice(0, 3), ['receive', '-s', '-u']);
    assert.equal(argv.at(-1), T);
    assert.ok(argv.includes('volmode') && argv.includes('refreservation') && !argv.includes('mountpoint'));
  });

  it('refuses a future-dated snapshot, a package stream and garbage before zfs reads a byte', async () => {
    const at = place();
    const { fake } = at;
    writeFileSync(join(fake, 'list'), listing([{ short: recent(60), guid: '555' }]));
    const future = stream('rpool/data/vm-100-disk-0@bak-zbm-20991225T000000Z', 555n, randomBytes(1000));
    const compound = stream(`x@${recent()}`, 555n, randomBytes(1000));
    compound.writeUInt8(0x02 | (compound.readUInt8(16) & 0xfc), 16);
    for (const [input, why] of [
      [future, /lies in the future/],
      [compound, /zfs send -R/],
      [Buffer.from('not a stream at all'), /ended after 19 bytes/],
    ] as const) {
      const r = await serve(at, receiveArgv({ target: T }), input);
      assert.equal(r.code, 1);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /nothing was received/);
      assert.equal(existsSync(join(fake, 'received')), false);
    }
  });

  it('writes a batch of configs of existing snapshots, all or none, never over a file', async () => {
    const at = place();
    const { fake, meta } = at;
    const snap = recent();
    writeFileSync(join(fake, 'list'), listing([{ short: snap, guid: '555' }]));
    const files = [
      { path: `${meta}/100/${snap}.conf`, content: 'name: web\n' },
      { path: `${meta}/100/${snap}.json`, content: '{"vmid":100}\n' },
    ];
    const [cmd] = writeFilesCommands(files);
    assert.ok(cmd);
    const first = await serve(at, cmd.argv, cmd.input);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(readFileSync(files[0]?.path ?? '', 'utf8'), 'name: web\n');
    assert.equal(readFileSync(files[1]?.path ?? '', 'utf8'), '{"vmid":100}\n');

    // The second file exists: neither is written, and nothing is left behind.
    rmSync(files[0]?.path ?? '');
    const again = await serve(at, cmd.argv, cmd.input);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists: configs are append-only/);
    assert.deepEqual(readdirSync(join(meta, '100')), [`${snap}.json`]);
    // A new guest folder with one new file and one existing: neither, and no folder left.
    const [mixed] = writeFilesCommands([
      { path: `${meta}/101/${snap}.conf`, content: 'name: new\n' },
      { path: `${meta}/100/${snap}.json`, content: '{}\n' },
    ]);
    const both = await serve(at, mixed?.argv ?? [], mixed?.input ?? '');
    assert.equal(both.code, 1);
    assert.deepEqual(readdirSync(meta), ['100']);
  });

  it('refuses a config ahead of its snapshot, one too large, a short batch, and a symlinked guest folder', async () => {
    const at = place();
    const { fake, meta } = at;
    const snap = recent();
    writeFileSync(join(fake, 'list'), listing([{ short: snap, guid: '555' }]));
    const later = await serve(
      at,
      [...WRITE_FILE_ARGV, `${meta}/100/bak-zbm-20991225T000000Z.conf`],
      'hookscript: x\n',
    );
    assert.match(
      later.stderr,
      /no snapshot bak-zbm-20991225T000000Z under main\/bak-zbm: a config is written only for a backup that arrived/,
    );
    const big = await serve(
      at,
      [...WRITE_FILE_ARGV, `${meta}/100/${snap}.conf`],
      Buffer.alloc(1024 * 1024 + 1, 'x'),
    );
    assert.match(big.stderr, /more than 1048576 bytes/);
    const [cmd] = writeFilesCommands([{ path: `${meta}/101/${snap}.conf`, content: 'name: x\n' }]);
    const cut = await serve(at, cmd?.argv ?? [], 'name');
    assert.match(cut.stderr, /4 bytes on stdin, 8 announced/);
    for (const r of [later, big, cut]) assert.equal(r.code, 1);
    // Not even the folders (nor the metadata directory) they made are left.
    assert.equal(existsSync(meta), false);
    mkdirSync(meta);

    const elsewhere = join(work, 'elsewhere');
    mkdirSync(elsewhere, { recursive: true });
    symlinkSync(elsewhere, join(meta, '102'));
    const through = await serve(at, [...WRITE_FILE_ARGV, `${meta}/102/${snap}.conf`], 'name: x\n');
    assert.equal(through.code, 1);
    assert.match(through.stderr, /is not a directory \(a symlink is never followed\)/);
    assert.deepEqual(readdirSync(elsewhere), []);
  });

  it('sends a resume token only for the snapshot it names, under the root, with its guid', async () => {
    const at = place();
    const { fake } = at;
    const contents = (toname: string) =>
      `resume token contents:\nnvlist version: 0\n\tobject = 0x1\n\toffset = 0x0\n\tbytes = 0x0\n\ttoguid = 0x2a\n\ttoname = ${toname}\n`;
    writeFileSync(join(fake, 'send'), contents(`${T}@bak-zbm-1`));
    writeFileSync(join(fake, 'get'), `${T}@bak-zbm-1\tguid\t43\t-\n`);
    const other = await serve(at, ['zfs', 'send', '-t', '1-a-b-c'], '', ['--send-only']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /found by that guid elsewhere/);
    writeFileSync(join(fake, 'get'), `${T}@bak-zbm-1\tguid\t42\t-\n`);
    const same = await serve(at, ['zfs', 'send', '-t', '1-a-b-c'], '', ['--send-only']);
    assert.equal(same.code, 0, same.stderr);
    writeFileSync(join(fake, 'send'), contents('rpool/data/vm-100-disk-0@bak-zbm-1'));
    const outside = await serve(at, ['zfs', 'send', '-t', '1-a-b-c'], '', ['--send-only']);
    assert.match(
      outside.stderr,
      /resumes rpool\/data\/vm-100-disk-0@bak-zbm-1, not a snapshot under main\/bak-zbm/,
    );
    const sends = readFileSync(join(fake, 'calls'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('send -t'));
    assert.equal(sends.length, 1, 'only the checked token was sent');
  });
  it("serves a restore's reads with --send-only: regular files in guest folders, never through a symlink", async () => {
    const at = place();
    const { meta } = at;
    const elsewhere = join(work, `elsewhere${made}`);
    mkdirSync(join(meta, '100'), { recursive: true });
    mkdirSync(elsewhere);
    const s = recent();
    writeFileSync(join(meta, '100', `${s}.conf`), 'name: web\n');
    writeFileSync(join(meta, '100', `${s}.json`), '{"format":1}\n');
    writeFileSync(join(elsewhere, `${s}.conf`), 'secret: 1\n');
    writeFileSync(join(elsewhere, `${s}.json`), '{"secret":1}\n');
    symlinkSync(elsewhere, join(meta, '101'));
    symlinkSync(join(elsewhere, `${s}.conf`), join(meta, '100', 'linked.conf'));

    const config = await serve(at, readConfigArgv(meta, 100, s), '', ['--send-only']);
    assert.equal(config.code, 0, config.stderr);
    assert.equal(config.stdout, 'name: web\n');
    for (const [vmid, name] of [
      [101, s],
      [100, 'linked'],
    ] as const) {
      const r = await serve(at, readConfigArgv(meta, vmid, name), '', ['--send-only']);
      assert.equal(r.code, 1, `${vmid}/${name}`);
      assert.match(r.stderr, /is not a regular file \(a symlink is never followed\)/);
      assert.equal(r.stdout, '');
    }
    const dump = await serve(at, dumpManifestsArgv(meta), '', ['--send-only']);
    assert.equal(dump.code, 0, dump.stderr);
    assert.deepEqual(
      dump.stdout.split('\0').filter((r) => r.trim() !== ''),
      [`100/${s}.json\n{"format":1}\n`],
      "the symlinked guest folder's manifest is not read",
    );
    // The node's mode reads nothing.
    const node = await serve(at, readConfigArgv(meta, 100, s), '');
    assert.equal(node.code, 1);
    assert.match(node.stderr, /reading configs is not allowed here/);
    assert.equal(node.stdout, '');
  });

  it("moves the node's hold in one command, from serve's own copy of the script; no release when the hold fails", async () => {
    const where = place();
    const tag = 'zbm-base:pve:zbm-dest';
    const argv = moveHoldArgv(tag, [`${T}@b`], [`${T}@a`]);
    const r = await serve(where, argv, '', ['--tag', tag]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readFileSync(join(where.fake, 'calls'), 'utf8').split('\n'), [
      `hold ${tag} ${T}@b`,
      `release ${tag} ${T}@a`,
      '',
    ]);
    const failing = place();
    writeFileSync(join(failing.fake, 'fail-hold'), '');
    const f = await serve(failing, argv, '', ['--tag', tag]);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /cannot hold: injected/);
    assert.equal(readFileSync(join(failing.fake, 'calls'), 'utf8'), `hold ${tag} ${T}@b\n`);
  });

  // zbm's counted send (--send-only).
  it("--send-only: a counted send streams and reports its exact size, from serve's own copy of the script", async () => {
    const where = place();
    const stream = randomBytes(100_000).toString('hex');
    writeFileSync(join(where.fake, 'send'), stream);
    const r = await serve(where, countedSendArgv(sendArgv({ snapshot: `${T}@b`, from: `${T}@a` })), null, [
      '--send-only',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, stream, 'the stream, byte for byte');
    // The fake zfs is a shell script: its own log line is its write too, so the count is the
    // stream plus that line (a real zfs writes the stream alone).
    const logged = `send -L -e -c -i ${T}@a ${T}@b\n`.length;
    assert.equal(streamBytes(r.stderr).bytes, stream.length + logged);
  });

  it('--send-only: a script it does not know is refused as an older serve refused the counted send, which zbm recognises', async () => {
    const where = place();
    const [sh, c, script, , ...send] = countedSendArgv(sendArgv({ snapshot: `${T}@b` }));
    const r = await serve(where, [sh ?? '', c ?? '', script ?? '', 'zbm-other', ...send], '', [
      '--send-only',
    ]);
    assert.equal(r.code, 1);
    assert.ok(refusedByOlderServe(r.stderr), r.stderr);
    assert.equal(existsSync(join(where.fake, 'calls')), false, 'zfs never ran');
  });
});
