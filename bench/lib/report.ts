/**
 * From the raw measurements (bench/vm/scenarios.ts, bench/planning.ts) to the figures the suite
 * publishes: every one a ratio or a count against a baseline of the same run. Pure.
 */
import type { Counts } from './logs.ts';

export interface ToolRun {
  readonly ms: number;
  readonly counts: Counts;
  readonly bytes?: number;
  readonly peakRssKiB?: number;
  readonly targetWritten?: number;
  /** When sampled more than once: every sample; ms is their median. */
  readonly samplesMs?: readonly number[];
}

export interface CyclesRaw {
  readonly guests: number;
  readonly datasets: number;
  readonly initial: { readonly zbm: ToolRun; readonly syncoidRecursive: ToolRun };
  readonly idle: {
    readonly zbm: ToolRun;
    readonly syncoidLoop: ToolRun;
    readonly syncoidRecursive: ToolRun;
    readonly zbmFewGuests: ToolRun & { readonly guests: number; readonly datasets: number };
    /** The same idle cycle with --jobs (absent in results from before the option existed). */
    readonly zbmJobs?: ToolRun & { readonly jobs: number };
  };
  readonly small: {
    readonly writtenPerDataset: number;
    readonly zbm: ToolRun;
    readonly syncoidLoop: ToolRun;
    readonly syncoidRecursive: ToolRun;
  };
}

export interface ZbmTransfer {
  readonly wallMs: number;
  readonly transferMs: number | null;
  readonly bytes?: number;
  readonly peakRssKiB?: number;
}

export interface DatapathRaw {
  readonly streamMiB: number;
  readonly streamBytes: number;
  readonly bareMs: readonly number[];
  readonly sshMs: readonly number[];
  /** The sample of median transfer time; all samples below (runs before 2026-12-01 had one). */
  readonly zbm: ZbmTransfer;
  readonly zbmProgress: ZbmTransfer;
  readonly zbmSamples?: readonly ZbmTransfer[];
  readonly zbmProgressSamples?: readonly ZbmTransfer[];
  /** One zbm run with a large stream, for memory. */
  readonly big?: ZbmTransfer & { readonly streamMiB: number };
  readonly bwlimit: {
    readonly limitBytesPerSecond: number;
    readonly streamMiB: number;
    readonly bytes: number;
    readonly wallMs: number;
    readonly transferMs: number | null;
    /** Rate between 10 % and 90 % of the stream (null: too short to tell). */
    readonly steadyBytesPerSecond?: number | null;
    readonly peakRssKiB: number;
  };
}

export interface StartupRaw {
  readonly samples: number;
  readonly nodeMs: number;
  readonly cachedMs: number;
  readonly uncachedMs: number;
  readonly serveCallMs: number;
  readonly plainCallMs: number;
}

export interface FixedRaw {
  readonly samples: number;
  readonly zbmMs: readonly number[];
  readonly unavoidableMs: readonly number[];
  /** The shell script doing the backup's ZFS work alone (absent from runs before 2026-12-01). */
  readonly scriptMs?: readonly number[];
  readonly trace: readonly {
    readonly at: number;
    readonly s: number;
    readonly host: string;
    readonly command: string;
  }[];
  readonly traceTotalS: number;
}

/** One increment moved by zbm and by the bare pipe, in turn: the stream's size, zbm's count, the times. */
export interface LinkSamples {
  readonly streamBytes: number;
  readonly zbmBytes: number;
  readonly zbmMs: readonly number[];
  readonly bareMs: readonly number[];
}

/** One increment replicated to the replica VM: over netem's WAN (rateMbit), or the bare link (null). */
export interface LinkRaw extends LinkSamples {
  readonly streamMiB: number;
  readonly rateMbit: number | null;
  readonly syncoidMs: readonly number[];
  /** The LAN only: an increment on the replica VM pulled by zbm and by `ssh zfs send | zfs receive`. */
  readonly pull?: LinkSamples;
}

export interface VmRaw {
  readonly options: Record<string, unknown>;
  readonly vm: Record<string, unknown>;
  readonly wrapper: { readonly wrappedMs: number; readonly realMs: number; readonly perCallMs: number };
  readonly startup?: StartupRaw;
  readonly cycles?: CyclesRaw;
  readonly datapath?: DatapathRaw;
  readonly fixed?: FixedRaw;
  readonly wan?: LinkRaw;
  readonly lan?: LinkRaw;
  readonly elapsedS: number;
}

export interface SeriesRow {
  readonly items: number;
  readonly ms: number;
  readonly usPerItem: number;
}

export interface PlanningRaw {
  readonly prune: { readonly rows: readonly SeriesRow[]; readonly perItemGrowth: number | null };
  readonly discovery: { readonly rows: readonly SeriesRow[]; readonly perItemGrowth: number | null };
}

export interface Row {
  readonly section: string;
  readonly what: string;
  /** The figure: a ratio or a count. */
  readonly value: string;
  readonly target: string;
  /** null: no target, context only. */
  readonly met: boolean | null;
  /** Absolute figures, for context only. */
  readonly context: string;
}

const MiB = 1024 * 1024;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const x = (r: number) => `${r.toFixed(2)}×`;
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}
const calls = (c: Counts) => c.zfs + c.ssh;
const mib = (b: number) => `${(b / MiB).toFixed(2)} MiB`;

/** Wall time minus what the lab's logging wrappers cost (one extra fork per logged call). */
function corrected(run: ToolRun, perCallMs: number): number {
  return Math.max(1, run.ms - calls(run.counts) * perCallMs);
}

/** A run's time, with its samples when it has several (its time is then their median). */
function timing(t: ToolRun): string {
  return t.samplesMs && t.samplesMs.length > 1
    ? `${s(t.ms)} (median of ${t.samplesMs.map((m) => s(m)).join(', ')})`
    : s(t.ms);
}

export function cycleRows(c: CyclesRaw, perCallMs: number): Row[] {
  const rows: Row[] = [];
  const n = c.datasets;
  const speed = (
    section: string,
    zbm: ToolRun,
    other: ToolRun,
    name: string,
    target: number | null,
    zbmName = 'zbm',
  ) => {
    const r = other.ms / zbm.ms;
    const rc = corrected(other, perCallMs) / corrected(zbm, perCallMs);
    rows.push({
      section,
      what: `${zbmName} speed-up over ${name}`,
      value: `${x(r)} (${x(rc)} without the wrappers' cost)`,
      target: target === null ? '—' : `≥ ${target}×`,
      met: target === null ? null : Math.min(r, rc) >= target,
      context: `${zbmName} ${timing(zbm)}, ${name} ${timing(other)}`,
    });
  };
  const idle = c.idle;
  speed('idle cycle', idle.zbm, idle.syncoidLoop, 'syncoid per-dataset loop', 5);
  speed('idle cycle', idle.zbm, idle.syncoidRecursive, 'syncoid -r', 5);
  if (idle.zbmJobs) {
    const name = `zbm --jobs ${idle.zbmJobs.jobs}`;
    speed('idle cycle', idle.zbmJobs, idle.syncoidLoop, 'syncoid per-dataset loop', 5, name);
    speed('idle cycle', idle.zbmJobs, idle.syncoidRecursive, 'syncoid -r', 5, name);
  }
  for (const [name, run] of [
    ['zbm', idle.zbm],
    ...(idle.zbmJobs ? ([[`zbm --jobs ${idle.zbmJobs.jobs}`, idle.zbmJobs]] as const) : []),
    ['syncoid loop', idle.syncoidLoop],
    ['syncoid -r', idle.syncoidRecursive],
  ] as const) {
    const cn = run.counts;
    rows.push({
      section: 'idle cycle',
      what: `${name}: zfs / ssh processes for ${n} datasets`,
      value: `${cn.zfs} zfs (${cn.zfsSource} node, ${cn.zfsTarget} backup server, ${cn.zfsOther} other) / ${cn.ssh} ssh`,
      target: '—',
      met: null,
      context: `${(cn.zfs / n).toFixed(1)} zfs + ${(cn.ssh / n).toFixed(1)} ssh per dataset`,
    });
  }
  // Growth of zbm's process count: from few guests to all. Per host would be flat (ratio ~1).
  const few = idle.zbmFewGuests;
  const growth = calls(idle.zbm.counts) / Math.max(1, calls(few.counts));
  const datasetsRatio = n / few.datasets;
  rows.push({
    section: 'idle cycle',
    what: `zbm zfs+ssh processes, ${few.datasets} → ${n} datasets (${few.guests} → ${c.guests} guests, 1 host pair)`,
    value: `${calls(few.counts)} → ${calls(idle.zbm.counts)} (${x(growth)} for ${x(datasetsRatio)} datasets)`,
    target: 'grows with hosts, not datasets (~1×)',
    met: growth <= 1.5,
    context: `per dataset: ${(calls(few.counts) / few.datasets).toFixed(1)} → ${(calls(idle.zbm.counts) / n).toFixed(1)}`,
  });
  rows.push({
    section: 'idle cycle',
    what: 'zbm vs syncoid loop: processes started',
    value: x(calls(idle.syncoidLoop.counts) / Math.max(1, calls(idle.zbm.counts))),
    target: '—',
    met: null,
    context: `${calls(idle.zbm.counts)} vs ${calls(idle.syncoidLoop.counts)} zfs+ssh`,
  });

  const small = c.small;
  speed('small-change cycle', small.zbm, small.syncoidLoop, 'syncoid per-dataset loop', null);
  speed('small-change cycle', small.zbm, small.syncoidRecursive, 'syncoid -r', null);
  const expected = small.writtenPerDataset * n;
  for (const [name, run] of [
    ['zbm', small.zbm],
    ['syncoid loop', small.syncoidLoop],
    ['syncoid -r', small.syncoidRecursive],
  ] as const) {
    rows.push({
      section: 'small-change cycle',
      what: `${name}: bytes moved / bytes written (${n} × 1 MiB)`,
      value: x((run.targetWritten ?? 0) / expected),
      target: '—',
      met: null,
      context: `${mib(run.targetWritten ?? 0)} on the target${run.bytes === undefined ? '' : `, stream ${mib(run.bytes)}`}`,
    });
  }
  return rows;
}

export function datapathRows(d: DatapathRaw): Row[] {
  const rows: Row[] = [];
  const bare = median(d.bareMs);
  const ssh = median(d.sshMs);
  const n = d.bareMs.length;
  const both = (label: string, t: ZbmTransfer, least: number) => {
    if (t.transferMs === null) {
      rows.push({
        section: 'data path',
        what: `zbm ${label}: throughput`,
        value: 'not measured (transfer not found in the logs)',
        target: `≥ ${least}`,
        met: false,
        context: `wall ${s(t.wallMs)}`,
      });
      return;
    }
    const vsSsh = ssh / t.transferMs;
    const vsBare = bare / t.transferMs;
    rows.push({
      section: 'data path',
      what: `zbm ${label}: throughput / zfs send | ssh | zfs receive`,
      value: x(vsSsh),
      target: `≥ ${least}`,
      met: vsSsh >= least,
      context: `${d.streamMiB} MiB, medians of ${n}: zbm ${s(t.transferMs)} (${(d.streamBytes / MiB / (t.transferMs / 1000)).toFixed(1)} MiB/s), ssh pipeline ${s(ssh)}`,
    });
    rows.push({
      section: 'data path',
      what: `zbm ${label}: throughput / bare zfs send | zfs receive`,
      value: x(vsBare),
      target: '≥ 0.95',
      met: vsBare >= 0.95,
      context: `bare pipeline ${s(bare)} (${(d.streamBytes / MiB / (bare / 1000)).toFixed(1)} MiB/s); zbm's whole run ${s(t.wallMs)}`,
    });
  };
  both('(no progress)', d.zbm, 0.97);
  both('(progress on a TTY)', d.zbmProgress, 0.95);
  const bw = d.bwlimit;
  const limit = `${Math.round(bw.limitBytesPerSecond / 1024)}K`;
  if (bw.steadyBytesPerSecond) {
    const r = bw.steadyBytesPerSecond / bw.limitBytesPerSecond;
    rows.push({
      section: 'data path',
      what: `--bwlimit ${limit}: rate held while streaming (10–90 % of the stream) / limit`,
      value: x(r),
      target: '0.95–1.05',
      met: r >= 0.95 && r <= 1.05,
      context: `${(bw.steadyBytesPerSecond / MiB).toFixed(2)} MiB/s for a limit of ${(bw.limitBytesPerSecond / MiB).toFixed(2)} MiB/s (half this run's ssh pipeline rate, at most 8 MiB/s)`,
    });
  }
  if (bw.transferMs !== null) {
    const rate = bw.bytes / (bw.transferMs / 1000);
    rows.push({
      section: 'data path',
      what: `--bwlimit ${limit}: whole transfer (zfs send start → receive end) / limit`,
      value: x(rate / bw.limitBytesPerSecond),
      target: '—',
      met: null,
      context: `${mib(bw.bytes)} in ${s(bw.transferMs)} = ${(rate / MiB).toFixed(2)} MiB/s, process start-up included`,
    });
  }
  return rows;
}

export function startupRows(s: StartupRaw): Row[] {
  const ms = (v: number) => `${v.toFixed(0)} ms`;
  const medians = `medians of ${s.samples}`;
  return [
    {
      section: 'start-up',
      what: 'zbm start (--version): with V8 code cache / without',
      value: x(s.cachedMs / s.uncachedMs),
      target: '≤ 0.8×',
      met: s.cachedMs / s.uncachedMs <= 0.8,
      context: `${ms(s.cachedMs)} / ${ms(s.uncachedMs)}, ${medians}`,
    },
    {
      section: 'start-up',
      what: "zbm start with code cache / node's own start (node -e 0)",
      value: x(s.cachedMs / s.nodeMs),
      target: '',
      met: null,
      context: `${ms(s.cachedMs)} / ${ms(s.nodeMs)}`,
    },
    {
      section: 'start-up',
      what: 'one command through zbm serve / the same command over plain ssh (both multiplexed)',
      value: x(s.serveCallMs / s.plainCallMs),
      target: '',
      met: null,
      context: `${ms(s.serveCallMs)} / ${ms(s.plainCallMs)}: serve adds ${ms(s.serveCallMs - s.plainCallMs)} per call`,
    },
  ];
}

/**
 * The idle run of one guest against its unavoidable part, then where the traced sample's time
 * went: each command zbm ran, when it started (since zbm's own start) and how long it took.
 */
export function fixedRows(f: FixedRaw): Row[] {
  const zbm = median(f.zbmMs);
  const floor = median(f.unavoidableMs);
  const rows: Row[] = [
    {
      section: 'fixed cost',
      what: 'idle backup-pve of one guest / local listing + remote listing over a fresh ssh connection',
      value: x(zbm / floor),
      target: '≤ 2×',
      met: zbm / floor <= 2,
      context: `medians of ${f.samples}: ${s(zbm)} / ${s(floor)}`,
    },
  ];
  if (f.scriptMs?.length) {
    const script = median(f.scriptMs);
    rows.push(
      {
        section: 'fixed cost',
        what: "a shell script doing the backup's ZFS work alone (snapshot, both listings, send | ssh | receive, hold moved, destroy) / the two listings",
        value: x(script / floor),
        target: '—',
        met: null,
        context: `the floor of any tool doing those steps: ${s(script)} / ${s(floor)}`,
      },
      {
        section: 'fixed cost',
        what: 'idle backup-pve of one guest / that shell script',
        value: x(zbm / script),
        target: '—',
        met: null,
        context: `${s(zbm)} / ${s(script)}: what zbm adds (node, /etc/pve, planning, the guest's config)`,
      },
    );
  }
  const first = f.trace[0];
  if (first) {
    rows.push({
      section: 'fixed cost',
      what: "traced sample: zbm's start, /etc/pve, until its first command",
      value: `${first.at.toFixed(2)} s`,
      target: '—',
      met: null,
      context: `whole run ${f.traceTotalS.toFixed(2)} s`,
    });
  }
  for (const t of f.trace) {
    rows.push({
      section: 'fixed cost',
      what: `traced: ${t.host}: ${t.command.replaceAll('|', '\\|')}`,
      value: `${t.s.toFixed(2)} s`,
      target: '—',
      met: null,
      context: `from +${t.at.toFixed(2)} s`,
    });
  }
  return rows;
}

/** Replicate over the shaped link: whole commands, start-up included, medians. */
export function wanRows(w: LinkRaw): Row[] {
  const zbm = median(w.zbmMs);
  const syncoid = median(w.syncoidMs);
  const bare = median(w.bareMs);
  const link = `${w.streamMiB} MiB at ${w.rateMbit} Mbit/s, 40 ms, 0.1 % loss; medians of ${w.zbmMs.length}`;
  return [
    {
      section: 'wan',
      what: 'replicate over a WAN: zbm speed / syncoid (defaults: mbuffer, lzop)',
      value: x(syncoid / zbm),
      target: '≥ 1',
      met: syncoid / zbm >= 1,
      context: `${link}: zbm ${s(zbm)}, syncoid ${s(syncoid)}`,
    },
    {
      section: 'wan',
      what: 'replicate over a WAN: zbm speed / zfs send | ssh | zfs receive',
      value: x(bare / zbm),
      target: '≥ 0.95',
      met: bare / zbm >= 0.95,
      context: `bare ${s(bare)} (${(w.streamBytes / MiB / (bare / 1000)).toFixed(2)} MiB/s); zbm reported ${w.zbmBytes} bytes, the stream has ${w.streamBytes}`,
    },
  ];
}

/** One direction over the LAN: zbm's whole command against the bare pipe, by the data path's target. */
function lanRow(what: string, streamMiB: number, t: LinkSamples): Row {
  const zbm = median(t.zbmMs);
  const bare = median(t.bareMs);
  const rate = (ms: number) => `${(t.streamBytes / MiB / (ms / 1000)).toFixed(2)} MiB/s`;
  return {
    section: 'lan',
    what,
    value: x(bare / zbm),
    target: '≥ 0.97',
    met: bare / zbm >= 0.97,
    context: `${streamMiB} MiB, medians of ${t.zbmMs.length}: zbm ${s(zbm)} (${rate(zbm)}, whole command), bare ${s(bare)} (${rate(bare)}); zbm reported ${t.zbmBytes} bytes, the stream has ${t.streamBytes}`,
  };
}

/**
 * Replicate over the VMs' own link, push and (when measured) pull: the data path's target, as for
 * backup-pve. Whole commands, zbm's start-up and listings included, against the bare pipe's fresh
 * ssh connection.
 */
export function lanRows(l: LinkRaw): Row[] {
  const syncoid = median(l.syncoidMs);
  const rows: Row[] = [
    lanRow('replicate (push) to the replica VM: zbm speed / zfs send | ssh | zfs receive', l.streamMiB, l),
    {
      section: 'lan',
      what: 'the same: zbm speed / syncoid (defaults: mbuffer, lzop)',
      value: x(syncoid / median(l.zbmMs)),
      target: '—',
      met: null,
      context: `syncoid ${s(syncoid)}`,
    },
  ];
  if (l.pull?.zbmMs.length && l.pull.bareMs.length) {
    rows.push(
      lanRow(
        'replicate --pull from the replica VM: zbm speed / ssh zfs send | zfs receive',
        l.streamMiB,
        l.pull,
      ),
    );
  }
  return rows;
}

export function memoryRows(c: CyclesRaw | undefined, d: DatapathRaw | undefined): Row[] {
  const rows: Row[] = [];
  const peaks: [string, number][] = [];
  if (c?.idle.zbm.peakRssKiB) peaks.push([`idle cycle, ${c.datasets} disks`, c.idle.zbm.peakRssKiB]);
  if (c?.small.zbm.peakRssKiB)
    peaks.push([`small-change cycle, ${c.datasets} disks`, c.small.zbm.peakRssKiB]);
  if (d?.zbm.peakRssKiB) peaks.push([`${d.streamMiB} MiB transfer`, d.zbm.peakRssKiB]);
  if (d?.big?.peakRssKiB) peaks.push([`${d.big.streamMiB} MiB transfer`, d.big.peakRssKiB]);
  if (d?.bwlimit.peakRssKiB)
    peaks.push([`${d.bwlimit.streamMiB} MiB transfer (--bwlimit)`, d.bwlimit.peakRssKiB]);
  for (const [what, kib] of peaks) {
    rows.push({
      section: 'memory',
      what: `zbm peak RSS: ${what}`,
      value: `${(kib / 1024).toFixed(0)} MB`,
      target: '< 150 MB',
      met: kib / 1024 < 150,
      context: '',
    });
  }
  if (d?.zbm.peakRssKiB && d.big?.peakRssKiB) {
    const r = d.big.peakRssKiB / d.zbm.peakRssKiB;
    rows.push({
      section: 'memory',
      what: `peak RSS ${d.big.streamMiB} MiB stream / ${d.streamMiB} MiB stream`,
      value: x(r),
      target: 'flat (≤ 1.05×), < 100 MB',
      met: r <= 1.05 && d.big.peakRssKiB / 1024 < 100,
      context: `stream ${x(d.big.streamMiB / d.streamMiB)} larger; ${(d.big.peakRssKiB / 1024).toFixed(0)} MB`,
    });
  }
  return rows;
}

export function planningRows(p: PlanningRaw): Row[] {
  const rows: Row[] = [];
  const one = (label: string, series: PlanningRaw['prune']) => {
    const first = series.rows[0];
    const last = series.rows.at(-1);
    if (!first || !last || series.perItemGrowth === null) return;
    rows.push({
      section: 'planning',
      what: `${label}: time per item, ${first.items} → ${last.items}`,
      value: `${x(series.perItemGrowth)} per item for ${x(last.items / first.items)} items`,
      target: 'near linear (≤ 2× per item)',
      met: series.perItemGrowth <= 2,
      context: series.rows
        .map((r) => `${r.items}: ${r.usPerItem.toFixed(2)} µs/item (${r.ms.toFixed(1)} ms)`)
        .join('; '),
    });
  };
  const tail = (label: string, series: PlanningRaw['prune']) => {
    const a = series.rows.at(-2);
    const b = series.rows.at(-1);
    if (!a || !b || series.rows.length < 3) return;
    const g = b.usPerItem / a.usPerItem;
    rows.push({
      section: 'planning',
      what: `${label}: time per item, ${a.items} → ${b.items}`,
      value: `${x(g)} per item for ${x(b.items / a.items)} items`,
      target: 'near linear (≤ 2× per item)',
      met: g <= 2,
      context: 'the largest sizes only: past the CPU caches',
    });
  };
  one('prune planner, snapshots of one dataset', p.prune);
  tail('prune planner, snapshots of one dataset', p.prune);
  one('discovery, guests', p.discovery);
  return rows;
}

export function markdownTable(rows: readonly Row[]): string {
  const esc = (t: string) => t.replace(/\|/g, '\\|');
  const lines = [
    '| section | figure | value | target | met | context (absolute, this machine) |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const met = r.met === null ? '' : r.met ? 'yes' : '**no**';
    lines.push(
      `| ${esc(r.section)} | ${esc(r.what)} | ${esc(r.value)} | ${esc(r.target)} | ${met} | ${esc(r.context)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
