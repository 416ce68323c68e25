/**
 * The metadata directory belongs to the server's configuration: commands read and delete only
 * regular files in its guest folders, never through a symlink, never more than zbm writes, and
 * take the directory from their own flag before the root's property.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
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
import { untarMetadataArgv } from '../../../src/metadata/copy.ts';
import {
  dumpManifestsArgv,
  newestManifests,
  parseManifestDump,
  readConfigArgv,
} from '../../../src/metadata/manifest.ts';
import { metadataToRemove, pruneMetadata } from '../../../src/metadata/remove.ts';
import { chooseMetadataDir, metadataDirOf } from '../../../src/metadata/store.ts';

const work = mkdtempSync(join(tmpdir(), 'zbm-meta-'));
let n = 0;
/** A metadata directory and, beside it, a directory a symlink could lead to. */
function dirs(): { meta: string; outside: string } {
  n++;
  const meta = join(work, `meta${n}`);
  const outside = join(work, `outside${n}`);
  mkdirSync(meta);
  mkdirSync(outside);
  return { meta, outside };
}
const put = (path: string, content: string) => {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
};
const sh = (argv: readonly string[], input?: Buffer) =>
  spawnSync(argv[0] ?? 'false', argv.slice(1), { input, encoding: 'buffer' });

const S1 = 'bak-zbm-20261101T000000Z';
const S2 = 'bak-zbm-20261102T000000Z';
const manifest = (vmid: number, snapshot: string) =>
  `${JSON.stringify({ format: 1, vmid, type: 'qemu', name: 'web', snapshot, disks: [], missing: [] })}\n`;

describe('the metadata directory a command works in', () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  it('is its flag first, the root property second, and only an absolute path', () => {
    const flag = '--local-metadata-dir';
    assert.deepEqual(chooseMetadataDir('/srv/meta', undefined, 'main/bak-zbm', flag), { dir: '/srv/meta' });
    assert.deepEqual(chooseMetadataDir('/srv/meta', '/srv/victim', 'main/bak-zbm', flag), {
      dir: '/srv/meta',
      warning: 'main/bak-zbm has zbm:metadata-dir=/srv/victim; using --local-metadata-dir /srv/meta',
    });
    assert.deepEqual(chooseMetadataDir(undefined, '/root/backups_metadata', 'r', flag), {
      dir: '/root/backups_metadata',
    });
    for (const bad of ['relative', '/a/../etc', '/a\nb']) {
      assert.match(JSON.stringify(chooseMetadataDir(undefined, bad, 'r', flag)), /not an absolute path/);
      assert.match(JSON.stringify(metadataDirOf(bad, 'r')), /not an absolute path/);
    }
    assert.match(
      JSON.stringify(chooseMetadataDir(undefined, undefined, 'r', flag)),
      /has no zbm:metadata-dir/,
    );
    assert.deepEqual(metadataDirOf('/root/backups_metadata', 'r'), { dir: '/root/backups_metadata' });
  });

  it('prune removes files only in guest folders that are directories, never through a symlink', async () => {
    const { meta, outside } = dirs();
    put(join(outside, `${S1}.conf`), 'elsewhere');
    symlinkSync(outside, join(meta, '100'));
    put(join(meta, '101', `${S1}.conf`), 'gone');
    put(join(meta, '101', `${S2}.conf`), 'kept');
    const guest = { remaining: new Set([S2]), destroyed: new Set([S1]) };
    const r = await pruneMetadata(
      meta,
      'bak-zbm-',
      new Map([
        [100, guest],
        [101, guest],
      ]),
    );
    assert.deepEqual(r.removed, [join(meta, '101', `${S1}.conf`)]);
    assert.match(r.errors.join('\n'), /100 is not a directory \(a symlink is never followed\)/);
    assert.deepEqual(readdirSync(outside), [`${S1}.conf`]);
    assert.deepEqual(readdirSync(join(meta, '101')), [`${S2}.conf`]);
  });

  it('a snapshot named for the future makes no file look like a leftover', () => {
    const files = [`${S1}.conf`, `${S1}.json`];
    const planted = { remaining: new Set(['bak-zbm-20991225T000000Z']), destroyed: new Set<string>() };
    const latest = Date.parse('2026-11-29T00:00:00Z') / 1000;
    assert.deepEqual(metadataToRemove(files, 'bak-zbm-', planted, latest), []);
    // Without that bound it would have counted as the newest backup.
    assert.deepEqual(metadataToRemove(files, 'bak-zbm-', planted), files);
  });

  it('verify reads regular manifests only, of VMID folders without a leading zero, within the size zbm writes', async () => {
    const { meta, outside } = dirs();
    put(join(meta, '100', `${S1}.json`), manifest(100, S1));
    put(join(outside, `${S2}.json`), manifest(999, S2));
    symlinkSync(outside, join(meta, '101'));
    put(join(meta, '102', `${S1}.json`), manifest(102, S1));
    symlinkSync(join(outside, `${S2}.json`), join(meta, '102', `${S2}.json`));
    put(join(meta, '0100', `${S2}.json`), manifest(100, S2));
    put(join(meta, '103', `${S1}.json`), `${' '.repeat(1024 * 1024)}{}`);
    const { manifests, errors } = await newestManifests(meta);
    assert.deepEqual(
      manifests.map((m) => [m.vmid, m.snapshot]),
      [
        [100, S1],
        [102, S1],
      ],
    );
    assert.match(errors.join('\n'), /101 is not a directory/);
    assert.match(errors.join('\n'), /103\/.*more than a manifest has/);
  });

  it("list-backups' and restore's readers on a tier skip symlinks and VMIDs with a leading zero", () => {
    const { meta, outside } = dirs();
    put(join(meta, '100', `${S1}.json`), manifest(100, S1));
    put(join(meta, '100', `${S1}.conf`), 'name: web\n');
    put(join(outside, `${S2}.json`), manifest(100, S2));
    put(join(outside, `${S2}.conf`), 'hookscript: local:snippets/x\n');
    symlinkSync(join(outside, `${S2}.json`), join(meta, '100', `${S2}.json`));
    symlinkSync(outside, join(meta, '101'));
    put(join(meta, '0100', `${S2}.json`), manifest(100, S2));
    const dump = parseManifestDump(sh(dumpManifestsArgv(meta)).stdout.toString());
    assert.deepEqual(
      dump.manifests.map((m) => [m.vmid, m.snapshot]),
      [[100, S1]],
    );
    assert.equal(sh(readConfigArgv(meta, 100, S1)).stdout.toString(), 'name: web\n');
    const through = sh(readConfigArgv(meta, 101, S2));
    assert.notEqual(through.status, 0);
    assert.match(through.stderr.toString(), /is not a regular file \(a symlink is never followed\)/);
  });

  it("replicate unpacks another host's tar only as new regular files in guest folders", () => {
    const { meta, outside } = dirs();
    const src = join(work, `src${n}`);
    put(join(src, '101', `${S1}.conf`), 'name: new\n');
    put(join(src, '102', `${S1}.conf`), 'name: planted over\n');
    put(join(src, '103', 'notes.txt'), 'x');
    symlinkSync(outside, join(src, '100'));
    put(join(meta, '102', `${S1}.conf`), 'name: original\n');
    const tar = sh(['tar', '-C', src, '-cf', '-', '--', '100', '101', '102', '103']);
    assert.equal(tar.status, 0, tar.stderr.toString());
    // A second stream writes through the symlink the first one would have left.
    put(join(work, `src${n}b`, '100', 'x.conf'), 'through the link\n');
    const second = sh(['tar', '-C', join(work, `src${n}b`), '-cf', '-', '--', '100']);
    for (const stream of [tar.stdout, second.stdout]) {
      const r = sh(untarMetadataArgv(meta), stream);
      assert.equal(r.status, 0, r.stderr.toString());
    }
    assert.equal(readFileSync(join(meta, '101', `${S1}.conf`), 'utf8'), 'name: new\n');
    assert.equal(readFileSync(join(meta, '102', `${S1}.conf`), 'utf8'), 'name: original\n');
    assert.equal(existsSync(join(meta, '103')), false);
    assert.deepEqual(readdirSync(outside), []);
    assert.deepEqual(readdirSync(meta).sort(), ['100', '101', '102']);
    assert.equal(readFileSync(join(meta, '100', 'x.conf'), 'utf8'), 'through the link\n');
  });
});
