/**
 * What replicate --dry-run prints and what --force-rollback would roll back, from the two listings
 * alone: no zfs command runs (the fake hosts would record it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mirrorPairs } from '../../../src/replicate/pairs.ts';
import { printPlan, printResult } from '../../../src/replicate/report.ts';
import { divergedTargets, type ReplicateFacts, type ReplicationEnd } from '../../../src/replicate/run.ts';
import type { Dataset } from '../../../src/zfs/types.ts';
import { Zfs } from '../../../src/zfs/zfs.ts';
import { FakeHost } from '../../support/fake-zfs.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

const S = 'main/bak-zbm';
const T = 'tank/offsite';
const all = () => true;
/** Snapshots by short name; the guid is the short name's, so both sides agree on it. */
const snaps = (ds: string, shorts: string[]) =>
  shorts.map((s, i) => snapshot(ds, s, { guid: `g-${s}`, createtxg: i + 1 }));
const disk = (root: string, name: string, shorts: string[], fields: Partial<Dataset> = {}) =>
  dataset(`${root}/${name}`, snaps(`${root}/${name}`, shorts), fields);

function end(hostName: string, root: string): ReplicationEnd & { host: FakeHost } {
  const host = new FakeHost(hostName);
  return { host, zfs: new Zfs(host), root, metadataDir: undefined };
}

function factsOf(sourceList: Dataset[], targetList: Dataset[]): ReplicateFacts {
  const { pairs, orphans } = mirrorPairs(S, sourceList, T, targetList, all);
  return {
    sourceList,
    targetRoot: targetList.find((d) => d.name === T),
    pairs,
    orphans,
    sources: new Map(sourceList.map((d) => [d.name, d])),
    targets: new Map(targetList.map((d) => [d.name, d])),
  };
}

const sourceList = [
  dataset(S),
  disk(S, 'vm-100-disk-0', ['a', 'b', 'c']),
  disk(S, 'vm-101-disk-0', ['x']),
  disk(S, 'vm-102-disk-0', ['p']),
  disk(S, 'vm-103-disk-0', ['m', 'n']),
  disk(S, 'vm-104-disk-0', ['q', 'r']),
];
const targetList = [
  dataset(T),
  disk(T, 'vm-100-disk-0', ['a']),
  disk(T, 'vm-102-disk-0', ['p']),
  disk(T, 'vm-103-disk-0', ['m', 'z']),
  disk(T, 'vm-104-disk-0', ['q'], { resumeToken: '1-abc' }),
  disk(T, 'vm-200-disk-0', ['old']),
];

describe('replicate --dry-run', () => {
  it('prints each pair as it would go, the diverged one refused, and the orphan kept', () => {
    const source = end('backup', S);
    const target = end('offsite', T);
    const lines: string[] = [];
    printPlan(factsOf(sourceList, targetList), source, target, all, (s) => lines.push(s));
    const text = lines.join('');
    assert.ok(text.endsWith('\n'));
    const printed = text.slice(0, -1).split('\n');
    assert.deepEqual(printed.slice(0, 3), [
      `plan (dry run, nothing is changed): replicate backup:${S} to offsite:${T}`,
      `${S}/vm-100-disk-0 → ${T}/vm-100-disk-0: incremental, 2 snapshot(s): b, c`,
      `${S}/vm-101-disk-0 → ${T}/vm-101-disk-0: full, 1 snapshot(s): x`,
    ]);
    assert.equal(printed[3], `${S}/vm-102-disk-0 → ${T}/vm-102-disk-0: up to date`);
    const refused = printed.findIndex((l) => l.startsWith(`${S}/vm-103-disk-0 → `));
    assert.ok(
      printed[refused]?.startsWith(
        `${S}/vm-103-disk-0 → ${T}/vm-103-disk-0: refused: offsite:${T}/vm-103-disk-0 has diverged from backup:${S}/vm-103-disk-0`,
      ),
      printed[refused],
    );
    assert.ok(text.includes('--force-rollback -y'), text);
    assert.deepEqual(printed.slice(-2), [
      `${S}/vm-104-disk-0 → ${T}/vm-104-disk-0: incremental, 1 snapshot(s): r (first resumes an interrupted transfer)`,
      `${T}/vm-200-disk-0: kept (no longer on backup)`,
    ]);
    assert.deepEqual([...source.host.calls, ...target.host.calls], []);
  });

  it('names only the diverged target as what --force-rollback rolls back', () => {
    const source = end('backup', S);
    const target = end('offsite', T);
    assert.deepEqual(divergedTargets(factsOf(sourceList, targetList), source, target, all), [
      `offsite:${T}/vm-103-disk-0`,
    ]);
    assert.deepEqual(divergedTargets(factsOf(sourceList, []), source, target, all), []);
  });
});

describe('replicate: the result of a run', () => {
  const results = [
    {
      source: `${S}/vm-100-disk-0`,
      target: `${T}/vm-100-disk-0`,
      result: 'ok' as const,
      sent: ['b', 'c'],
      bytes: 2048,
    },
    {
      source: `${S}/vm-103-disk-0`,
      target: `${T}/vm-103-disk-0`,
      result: 'failed' as const,
      sent: [],
      bytes: 0,
      error: 'diverged',
    },
  ];

  it('sums what went, then names each pair that did not and each orphan', () => {
    const lines: string[] = [];
    printResult(end('backup', S), end('offsite', T), results, [`${T}/vm-200-disk-0`], false, (s) =>
      lines.push(s),
    );
    assert.deepEqual(lines, [
      `replicated 1 of 2 dataset(s) from backup:${S} to offsite:${T}, 2 snapshot(s), 2.0 KiB\n`,
      `  ${S}/vm-103-disk-0: failed: diverged\n`,
      `  ${T}/vm-200-disk-0: kept, no longer on backup\n`,
    ]);
  });

  it('prints it all as one JSON document with --json', () => {
    const lines: string[] = [];
    printResult(end('backup', S), end('offsite', T), results, [`${T}/vm-200-disk-0`], true, (s) =>
      lines.push(s),
    );
    assert.deepEqual(JSON.parse(lines.join('')), {
      source: 'backup',
      target: 'offsite',
      datasets: results,
      kept: [`${T}/vm-200-disk-0`],
    });
  });
});
