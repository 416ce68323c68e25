import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cloneWaves, isNewClone, planCloneStart } from '../../../src/replicate/clones.ts';
import type { Dataset } from '../../../src/zfs/types.ts';
import { dataset, snapshot } from '../../support/zfs.ts';

const S = 'main/bak-zbm';
const T = 'tank/offsite';
const P = 'vm-100-disk-0';
const CHAIN = `${P}.bak-zbm-20261130T100000Z`;
const all = () => true;
const byName = (list: Dataset[]) => new Map(list.map((d) => [d.name, d]));
const snaps = (ds: string, shorts: string[], guidOf = (s: string) => `g-${s}`) =>
  shorts.map((s, i) => snapshot(ds, s, { guid: guidOf(s), createtxg: i + 1 }));

const primary = dataset(`${S}/${P}`, snaps(`${S}/${P}`, ['a', 'b', 'c']));
const chain = dataset(`${S}/${CHAIN}`, snaps(`${S}/${CHAIN}`, ['bak-zbm-20261130T100000Z', 'e']), {
  origin: `${S}/${P}@a`,
});
const sources = byName([primary, chain]);
const pair = { source: chain, target: `${T}/${CHAIN}` };

describe('replicate: a later chain travels as a clone', () => {
  it("starts from the origin's copy on the target, found by guid, then one step per snapshot", () => {
    const targets = byName([dataset(`${T}/${P}`, snaps(`${T}/${P}`, ['a', 'b']))]);
    assert.equal(isNewClone(pair, S, targets), true);
    const start = planCloneStart(pair, S, sources, T, targets, all);
    assert.deepEqual(start?.origin, `${T}/${P}@a`);
    assert.deepEqual(
      start?.steps.map((s) => [s.from?.dataset ?? null, s.from?.short ?? null, s.to.short]),
      [
        [`${S}/${P}`, 'a', 'bak-zbm-20261130T100000Z'],
        [null, 'bak-zbm-20261130T100000Z', 'e'],
      ],
    );
  });

  it('is sent whole when the copy of its origin is not there, or is another snapshot under the same name', () => {
    const pruned = byName([dataset(`${T}/${P}`, snaps(`${T}/${P}`, ['b']))]);
    assert.equal(planCloneStart(pair, S, sources, T, pruned, all), null);
    const impostor = byName([
      dataset(
        `${T}/${P}`,
        snaps(`${T}/${P}`, ['a'], () => 'other'),
      ),
    ]);
    assert.equal(planCloneStart(pair, S, sources, T, impostor, all), null);
  });

  it('is an ordinary dataset once on the target, or when its origin lies outside the root', () => {
    const there = byName([dataset(`${T}/${P}`, snaps(`${T}/${P}`, ['a'])), dataset(`${T}/${CHAIN}`)]);
    assert.equal(isNewClone(pair, S, there), false);
    assert.equal(planCloneStart(pair, S, sources, T, there, all), null);
    const outside = {
      source: { ...chain, origin: 'rpool/data/base-9000-disk-0@__base__' },
      target: `${T}/${CHAIN}`,
    };
    assert.equal(isNewClone(outside, S, new Map()), false);
    assert.equal(isNewClone({ source: primary, target: `${T}/${P}` }, S, new Map()), false);
  });
});

describe('replicate: clones go in waves, each after its origin', () => {
  it('sends a template made of a disk after that disk, and its linked clones after the template', () => {
    const template = dataset(`${S}/base-100-disk-0`, snaps(`${S}/base-100-disk-0`, ['bak-zbm-t']), {
      origin: `${S}/${P}@c`,
    });
    const linked = dataset(`${S}/vm-101-disk-0`, snaps(`${S}/vm-101-disk-0`, ['bak-zbm-l']), {
      origin: `${S}/base-100-disk-0@bak-zbm-t`,
    });
    const pairs = [linked, template, primary].map((d) => ({ source: d, target: d.name.replace(S, T) }));
    const names = (targets: Map<string, Dataset>) =>
      cloneWaves(pairs, S, targets).map((w) => w.map((p) => p.source.name));
    assert.deepEqual(names(new Map()), [[primary.name], [template.name], [linked.name]]);
    // The template is on the target already: the clone goes in the first wave of clones.
    const there = byName([dataset(`${T}/base-100-disk-0`, [])]);
    assert.deepEqual(names(there), [[template.name, primary.name], [linked.name]]);
  });
});
