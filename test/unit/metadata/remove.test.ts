import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { metadataToRemove, pruneMetadata } from '../../../src/metadata/remove.ts';
import { vmidOf } from '../../../src/metadata/store.ts';

const P = 'bak-zbm-';
const s = (day: number) => `${P}202601${String(day).padStart(2, '0')}T000000Z`;

describe('vmidOf', () => {
  it('reads the VMID from PVE volume names', () => {
    assert.equal(vmidOf('main/bak-zbm/vm-100-disk-0'), 100);
    assert.equal(vmidOf('main/bak-zbm/subvol-103-disk-1'), 103);
    assert.equal(vmidOf('main/bak-zbm/base-9000-disk-0'), 9000);
    assert.equal(vmidOf('main/bak-zbm/basevol-9001-disk-0'), 9001);
    assert.equal(vmidOf('vm-101-state-before'), 101);
  });

  it('is null for anything else', () => {
    assert.equal(vmidOf('main/bak-zbm'), null);
    assert.equal(vmidOf('main/bak-zbm/vm-100'), null);
    assert.equal(vmidOf('main/vm-100-disk-0/child'), null);
    assert.equal(vmidOf('main/bak-zbm/data-100-disk-0'), null);
  });
});

describe('metadataToRemove', () => {
  const files = [
    `${s(1)}.conf`,
    `${s(1)}.json`,
    `${s(2)}.conf`,
    `${s(3)}.json`,
    `${s(9)}.conf`,
    'notes.txt',
    'x.conf',
  ];

  it('removes the files of snapshots this run destroyed and no dataset of the guest still has', () => {
    const r = metadataToRemove(files, P, {
      remaining: new Set([s(3), s(4)]),
      destroyed: new Set([s(1), s(2)]),
    });
    assert.deepEqual(r, [`${s(1)}.conf`, `${s(1)}.json`, `${s(2)}.conf`]);
  });

  it('keeps them while another disk of the guest still has the snapshot', () => {
    const r = metadataToRemove(files, P, { remaining: new Set([s(1), s(4)]), destroyed: new Set([s(1)]) });
    assert.equal(r.includes(`${s(1)}.conf`), false);
  });

  it("removes leftovers older than the guest's newest snapshot, never a newer (arriving) one", () => {
    const r = metadataToRemove(files, P, { remaining: new Set([s(5)]), destroyed: new Set() });
    // day 9 is newer than anything listed: a backup arriving while prune runs.
    assert.deepEqual(r, [`${s(1)}.conf`, `${s(1)}.json`, `${s(2)}.conf`, `${s(3)}.json`]);
  });
});

describe('pruneMetadata', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zbm-prune-meta-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('deletes with node fs in <dir>/<vmid>/ and leaves other guests alone', async () => {
    mkdirSync(join(dir, '100'));
    mkdirSync(join(dir, '101'));
    for (const f of [`${s(1)}.conf`, `${s(1)}.json`, `${s(2)}.conf`, `${s(2)}.json`]) {
      writeFileSync(join(dir, '100', f), 'x');
      writeFileSync(join(dir, '101', f), 'x');
    }
    mkdirSync(join(dir, '100', `${s(1)}.d.conf`)); // a directory is never removed
    const r = await pruneMetadata(
      dir,
      P,
      new Map([
        [100, { remaining: new Set([s(2)]), destroyed: new Set([s(1)]) }],
        [102, { remaining: new Set<string>(), destroyed: new Set([s(1)]) }],
      ]),
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.removed.sort(), [join(dir, '100', `${s(1)}.conf`), join(dir, '100', `${s(1)}.json`)]);
    assert.deepEqual(readdirSync(join(dir, '100')).sort(), [
      `${s(1)}.d.conf`,
      `${s(2)}.conf`,
      `${s(2)}.json`,
    ]);
    assert.equal(readdirSync(join(dir, '101')).length, 4);
  });
});
