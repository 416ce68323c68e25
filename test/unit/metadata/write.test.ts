import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalHost } from '../../../src/host/local.ts';
import { run } from '../../../src/host/process.ts';
import { WRITE_FILE_ARGV, writeFilesAtomic, writeFilesCommands } from '../../../src/metadata/write.ts';
import { authorize } from '../../../src/serve/policy.ts';

describe('writing many metadata files with one command', () => {
  it('frames the contents by byte length, the length before the path', () => {
    const [c, ...more] = writeFilesCommands([
      { path: '/m/100/a.conf', content: 'é\n' },
      { path: '/m/100/a:b.json', content: '' },
    ]);
    assert.equal(more.length, 0);
    assert.ok(c);
    assert.deepEqual(c.argv.slice(-3), ['3', '3:/m/100/a.conf', '0:/m/100/a:b.json']);
    assert.equal(c.input, 'é\n');
  });

  it('splits a long list into commands of a bounded size', () => {
    const files = Array.from({ length: 5 }, (_, i) => ({ path: `/m/${i}.conf`, content: `${i}` }));
    const cmds = writeFilesCommands(files, 2);
    assert.deepEqual(
      cmds.map((c) => c.input),
      ['01', '23', '4'],
    );
  });

  it('writes every file byte for byte, creating the directories, leaving no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zbm-meta-'));
    try {
      const files = [
        { path: `${dir}/100/s1.conf`, content: 'name: vm\nnet0: virtio=AA\n' },
        { path: `${dir}/100/s1.json`, content: '{"a": "ünïcode"}\n' },
        { path: `${dir}/101/s1.conf`, content: 'no newline at the end' },
        { path: `${dir}/101/s1.json`, content: '' },
        { path: `${dir}/102/s1.conf`, content: 'x'.repeat(100_000) },
      ];
      await writeFilesAtomic(new LocalHost('test'), files);
      for (const f of files) assert.equal(readFileSync(f.path, 'utf8'), f.content, f.path);
      for (const vmid of ['100', '101', '102']) {
        assert.ok(readdirSync(join(dir, vmid)).every((n) => !n.includes('.tmp.')));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes nothing when stdin is shorter than announced (a cut connection)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zbm-meta-'));
    try {
      const [c] = writeFilesCommands([{ path: `${dir}/100/s.conf`, content: 'abcdef' }]);
      assert.ok(c);
      await assert.rejects(
        run(new LocalHost('test'), c.argv, { input: 'abc' }),
        /3 bytes on stdin, 6 expected/,
      );
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is what zbm serve accepts, each path checked, the single-file form too', () => {
    const [c] = writeFilesCommands([{ path: '/m/100/s.conf', content: 'x' }]);
    assert.ok(c);
    assert.equal(authorize(c.argv, { root: 'tank/b', metadataDir: '/m' }).kind, 'write');
    const [outside] = writeFilesCommands([{ path: '/etc/s.conf', content: 'x' }]);
    assert.equal(authorize(outside?.argv ?? [], { root: 'tank/b', metadataDir: '/m' }).kind, 'refuse');
    assert.equal(
      authorize([...WRITE_FILE_ARGV, '/m/100/s.conf'], { root: 'tank/b', metadataDir: '/m' }).kind,
      'write',
    );
  });
});
