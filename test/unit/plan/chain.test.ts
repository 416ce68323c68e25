import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ChainMember, planChain } from '../../../src/plan/chain.ts';
import type { SnapRef } from '../../../src/plan/diff.ts';

let txg = 100;
const snap = (short: string, guid = `g-${short}`): SnapRef => ({
  short,
  guid,
  createtxg: txg++,
  creation: txg,
});
const P = 'main/bak/vm-100-disk-0';
const OURS = (short: string) => short.startsWith('bak-');
const WHERE = { node: 'pve1', dataset: 'rpool/data/vm-100-disk-0', server: 'zbm-dest' };
const member = (name: string, snapshots: SnapRef[], extra: Partial<ChainMember> = {}): ChainMember => ({
  name,
  snapshots,
  written: 0,
  resumeToken: null,
  ...extra,
});
const src = (...snapshots: SnapRef[]) => ({ snapshots, bookmarks: [] });
const stepsOf = (steps: readonly { from: { short: string } | null; to: SnapRef }[]) =>
  steps.map((s) => [s.from?.short ?? null, s.to.short]);

// The node's history: zbm snapshots a, b, c backed up; the admin rolls back to before b; new d, e.
const a = snap('bak-20261101T000000Z');
const b = snap('bak-20261101T010000Z');
const c = snap('bak-20261101T020000Z');
const d = snap('bak-20261101T030000Z');
const e = snap('bak-20261101T040000Z');

describe('planChain', () => {
  it("sends a disk's first backup into its first chain", () => {
    const p = planChain(src(a), P, [], WHERE, OURS);
    assert.equal(p.kind, 'continue');
    assert.equal(p.kind === 'continue' && p.target, P);
    assert.equal(p.kind === 'continue' && p.diff.kind, 'full');
  });

  it('goes on in the first chain while the disk continues it', () => {
    const p = planChain(src(b, c), P, [member(P, [a, b])], WHERE, OURS);
    assert.deepEqual(p.kind === 'continue' && [p.target, p.diff.kind], [P, 'incremental']);
  });

  it('after a rollback, starts a later chain as a clone of the newest snapshot the disk still has, and leaves the old one', () => {
    const p = planChain(src(a, d), P, [member(P, [a, b, c])], WHERE, OURS);
    assert.equal(p.kind, 'new');
    if (p.kind !== 'new') return;
    assert.equal(p.target, `${P}.${d.short}`);
    assert.equal(p.origin, `${P}@${a.short}`);
    assert.deepEqual(stepsOf(p.steps), [[a.short, d.short]]);
    assert.match(p.why, /zbm-dest:main\/bak\/vm-100-disk-0 has diverged/);
    assert.match(p.why, new RegExp(b.short));
  });

  it('then goes on in the later chain, not in the first one', () => {
    const later = `${P}.${d.short}`;
    const p = planChain(src(d, e), P, [member(P, [a, b, c]), member(later, [d])], WHERE, OURS);
    assert.deepEqual(p.kind === 'continue' && [p.target, p.diff.kind], [later, 'incremental']);
  });

  it('starts a later chain as a full copy when the disk shares nothing with any chain (a fresh zvol)', () => {
    const fresh = snap('bak-20261101T050000Z');
    const p = planChain(src(fresh), P, [member(P, [a, b])], WHERE, OURS);
    assert.equal(p.kind, 'new');
    if (p.kind !== 'new') return;
    assert.equal(p.origin, null);
    assert.equal(p.target, `${P}.${fresh.short}`);
    assert.deepEqual(stepsOf(p.steps), [[null, fresh.short]]);
    assert.match(p.why, /no snapshot in common/);
  });

  it('clones from an older chain when the disk comes back to it (a second rollback further back)', () => {
    const later = `${P}.${d.short}`;
    const f = snap('bak-20261101T060000Z');
    const p = planChain(src(a, f), P, [member(P, [a, b]), member(later, [d, e])], WHERE, OURS);
    assert.equal(p.kind === 'new' && p.origin, `${P}@${a.short}`);
    assert.equal(p.kind === 'new' && p.target, `${P}.${f.short}`);
  });

  it('refuses, untouched, what changed on the server: bytes written, a snapshot not zbm made, a name back with another guid', () => {
    const written = planChain(src(a, b), P, [member(P, [a], { written: 4096 })], WHERE, OURS);
    assert.equal(written.kind, 'refused');
    assert.match(
      written.kind === 'refused' ? written.reason : '',
      /4096 bytes written[\s\S]*zfs rollback -r/,
    );
    const intruder = planChain(src(a, b), P, [member(P, [a, snap('intruder')])], WHERE, OURS);
    assert.match(intruder.kind === 'refused' ? intruder.reason : '', /has diverged[\s\S]*intruder/);
    const reused = planChain(src(a, b), P, [member(P, [snap(a.short, 'another-guid')])], WHERE, OURS);
    assert.match(reused.kind === 'refused' ? reused.reason : '', /no snapshot in common/);
  });

  it('finishes an interrupted receive first, wherever it was going', () => {
    const later = `${P}.${d.short}`;
    const p = planChain(
      src(a, d, e),
      P,
      [member(P, [a, b]), member(later, [], { resumeToken: 'tok' })],
      WHERE,
      OURS,
    );
    assert.equal(p.kind === 'continue' && p.target, later);
  });

  it('refuses rather than reuse a name: the later chain it would start exists and cannot go on', () => {
    const later = `${P}.${d.short}`;
    const p = planChain(
      src(a, d),
      P,
      [member(P, [a, b]), member(later, [snap('bak-20261101T035000Z')])],
      WHERE,
      OURS,
    );
    assert.equal(p.kind, 'refused');
    assert.match(p.kind === 'refused' ? p.reason : '', /exists already/);
  });

  it('says so when the disk has nothing newer than what a chain that cannot go on holds', () => {
    const p = planChain(src(a), P, [member(P, [a, b])], WHERE, OURS);
    assert.equal(p.kind, 'refused');
    assert.match(p.kind === 'refused' ? p.reason : '', /has the newest snapshot/);
  });

  it('has nothing to send without snapshots, and a first chain that was destroyed is started again', () => {
    assert.deepEqual(planChain(src(), P, [member(P, [a])], WHERE, OURS), {
      kind: 'continue',
      target: P,
      diff: { kind: 'nothing-to-send' },
    });
    const later = `${P}.${d.short}`;
    const p = planChain(src(e), P, [member(later, [d])], WHERE, OURS);
    assert.deepEqual(p.kind === 'continue' && [p.target, p.diff.kind], [P, 'full']);
  });
});

describe("planChain: a disk's first backup from its history (templates, linked clones, renames)", () => {
  const base = snap('__base__', 'g-base');
  const linked = snap('bak-20261101T050000Z');
  const onServer = new Map([['g-base', 'main/bak/base-900-disk-0@bak-20261101T000500Z']]);
  const template = { dataset: 'rpool/data/base-900-disk-0', ...base };

  it("starts a linked clone as a clone of its template's @__base__ on the server, sent from the origin", () => {
    const p = planChain(src(linked), 'main/bak/vm-901-disk-0', [], WHERE, OURS, {
      history: [template],
      onServer,
    });
    assert.deepEqual(p, {
      kind: 'new',
      target: 'main/bak/vm-901-disk-0',
      origin: 'main/bak/base-900-disk-0@bak-20261101T000500Z',
      steps: [
        { from: { short: '__base__', bookmark: false, dataset: 'rpool/data/base-900-disk-0' }, to: linked },
      ],
      why: 'zbm-dest has pve1:rpool/data/base-900-disk-0@__base__ already, as main/bak/base-900-disk-0@bak-20261101T000500Z',
      first: true,
    });
  });

  it('starts a template made of a backed-up guest from its newest snapshot the server has, in the old chain', () => {
    // qm template renamed vm-100-disk-0 (backed up through c) to base-100-disk-0: its @__base__ follows c.
    const asName = snap('bak-20261101T023000Z', 'g-base2');
    const p = planChain(src(asName), 'main/bak/base-100-disk-0', [], WHERE, OURS, {
      history: [a, b, c],
      onServer: new Map([
        [a.guid, `${P}@${a.short}`],
        [c.guid, `${P}@${c.short}`],
      ]),
    });
    assert.equal(p.kind, 'new');
    assert.equal(p.kind === 'new' && p.origin, `${P}@${c.short}`);
    assert.deepEqual(p.kind === 'new' && stepsOf(p.steps), [[c.short, asName.short]]);
  });

  it('is a full copy when the server has nothing of its history, and a family of its own goes on as before', () => {
    const alone = planChain(src(linked), 'main/bak/vm-901-disk-0', [], WHERE, OURS, {
      history: [template],
      onServer: new Map(),
    });
    assert.equal(alone.kind === 'continue' && alone.diff.kind, 'full');
    // Once the disk has a chain, its history no longer matters: it continues the chain.
    const next = snap('bak-20261101T060000Z');
    const later = planChain(
      src(linked, next),
      'main/bak/vm-901-disk-0',
      [member('main/bak/vm-901-disk-0', [linked])],
      WHERE,
      OURS,
      { history: [template], onServer },
    );
    assert.equal(later.kind === 'continue' && later.diff.kind, 'incremental');
  });

  it('refuses when the newest snapshot is on the server already, elsewhere: nothing new to start from', () => {
    const p = planChain(src(linked), 'main/bak/vm-901-disk-0', [], WHERE, OURS, {
      history: [],
      onServer: new Map([[linked.guid, 'main/bak/vm-100-disk-0@x']]),
    });
    assert.equal(p.kind, 'refused');
  });
});
