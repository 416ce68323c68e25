/**
 * The lab part of zbm's benchmark suite. Runs INSIDE the main lab VM (as root), bundled by
 * bench/run.sh into one .mjs: builds its own fixtures (N guests × 2 zvols, the fake /etc/pve),
 * then runs zbm and its baselines (syncoid, bare `zfs send | zfs receive`) one after the other on
 * the same data, and prints every raw measurement as one JSON object on stdout. bench/report.ts
 * turns it into ratios. Progress goes to stderr.
 *
 *   node scenarios.mjs [--guests 30] [--scale-guests 5] [--stream-mib 256] [--bw-stream-mib 64]
 *                      [--bwlimit-mib 8] [--skip startup,cycles,datapath]
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { processIo } from '../../src/host/proc-io.ts';
import { type Counts, countInvocations, parseLog, transferLines } from '../lib/logs.ts';
import { median } from '../lib/report.ts';

const MiB = 1024 * 1024;
const REAL_ZFS = '/usr/sbin/zfs';
const ZFS_LOG = '/var/log/lab/zfs.log';
const SSH_LOG = '/var/log/lab/ssh.log';
const DATA = 'rpool/data';
const ZBM_ROOT = 'main/bak-zbm';
const SYNCOID_ROOT = 'main/bak-syncoid';
const DEST = 'zbm-dest';
/** The first data-path guest; the --bwlimit check uses the next one. */
const DATAPATH_VMID = 990;
const ZVOL_SIZE = '16M';
/** Random data in every zvol before the first backup. */
const INITIAL_KIB = 1024;

interface Options {
  guests: number;
  scaleGuests: number;
  streamMiB: number;
  bwStreamMiB: number;
  bwlimitMiB: number;
  /** A stream this large once more, for the memory of a long transfer (0: not measured). */
  bigStreamMiB: number;
  /** Samples of each data-path measurement, taken in turn; the report takes their medians. */
  samples: number;
  /** The increment replicated over the shaped link to the replica VM, and the link's rate. */
  wanStreamMiB: number;
  wanRateMbit: number;
  /** The increment replicated over the unshaped link to the replica VM. */
  lanStreamMiB: number;
  skip: Set<string>;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    guests: 30,
    scaleGuests: 5,
    streamMiB: 256,
    bwStreamMiB: 64,
    bwlimitMiB: 8,
    bigStreamMiB: 1024,
    samples: 3,
    wanStreamMiB: 128,
    wanRateMbit: 24,
    lanStreamMiB: 256,
    skip: new Set(),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1] ?? '';
    const num = () => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer, got ${v}`);
      i++;
      return n;
    };
    if (a === '--guests') o.guests = num();
    else if (a === '--scale-guests') o.scaleGuests = num();
    else if (a === '--stream-mib') o.streamMiB = num();
    else if (a === '--bw-stream-mib') o.bwStreamMiB = num();
    else if (a === '--bwlimit-mib') o.bwlimitMiB = num();
    else if (a === '--big-stream-mib') o.bigStreamMiB = num();
    else if (a === '--samples') o.samples = num();
    else if (a === '--wan-stream-mib') o.wanStreamMiB = num();
    else if (a === '--wan-rate-mbit') o.wanRateMbit = num();
    else if (a === '--lan-stream-mib') o.lanStreamMiB = num();
    else if (a === '--skip') {
      for (const s of v.split(',')) o.skip.add(s);
      i++;
    } else throw new Error(`unknown option ${a}`);
  }
  o.scaleGuests = Math.min(o.scaleGuests, o.guests);
  return o;
}

const started = performance.now();
function note(msg: string): void {
  process.stderr.write(`[bench +${((performance.now() - started) / 1000).toFixed(0)}s] ${msg}\n`);
}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the process, milliseconds. */
  readonly ms: number;
  /** Peak resident set (VmHWM) seen while polling, KiB; 0 when not polled. */
  readonly peakRssKiB: number;
  /** [epoch seconds, bytes read] of the process, sampled with the RSS (/proc/<pid>/io rchar). */
  readonly reads: readonly (readonly [number, number])[];
  /** Epoch seconds when it was started and when it ended. */
  readonly startEpoch: number;
  readonly endEpoch: number;
}

function vmHwmKiB(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Runs a program, times it, and (rss) polls its peak RSS every 50 ms: VmHWM only grows. */
function run(
  file: string,
  args: readonly string[],
  opts: { rss?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const startEpoch = Date.now() / 1000;
    const t0 = performance.now();
    const spawnOpts: SpawnOptions = { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env };
    const child = spawn(file, args, spawnOpts);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let peak = 0;
    const reads: [number, number][] = [];
    const poll = opts.rss
      ? setInterval(() => {
          if (!child.pid) return;
          peak = Math.max(peak, vmHwmKiB(child.pid));
          const r = processIo(child.pid)?.rchar ?? null;
          if (r !== null) reads.push([Date.now() / 1000, r]);
        }, 50)
      : undefined;
    child.on('error', (err) => {
      if (poll) clearInterval(poll);
      reject(err);
    });
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      resolve({
        code: code ?? 255,
        stdout,
        stderr,
        ms: performance.now() - t0,
        peakRssKiB: peak,
        reads,
        startEpoch,
        endEpoch: Date.now() / 1000,
      });
    });
  });
}

async function sh(script: string): Promise<string> {
  const r = await run('bash', ['-c', `set -euo pipefail\n${script}`]);
  if (r.code !== 0) throw new Error(`failed (exit ${r.code}): ${script}\n${r.stderr}`);
  return r.stdout;
}

function must(r: RunResult, what: string): RunResult {
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  }
  return r;
}

// --- invocation logs ----------------------------------------------------------------------

async function clearLogs(): Promise<void> {
  await writeFile(ZFS_LOG, '');
  await writeFile(SSH_LOG, '');
}

async function readLogs() {
  const [z, s] = await Promise.all([
    readFile(ZFS_LOG, 'utf8').catch(() => ''),
    readFile(SSH_LOG, 'utf8').catch(() => ''),
  ]);
  return { zfs: parseLog(z), ssh: parseLog(s) };
}

async function counted(fn: () => Promise<RunResult>): Promise<{ run: RunResult; counts: Counts }> {
  await clearLogs();
  const r = await fn();
  const logs = await readLogs();
  return { run: r, counts: countInvocations(logs.zfs, logs.ssh) };
}

// --- fixtures -----------------------------------------------------------------------------

function diskNames(vmid: number): string[] {
  return [`vm-${vmid}-disk-0`, `vm-${vmid}-disk-1`];
}

function guestConfig(vmid: number, disks: readonly string[], size: string): string {
  const mac = `BC:24:11:${((vmid >> 16) & 255).toString(16).padStart(2, '0')}:${((vmid >> 8) & 255)
    .toString(16)
    .padStart(2, '0')}:${(vmid & 255).toString(16).padStart(2, '0')}`.toUpperCase();
  // No `agent: 1`: nothing to freeze, so the benchmark measures zbm and ZFS, not the fake qm.
  return [
    'boot: order=scsi0',
    'cores: 1',
    'memory: 512',
    `name: bench-${vmid}`,
    `net0: virtio=${mac},bridge=vmbr0`,
    'ostype: l26',
    ...disks.map((d, i) => `scsi${i}: local-zfs:${d},size=${size}`),
    'scsihw: virtio-scsi-single',
    '',
  ].join('\n');
}

async function writePve(guests: readonly { vmid: number; disks: string[]; size: string }[]): Promise<void> {
  const dir = '/etc/pve/nodes/pve1/qemu-server';
  await mkdir(dir, { recursive: true });
  const ids: Record<string, unknown> = {};
  for (const g of guests) {
    ids[String(g.vmid)] = { node: 'pve1', type: 'qemu', version: 1 };
    await writeFile(`${dir}/${g.vmid}.conf`, guestConfig(g.vmid, g.disks, g.size));
  }
  await writeFile('/etc/pve/.vmlist', `${JSON.stringify({ version: 1, ids }, null, 1)}\n`);
}

/** Creates sparse zvols (parallel, the real zfs: fixtures stay out of the logs) and waits for /dev/zvol. */
async function createZvols(names: readonly string[], size: string): Promise<void> {
  await sh(`printf '%s\\n' ${names.join(' ')} | xargs -P 6 -I{} ${REAL_ZFS} create -s -V ${size} ${DATA}/{}`);
  const t0 = Date.now();
  const deadline = t0 + 180_000;
  for (;;) {
    await sh('udevadm settle');
    const missing = names.find((n) => !existsSync(`/dev/zvol/${DATA}/${n}`));
    if (!missing) return;
    if (Date.now() > deadline) throw new Error(`/dev/zvol/${DATA}/${missing} never appeared`);
    // On a loaded host udev has been seen to miss a zvol's event: replay the block devices' events.
    if (Date.now() - t0 > 15_000) await sh('udevadm trigger --action=add --subsystem-match=block');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Writes random data into zvols at offsetKiB, sizeKiB each, flushed: the next snapshot holds it. */
async function writeRandom(names: readonly string[], offsetKiB: number, sizeKiB: number): Promise<void> {
  const chunk = Math.min(sizeKiB * 1024, 4 * MiB);
  const queue = [...names];
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const fh = await open(`/dev/zvol/${DATA}/${n}`, 'r+');
      try {
        let done = 0;
        while (done < sizeKiB * 1024) {
          const len = Math.min(chunk, sizeKiB * 1024 - done);
          await fh.write(randomBytes(len), 0, len, offsetKiB * 1024 + done);
          done += len;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

// --- the tools ------------------------------------------------------------------------------

function zbmArgs(root: string, extra: readonly string[] = []): string[] {
  return [
    'backup-pve',
    '--remote',
    DEST,
    '--prefix',
    'bak-zbm-',
    '--local-zfs-root',
    DATA,
    '--remote-zfs-root',
    root,
    '--remote-metadata-dir',
    '/root/backups_metadata',
    '-y',
    ...extra,
  ];
}

interface ZbmJson {
  guests: { vmid: number; bytes: number; result: string }[];
}

function zbmBytes(r: RunResult): number {
  const j = JSON.parse(r.stdout) as ZbmJson;
  const bad = j.guests.filter((g) => g.result !== 'ok');
  if (bad.length > 0) throw new Error(`zbm: guests not ok: ${JSON.stringify(bad)}`);
  return j.guests.reduce((n, g) => n + g.bytes, 0);
}

/** The bytes a `zbm replicate --json` run moved, over all its datasets. */
function replicatedBytes(r: RunResult): number {
  return (JSON.parse(r.stdout) as { datasets: { bytes: number }[] }).datasets.reduce(
    (n, d) => n + d.bytes,
    0,
  );
}

async function zbm(root: string, extra: readonly string[] = []): Promise<RunResult> {
  return must(await run('zbm', [...zbmArgs(root, extra), '--json'], { rss: true }), 'zbm backup-pve');
}

/** syncoid as an administrator scripts it: one call per dataset, in a loop. */
async function syncoidLoop(datasets: readonly string[]): Promise<RunResult> {
  const script = datasets
    .map((d) => `syncoid ${DATA}/${d} root@${DEST}:${SYNCOID_ROOT}/${d}`)
    .join(' || rc=1\n');
  return must(await run('bash', ['-c', `rc=0\n${script} || rc=1\nexit $rc`]), 'syncoid loop');
}

/** syncoid -r over the whole storage: one call (it also syncs rpool/data itself, a 61st dataset). */
async function syncoidRecursive(): Promise<RunResult> {
  return must(await run('syncoid', ['-r', DATA, `root@${DEST}:${SYNCOID_ROOT}`]), 'syncoid -r');
}

/** Snapshots under root with their `written`: bytes a run moved = written of the snapshots it added. */
async function snapshotsWritten(root: string): Promise<Map<string, number>> {
  const out = await sh(`${REAL_ZFS} list -Hp -t snapshot -o name,written -r ${root}`);
  const m = new Map<string, number>();
  for (const line of out.split('\n')) {
    const [name, w] = line.split('\t');
    if (name && w !== undefined) m.set(name, Number(w));
  }
  return m;
}

async function bytesAdded(root: string, before: Map<string, number>): Promise<number> {
  const after = await snapshotsWritten(root);
  let n = 0;
  for (const [name, w] of after) if (!before.has(name)) n += w;
  return n;
}

/** Cost of the logging wrapper per zfs call (a `date` fork and a log append), to correct for it. */
async function wrapperCostMs(): Promise<{ wrappedMs: number; realMs: number; perCallMs: number }> {
  const reps = 8;
  const loop = (bin: string) =>
    run('bash', ['-c', `for i in $(seq ${reps}); do ${bin} list -H -o name rpool >/dev/null; done`]);
  await loop('/usr/local/sbin/zfs');
  const wrapped = await loop('/usr/local/sbin/zfs');
  const real = await loop(REAL_ZFS);
  const wrapped2 = await loop('/usr/local/sbin/zfs');
  const real2 = await loop(REAL_ZFS);
  const w = (wrapped.ms + wrapped2.ms) / 2;
  const r = (real.ms + real2.ms) / 2;
  return { wrappedMs: w / reps, realMs: r / reps, perCallMs: Math.max(0, (w - r) / reps) };
}

// --- scenarios -------------------------------------------------------------------------------

interface ToolRun {
  ms: number;
  counts: Counts;
  bytes?: number;
  peakRssKiB?: number;
  samplesMs?: number[];
}

function toolRun(c: { run: RunResult; counts: Counts }, bytes?: number): ToolRun {
  return {
    ms: Math.round(c.run.ms),
    counts: c.counts,
    ...(bytes === undefined ? {} : { bytes }),
    ...(c.run.peakRssKiB ? { peakRssKiB: c.run.peakRssKiB } : {}),
  };
}

/** A tool's run with its time the median of several samples, each kept. */
function sampled(t: ToolRun, ms: readonly number[]): ToolRun {
  return { ...t, ms: Math.round(median(ms)), samplesMs: ms.map(Math.round) };
}

/** zbm's idle cycle is also measured with this many disks sent at a time (--jobs). */
const IDLE_JOBS = 4;

async function cycles(o: Options) {
  const vmids = Array.from({ length: o.guests }, (_, i) => 1000 + i);
  const datasets = vmids.flatMap(diskNames);
  note(`fixture: ${o.guests} guests × 2 zvols of ${ZVOL_SIZE} (${INITIAL_KIB} KiB of random data each)`);
  await createZvols(datasets, ZVOL_SIZE);
  await writeRandom(datasets, 0, INITIAL_KIB);
  await writePve(vmids.map((vmid) => ({ vmid, disks: diskNames(vmid), size: ZVOL_SIZE })));

  note('initial full backups (context only)');
  const zbmFull = await counted(() => zbm(ZBM_ROOT));
  const syncoidFull = await counted(syncoidRecursive);

  note('idle cycle: zbm');
  const zbmIdle = await counted(() => zbm(ZBM_ROOT));
  note(`idle cycle: zbm took ${(zbmIdle.run.ms / 1000).toFixed(1)} s; zbm --jobs ${IDLE_JOBS}`);
  // Still idle: the run above only added a snapshot per disk, which this one sends as it would any.
  const zbmIdleJobs = await counted(() => zbm(ZBM_ROOT, ['--jobs', String(IDLE_JOBS)]));
  note(`idle cycle: zbm --jobs ${IDLE_JOBS} took ${(zbmIdleJobs.run.ms / 1000).toFixed(1)} s; syncoid loop`);
  const loopIdle = await counted(() => syncoidLoop(datasets));
  note(`idle cycle: syncoid loop took ${(loopIdle.run.ms / 1000).toFixed(1)} s; syncoid -r`);
  const recIdle = await counted(syncoidRecursive);
  note(`idle cycle: syncoid -r took ${(recIdle.run.ms / 1000).toFixed(1)} s`);
  // The pair that the 5× target compares, sampled more in turn (the counts are the first run's).
  const zbmIdleMs = [zbmIdle.run.ms];
  const recIdleMs = [recIdle.run.ms];
  for (let i = 1; i < o.samples; i++) {
    note(`idle cycle: zbm and syncoid -r, sample ${i + 1}`);
    zbmIdleMs.push((await zbm(ZBM_ROOT)).ms);
    recIdleMs.push((await syncoidRecursive()).ms);
  }

  // The same zbm run over fewer guests: how its process count grows with the guests.
  const few = vmids.slice(0, o.scaleGuests);
  note(`idle cycle: zbm on ${few.length} guest(s) (growth of the counts)`);
  const zbmFew = await counted(() =>
    zbm(
      ZBM_ROOT,
      few.flatMap((v) => ['--vmid', String(v)]),
    ),
  );

  note('small-change cycle: 1 MiB into every zvol; zbm');
  // Everyone is in sync here; the first write is moved by zbm, then by the syncoid loop (same
  // bytes); a second write is moved by syncoid -r (the loop already moved the first one).
  await writeRandom(datasets, 4096, 1024);
  let before = await snapshotsWritten(ZBM_ROOT);
  const zbmSmall = await counted(() => zbm(ZBM_ROOT));
  const zbmSmallWritten = await bytesAdded(ZBM_ROOT, before);
  note(`small-change: zbm took ${(zbmSmall.run.ms / 1000).toFixed(1)} s; syncoid loop`);
  before = await snapshotsWritten(SYNCOID_ROOT);
  const loopSmall = await counted(() => syncoidLoop(datasets));
  const loopSmallWritten = await bytesAdded(SYNCOID_ROOT, before);
  note(`small-change: syncoid loop took ${(loopSmall.run.ms / 1000).toFixed(1)} s; syncoid -r`);
  await writeRandom(datasets, 6144, 1024);
  before = await snapshotsWritten(SYNCOID_ROOT);
  const recSmall = await counted(syncoidRecursive);
  const recSmallWritten = await bytesAdded(SYNCOID_ROOT, before);
  note(`small-change: syncoid -r took ${(recSmall.run.ms / 1000).toFixed(1)} s`);

  return {
    guests: o.guests,
    datasets: datasets.length,
    initial: { zbm: toolRun(zbmFull, zbmBytes(zbmFull.run)), syncoidRecursive: toolRun(syncoidFull) },
    idle: {
      zbm: sampled(toolRun(zbmIdle, zbmBytes(zbmIdle.run)), zbmIdleMs),
      syncoidLoop: toolRun(loopIdle),
      syncoidRecursive: sampled(toolRun(recIdle), recIdleMs),
      zbmFewGuests: { guests: few.length, datasets: few.length * 2, ...toolRun(zbmFew) },
      zbmJobs: { jobs: IDLE_JOBS, ...toolRun(zbmIdleJobs, zbmBytes(zbmIdleJobs.run)) },
    },
    small: {
      writtenPerDataset: MiB,
      zbm: { ...toolRun(zbmSmall, zbmBytes(zbmSmall.run)), targetWritten: zbmSmallWritten },
      syncoidLoop: { ...toolRun(loopSmall), targetWritten: loopSmallWritten },
      syncoidRecursive: { ...toolRun(recSmall), targetWritten: recSmallWritten },
    },
  };
}

/** When the stream into target started (its `zfs send` was logged) and ended (its receive exited). */
function watchTransfer(dataset: string, target: string): { done: () => Promise<{ s: number } | null> } {
  let startT = 0;
  let endT = 0;
  let recvPid = 0;
  const timer = setInterval(() => {
    if (endT) return;
    if (!recvPid) {
      const found = transferLines(parseLog(readFileSync(ZFS_LOG, 'utf8')), dataset, target);
      if (found) {
        startT = found.send.t;
        recvPid = found.receive.pid;
      }
    }
    if (recvPid && !existsSync(`/proc/${recvPid}`)) endT = Date.now() / 1000;
  }, 20);
  return {
    done: async () => {
      clearInterval(timer);
      if (!recvPid) {
        const found = transferLines(parseLog(await readFile(ZFS_LOG, 'utf8')), dataset, target);
        if (!found) return null;
        startT = found.send.t;
      }
      return endT ? { s: endT - startT } : null;
    },
  };
}

/**
 * The rate at which zbm read its stream between 10 % and 90 % of it (the slope of its rchar): what
 * --bwlimit holds, without the start-up of zfs send and the receive's last commit.
 */
function steadyRate(reads: readonly (readonly [number, number])[], bytes: number): number | null {
  const first = reads[0];
  if (!first || bytes <= 0) return null;
  const base = first[1];
  const a = reads.find(([, r]) => r - base >= bytes * 0.1);
  const b = [...reads].reverse().find(([, r]) => r - base <= bytes * 0.9);
  if (!a || !b || b[0] - a[0] < 1) return null;
  return (b[1] - a[1]) / (b[0] - a[0]);
}

/** Destroys a benchmark target tree, releasing zbm's holds on it first. */
async function destroyTree(root: string): Promise<void> {
  await sh(`${releaseHolds(`-r ${root}`)}\n${REAL_ZFS} destroy -r ${root}`);
}

/** Shell (sh or bash) that releases every hold on the snapshots `zfs list <where>` finds. */
function releaseHolds(where: string, zfs = REAL_ZFS): string {
  return `snaps=$(${zfs} list -H -o name -t snapshot ${where})
if [ -n "$snaps" ]; then
  ${zfs} holds -H $snaps | while IFS="$(printf '\\t')" read -r snap tag _; do ${zfs} release "$tag" "$snap"; done
fi`;
}

/** Drops the zbm snapshots newer than base from dataset (holds released, bookmarks too). */
async function resetSource(dataset: string, base: string): Promise<void> {
  await sh(`
    ds=${dataset}
    for s in $(${REAL_ZFS} list -H -o name -t snapshot -d 1 "$ds" | grep "@bak-zbm-" | grep -v "@${base}$" || true); do
      for tag in $(${REAL_ZFS} holds -H "$s" | cut -f2); do ${REAL_ZFS} release "$tag" "$s"; done
      ${REAL_ZFS} destroy "$s"
    done
    for b in $(${REAL_ZFS} list -H -o name -t bookmark -d 1 "$ds" || true); do ${REAL_ZFS} destroy "$b"; done
  `);
}

interface TraceLine {
  readonly at: number;
  readonly s: number;
  readonly host: string;
  readonly command: string;
}

interface ZbmSample {
  readonly wallMs: number;
  readonly transferMs: number | null;
  readonly bytes?: number;
  readonly peakRssKiB?: number;
}

/** The sample of median transfer time (one not found in the logs counts as the slowest). */
function medianSample(samples: readonly ZbmSample[]): ZbmSample {
  const sorted = [...samples].sort(
    (a, b) => (a.transferMs ?? Number.POSITIVE_INFINITY) - (b.transferMs ?? Number.POSITIVE_INFINITY),
  );
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  if (!m) throw new Error('no data-path sample');
  return m;
}

/** Joins a guest with one zvol of size to the node's /etc/pve, for zbm --vmid. */
async function addGuest(vmid: number, disk: string, size: string): Promise<void> {
  const all = JSON.parse(await readFile('/etc/pve/.vmlist', 'utf8')) as { ids: Record<string, unknown> };
  await writeFile(`/etc/pve/nodes/pve1/qemu-server/${vmid}.conf`, guestConfig(vmid, [disk], size));
  all.ids[String(vmid)] = { node: 'pve1', type: 'qemu', version: 1 };
  await writeFile('/etc/pve/.vmlist', `${JSON.stringify({ version: 1, ids: all.ids }, null, 1)}\n`);
}

/**
 * One zbm backup of a large increment (1 GiB in the full run), for its memory: with the stream going
 * from zfs to ssh through the kernel, zbm's peak must not grow with it. Its source and target are
 * destroyed afterwards, so the pools keep their room.
 */
async function bigStream(o: Options): Promise<ZbmSample & { readonly streamMiB: number }> {
  const vmid = DATAPATH_VMID + 2;
  const disk = `vm-${vmid}-disk-0`;
  const ds = `${DATA}/${disk}`;
  const size = `${o.bigStreamMiB + 64}M`;
  const base = 'bak-zbm-20260101T000000Z';
  note(`data path: a ${o.bigStreamMiB} MiB increment, once, for memory`);
  await createZvols([disk], size);
  await writeRandom([disk], 0, 1024);
  await sh(`${REAL_ZFS} snapshot ${ds}@${base}`);
  await addGuest(vmid, disk, size);
  await sh(
    `${REAL_ZFS} create main/bench-big && ${REAL_ZFS} send ${ds}@${base} | ${REAL_ZFS} receive -u main/bench-big/${disk}`,
  );
  await writeRandom([disk], 1024, o.bigStreamMiB * 1024);
  const r = must(
    await run(
      'zbm',
      [...zbmArgs('main/bench-big', ['--vmid', String(vmid), '--keep-source', '5']), '--json'],
      { rss: true },
    ),
    'zbm big stream',
  );
  const bytes = zbmBytes(r);
  await destroyTree('main/bench-big');
  await resetSource(ds, base);
  await sh(`${REAL_ZFS} destroy -r ${ds}`);
  return {
    streamMiB: o.bigStreamMiB,
    wallMs: Math.round(r.ms),
    transferMs: null,
    bytes,
    ...(r.peakRssKiB ? { peakRssKiB: r.peakRssKiB } : {}),
  };
}

async function datapath(o: Options) {
  const vmid = DATAPATH_VMID;
  const bwVmid = DATAPATH_VMID + 1;
  const disk = `vm-${vmid}-disk-0`;
  const bwDisk = `vm-${bwVmid}-disk-0`;
  const ds = `${DATA}/${disk}`;
  const bwDs = `${DATA}/${bwDisk}`;
  const size = `${o.streamMiB + 64}M`;
  const bwSize = `${o.bwStreamMiB + 64}M`;
  // A base named like zbm's, taken by hand, so every tool sends the same increment from it.
  const base = 'bak-zbm-20260101T000000Z';
  note(`data path: a ${o.streamMiB} MiB increment`);
  await createZvols([disk], size);
  await createZvols([bwDisk], bwSize);
  await writeRandom([disk, bwDisk], 0, 1024);
  await sh(`${REAL_ZFS} snapshot ${ds}@${base} ${bwDs}@${base}`);
  // Guests 990/991 join the node's guests; every zbm run below names one of them with --vmid.
  await addGuest(vmid, disk, size);
  await addGuest(bwVmid, bwDisk, bwSize);

  // Every receiver gets its own target, seeded with the base before each sample.
  const seed = (t: string) =>
    sh(
      `${REAL_ZFS} create main/bench-${t} && ${REAL_ZFS} send ${ds}@${base} | ${REAL_ZFS} receive -u main/bench-${t}/${disk}`,
    );
  await sh(
    `${REAL_ZFS} create main/bench-bw && ${REAL_ZFS} send ${bwDs}@${base} | ${REAL_ZFS} receive -u main/bench-bw/${bwDisk}`,
  );

  await writeRandom([disk], 1024, o.streamMiB * 1024);
  await writeRandom([bwDisk], 1024, o.bwStreamMiB * 1024);
  // The baselines send base → bench-s1; zbm sends base → its own new snapshot of the same data.
  await sh(`${REAL_ZFS} snapshot ${ds}@bench-s1`);
  const streamBytes = Number(
    (
      await sh(`${REAL_ZFS} send -nP -L -e -c -i @${base} ${ds}@bench-s1 | awk '$1=="size"{print $2}'`)
    ).trim(),
  );

  const send = `zfs send -L -e -c -i @${base} ${ds}@bench-s1`;
  const bare = async (t: string) => {
    note(`data path: bare zfs send | zfs receive (${t})`);
    await seed(t);
    const r = must(
      await run('bash', ['-c', `set -o pipefail; ${send} | zfs receive -s -u main/bench-${t}/${disk}`]),
      'bare pipeline',
    );
    await destroyTree(`main/bench-${t}`);
    return Math.round(r.ms);
  };
  const overSsh = async (t: string) => {
    note(`data path: zfs send | ssh | zfs receive (${t})`);
    await seed(t);
    const r = must(
      await run('bash', [
        '-c',
        `set -o pipefail; ${send} | ssh ${DEST} zfs receive -s -u main/bench-${t}/${disk}`,
      ]),
      'ssh pipeline',
    );
    await destroyTree(`main/bench-${t}`);
    return Math.round(r.ms);
  };
  const zbmRun = async (t: string, tty: boolean) => {
    note(`data path: zbm${tty ? ' with progress display (under script, a TTY)' : ''}`);
    await seed(t);
    await resetSource(ds, base);
    await clearLogs();
    const target = `main/bench-${t}/${disk}`;
    const w = watchTransfer(ds, target);
    const args = zbmArgs(`main/bench-${t}`, ['--vmid', String(vmid), '--keep-source', '5']);
    let r: RunResult;
    let bytes: number | undefined;
    if (tty) {
      const cmd = ['zbm', ...args].join(' ');
      r = must(await run('script', ['-qec', cmd, '/dev/null']), 'zbm under script');
      if (!/\d (B|KiB|MiB|GiB)\/s/.test(r.stdout))
        throw new Error('zbm under script showed no progress line');
    } else {
      r = must(await run('zbm', [...args, '--json'], { rss: true }), 'zbm data path');
      bytes = zbmBytes(r);
    }
    const window = await w.done();
    await destroyTree(`main/bench-${t}`);
    return {
      wallMs: Math.round(r.ms),
      transferMs: window ? Math.round(window.s * 1000) : null,
      ...(bytes === undefined ? {} : { bytes }),
      ...(r.peakRssKiB ? { peakRssKiB: r.peakRssKiB } : {}),
    };
  };

  // In turn, so that whatever else loads the machine meets every tool alike.
  const bareMs: number[] = [];
  const sshMs: number[] = [];
  const zbmSamples: ZbmSample[] = [];
  const ttySamples: ZbmSample[] = [];
  for (let i = 0; i < o.samples; i++) {
    bareMs.push(await bare('bare'));
    sshMs.push(await overSsh('ssh'));
    zbmSamples.push(await zbmRun('zbm', false));
    ttySamples.push(await zbmRun('zbmtty', true));
  }
  // The limit must be well below what the link does, or the check measures the link: at most half
  // the rate of this run's ssh pipeline (the lab's emulated ssh is slow, more so on a loaded host).
  const sshRate = streamBytes / (Math.min(...sshMs) / 1000);
  const limitKiB = Math.max(64, Math.floor(Math.min(o.bwlimitMiB * MiB, sshRate / 2) / 1024));
  note(`data path: zbm --bwlimit ${limitKiB}K on a ${o.bwStreamMiB} MiB stream`);
  await clearLogs();
  const bwTarget = `main/bench-bw/${bwDisk}`;
  const w = watchTransfer(bwDs, bwTarget);
  const bwRun = must(
    await run(
      'zbm',
      [
        ...zbmArgs('main/bench-bw', [
          '--vmid',
          String(bwVmid),
          '--keep-source',
          '5',
          '--bwlimit',
          `${limitKiB}K`,
        ]),
        '--json',
      ],
      { rss: true },
    ),
    'zbm --bwlimit',
  );
  const bwWindow = await w.done();
  const steady = steadyRate(bwRun.reads, zbmBytes(bwRun));
  const bwBytes = zbmBytes(bwRun);
  await destroyTree('main/bench-bw');

  const big = o.bigStreamMiB > 0 ? await bigStream(o) : undefined;

  return {
    streamMiB: o.streamMiB,
    streamBytes,
    bareMs,
    sshMs,
    zbm: medianSample(zbmSamples),
    zbmProgress: medianSample(ttySamples),
    zbmSamples,
    zbmProgressSamples: ttySamples,
    ...(big ? { big } : {}),
    bwlimit: {
      limitBytesPerSecond: limitKiB * 1024,
      streamMiB: o.bwStreamMiB,
      bytes: bwBytes,
      wallMs: Math.round(bwRun.ms),
      transferMs: bwWindow ? Math.round(bwWindow.s * 1000) : null,
      steadyBytesPerSecond: steady,
      peakRssKiB: bwRun.peakRssKiB,
    },
  };
}

/** Samples per measurement of the start-up section, interleaved so that load hits all alike. */
const STARTUP_SAMPLES = 9;

/**
 * What a zbm process costs before it does anything, and what one command through `zbm serve`
 * costs over a plain ssh command: node's start-up, the bundle's compile with and without V8's code
 * cache, and the per-call price of a forced command (every command a node sends to a backup
 * server that runs `zbm serve` is a new process).
 */
async function startup() {
  await sh(`
    zfs create -p ${ZBM_ROOT}/startup
    test -f /root/.ssh/bench_serve || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/bench_serve
    sed -i '/bench_serve_marker/d' /root/.ssh/authorized_keys
    echo "command=\\"zbm serve --root ${ZBM_ROOT} --metadata-dir /root/bench-metadata --tag zbm-base:pve:bench\\",restrict $(cat /root/.ssh/bench_serve.pub | cut -d' ' -f1,2) bench_serve_marker" >> /root/.ssh/authorized_keys
    for h in serve plain; do
      ssh -O exit -o ControlPath=/run/bench-$h ${DEST} 2>/dev/null || true
    done
    ssh -MNf -o ControlPath=/run/bench-serve -o IdentityFile=/root/.ssh/bench_serve ${DEST}
    ssh -MNf -o ControlPath=/run/bench-plain ${DEST}
    zbm --version >/dev/null
  `);
  const list = ['zfs', 'list', '-H', '-o', 'name', '-r', ZBM_ROOT];
  const off = { ...process.env, ZBM_CODE_CACHE: 'off' };
  const kinds = {
    node: () => run('node', ['-e', '0']),
    cached: () => run('zbm', ['--version']),
    uncached: () => run('zbm', ['--version'], { env: off }),
    serve: () => run('ssh', ['-o', 'ControlPath=/run/bench-serve', DEST, ...list]),
    plain: () => run('ssh', ['-o', 'ControlPath=/run/bench-plain', DEST, ...list]),
  } as const;
  const ms: Record<keyof typeof kinds, number[]> = {
    node: [],
    cached: [],
    uncached: [],
    serve: [],
    plain: [],
  };
  for (let i = 0; i < STARTUP_SAMPLES; i++) {
    for (const [k, fn] of Object.entries(kinds) as [keyof typeof kinds, () => Promise<RunResult>][]) {
      const r = must(await fn(), `start-up: ${k}`);
      ms[k].push(r.ms);
    }
  }
  await sh(
    'for h in serve plain; do ssh -O exit -o ControlPath=/run/bench-$h zbm-dest 2>/dev/null || true; done',
  );
  note(
    `start-up medians (ms): ${Object.entries(ms)
      .map(([k, v]) => `${k} ${median(v).toFixed(0)}`)
      .join(', ')}`,
  );
  return {
    samples: STARTUP_SAMPLES,
    nodeMs: median(ms.node),
    cachedMs: median(ms.cached),
    uncachedMs: median(ms.uncached),
    serveCallMs: median(ms.serve),
    plainCallMs: median(ms.plain),
  };
}

const FIXED_VMID = DATAPATH_VMID + 3;

/** One ZBM_TRACE=1 line: a command's start (s since zbm started), its duration, host and argv. */
function parseTrace(stderr: string): TraceLine[] {
  return stderr.split('\n').flatMap((l) => {
    const m = /^trace: \+([\d.]+)s ([\d.]+)s ([^:]+): (.*)$/.exec(l);
    return m
      ? [{ at: Number(m[1]), s: Number(m[2]), host: m[3] ?? '', command: (m[4] ?? '').slice(0, 160) }]
      : [];
  });
}

/**
 * What an idle backup-pve of one guest costs against the part no tool can avoid: one listing of
 * the node's datasets and one of the backup server's over a fresh ssh connection, as two shell
 * commands. Also against a shell script that does the ZFS work of such a backup and no more (its own
 * zvol and target, so that zbm's planner never sees it): the floor of any tool that takes, sends,
 * protects and rotates a snapshot on this lab. Samples in turn; one sample's ZBM_TRACE gives the
 * breakdown.
 */
async function fixedCost(o: Options) {
  const disk = `vm-${FIXED_VMID}-disk-0`;
  const root = 'main/bench-fixed';
  note('fixed cost: one guest, one 16 MiB zvol, a first backup');
  await createZvols([disk, 'bench-fixed-script'], '16M');
  await writeRandom([disk, 'bench-fixed-script'], 0, 1024);
  await addGuest(FIXED_VMID, disk, '16M');
  const args = zbmArgs(root, ['--vmid', String(FIXED_VMID)]);
  must(await run('zbm', args), 'first backup of the fixed-cost guest');
  const listings = `zfs list -H -p -t all -r -o name,guid,createtxg ${DATA} >/dev/null && ssh -o ControlMaster=no -o ControlPath=none ${DEST} zfs list -H -p -t all -r -o name,guid,createtxg ${root} >/dev/null`;

  const scriptDs = `${DATA}/bench-fixed-script`;
  const scriptRoot = 'main/bench-fixed-script';
  await sh(
    `${REAL_ZFS} snapshot ${scriptDs}@s0 && ${REAL_ZFS} create ${scriptRoot} && ${REAL_ZFS} send ${scriptDs}@s0 | ${REAL_ZFS} receive -u ${scriptRoot}/disk && ${REAL_ZFS} hold bench ${scriptRoot}/disk@s0`,
  );
  // zbm's steps, each waiting for the one before as in zbm: snapshot, both listings (the remote one
  // opening the ssh master that the later steps share), the incremental stream, the hold moved to
  // the new snapshot in one remote command, the old snapshot destroyed on the node.
  const script = (i: number) => {
    const cm = `-o ControlPath=/run/bench-fixed-%C`;
    return `set -euo pipefail
zfs snapshot ${scriptDs}@s${i + 1}
zfs list -H -p -t all -r -o name,guid,createtxg ${DATA} >/dev/null
ssh -o ControlMaster=auto ${cm} -o ControlPersist=60 ${DEST} zfs list -H -p -t all -r -o name,guid,createtxg ${scriptRoot} >/dev/null
zfs send -i @s${i} ${scriptDs}@s${i + 1} | ssh ${cm} ${DEST} zfs receive -u ${scriptRoot}/disk
ssh ${cm} ${DEST} 'zfs hold bench ${scriptRoot}/disk@s${i + 1} && zfs release bench ${scriptRoot}/disk@s${i}'
zfs destroy ${scriptDs}@s${i}
ssh ${cm} -O exit ${DEST} 2>/dev/null`;
  };

  const zbmMs: number[] = [];
  const unavoidableMs: number[] = [];
  const scriptMs: number[] = [];
  let trace: TraceLine[] = [];
  let totalS = 0;
  for (let i = 0; i < o.samples + 2; i++) {
    note(`fixed cost: idle backup-pve, the two listings and the shell script, sample ${i + 1}`);
    const r = must(await run('zbm', args, { env: { ...process.env, ZBM_TRACE: '1' } }), 'idle backup-pve');
    zbmMs.push(Math.round(r.ms));
    if (i === 0) {
      trace = parseTrace(r.stderr);
      totalS = r.ms / 1000;
    }
    unavoidableMs.push(Math.round(must(await run('bash', ['-c', listings]), 'the two listings').ms));
    scriptMs.push(Math.round(must(await run('bash', ['-c', script(i)]), 'the shell script').ms));
  }
  await destroyTree(scriptRoot);
  await sh(`${REAL_ZFS} destroy -r ${scriptDs}`);
  return { samples: zbmMs.length, zbmMs, unavoidableMs, scriptMs, trace, traceTotalS: totalS };
}

const REPLICA = 'zbm-replica';
const WAN_VMID = DATAPATH_VMID + 4;

/** Runs a shell script on the replica VM (through the main VM's ssh to it). */
function onReplica(script: string): Promise<string> {
  return sh(`ssh ${REPLICA} ${shellQuoted(`set -eu\n${script}`)}`);
}

function shellQuoted(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Releases every hold on dataset's snapshots and destroys its bookmarks; with `to`, rolls it back to
 * that snapshot (destroying the later ones: a received copy must be as it was, or the next tool
 * would find it changed).
 */
function releaseAll(dataset: string, to?: string, zfs = 'zfs'): string {
  return `${releaseHolds(dataset, zfs)}
for b in $(${zfs} list -H -o name -t bookmark ${dataset} 2>/dev/null); do ${zfs} destroy "$b"; done
${to ? `${zfs} rollback -r ${dataset}@${to}` : ''}`;
}

/**
 * The offsite tier: one increment replicated from the main VM (the backup server) to the replica
 * VM by zbm replicate (push), by syncoid with its defaults (its own sync snapshot, mbuffer and
 * lzop in its pipe), and by a bare `zfs send | ssh | zfs receive`, in turn, each into its own copy
 * of the base. Shaped (the WAN): the link to the replica VM's forwarded port gets netem's 40 ms,
 * a rate cap and 0.1 % loss; unshaped (the LAN): the VMs' own link, at whatever it does. On the
 * LAN also the other way: an increment on the replica VM pulled by `zbm replicate --pull` and by
 * `ssh zfs send | zfs receive`.
 */
async function link(o: Options, shaped: boolean) {
  const kind = shaped ? 'wan' : 'lan';
  const streamMiB = shaped ? o.wanStreamMiB : o.lanStreamMiB;
  const src = `main/${kind}`;
  const disk = `vm-${WAN_VMID}-disk-0`;
  const ds = `${src}/${disk}`;
  const base = 'bak-zbm-20260101T000000Z';
  const next = 'bak-zbm-20260101T010000Z';
  const tools = ['zbm', 'syncoid', 'bare'] as const;
  note(
    shaped
      ? `wan: a ${streamMiB} MiB increment to the replica VM, ${o.wanRateMbit} Mbit/s, 40 ms, 0.1 % loss`
      : `lan: a ${streamMiB} MiB increment to the replica VM, the link unshaped`,
  );
  await sh(`
    ${REAL_ZFS} create -p ${src}
    ${REAL_ZFS} create -s -V ${streamMiB + 64}M ${ds}
    udevadm settle
    dd if=/dev/urandom of=/dev/zvol/${ds} bs=1M count=1 conv=notrunc,fsync status=none
    ${REAL_ZFS} snapshot ${ds}@${base}
  `);
  await onReplica(
    `for t in ${tools.join(' ')}; do zfs destroy -r main/${kind}-$t 2>/dev/null || true; zfs create -p main/${kind}-$t; done`,
  );
  for (const t of tools) {
    await sh(`${REAL_ZFS} send ${ds}@${base} | ssh ${REPLICA} zfs receive -u main/${kind}-${t}/${disk}`);
  }
  await sh(`
    dd if=/dev/urandom of=/dev/zvol/${ds} bs=1M count=${streamMiB} seek=1 conv=notrunc,fsync status=none
    ${REAL_ZFS} snapshot ${ds}@${next}
  `);
  const streamBytes = Number(
    (await sh(`${REAL_ZFS} send -L -e -c -i @${base} ${ds}@${next} | wc -c`)).trim(),
  );

  // Only the connections to the replica VM's forwarded port: the bench's own ssh stays as it was.
  const port = shaped ? (await sh(`ssh -G ${REPLICA} | awk '$1 == "port" {print $2}'`)).trim() : '';
  const dev = shaped
    ? (await sh(`ip route get 10.0.2.2 | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'`)).trim()
    : '';
  if (shaped)
    await sh(`
      modprobe sch_netem
      tc qdisc add dev ${dev} root handle 1: prio
      tc qdisc add dev ${dev} parent 1:3 handle 30: netem delay 40ms rate ${o.wanRateMbit}mbit loss 0.1%
      tc filter add dev ${dev} protocol ip parent 1: prio 1 u32 match ip dst 10.0.2.2/32 match ip dport ${port} 0xffff flowid 1:3
    `);
  const pullSrc = `main/${kind}-pullsrc`;
  const pullTargets = ['zbm', 'bare'] as const;
  let pullStreamBytes = 0;
  if (!shaped) {
    note(`${kind}: a ${streamMiB} MiB increment on the replica VM, to pull`);
    await onReplica(`
      zfs destroy -r ${pullSrc} 2>/dev/null || true
      zfs create -p ${pullSrc}
      zfs create -s -V ${streamMiB + 64}M ${pullSrc}/${disk}
      udevadm settle
      dd if=/dev/urandom of=/dev/zvol/${pullSrc}/${disk} bs=1M count=1 conv=notrunc,fsync status=none
      zfs snapshot ${pullSrc}/${disk}@${base}
    `);
    for (const t of pullTargets) {
      await sh(
        `${REAL_ZFS} create -p main/${kind}-pull-${t} && ssh ${REPLICA} zfs send ${pullSrc}/${disk}@${base} | ${REAL_ZFS} receive -u main/${kind}-pull-${t}/${disk}`,
      );
    }
    await onReplica(`
      dd if=/dev/urandom of=/dev/zvol/${pullSrc}/${disk} bs=1M count=${streamMiB} seek=1 conv=notrunc,fsync status=none
      zfs snapshot ${pullSrc}/${disk}@${next}
    `);
    pullStreamBytes = Number(
      (await onReplica(`zfs send -L -e -c -i @${base} ${pullSrc}/${disk}@${next} | wc -c`)).trim(),
    );
  }
  const ms: Record<(typeof tools)[number], number[]> = { zbm: [], syncoid: [], bare: [] };
  const pullMs: Record<(typeof pullTargets)[number], number[]> = { zbm: [], bare: [] };
  let zbmBytes = 0;
  let zbmPullBytes = 0;
  try {
    for (let i = 0; i < o.samples; i++) {
      note(`${kind}: sample ${i + 1}: zbm replicate`);
      const z = must(
        await run('zbm', [
          'replicate',
          '--remote',
          REPLICA,
          '--local-zfs-root',
          src,
          '--remote-zfs-root',
          `main/${kind}-zbm`,
          '--json',
        ]),
        `zbm replicate (${kind})`,
      );
      ms.zbm.push(Math.round(z.ms));
      zbmBytes = replicatedBytes(z);
      await onReplica(releaseAll(`main/${kind}-zbm/${disk}`, base));
      await sh(releaseAll(ds, undefined, REAL_ZFS));

      note(`${kind}: sample ${i + 1}: syncoid`);
      const y = must(
        await run('syncoid', [ds, `root@${REPLICA}:main/${kind}-syncoid/${disk}`]),
        `syncoid (${kind})`,
      );
      ms.syncoid.push(Math.round(y.ms));
      await onReplica(`zfs rollback -r main/${kind}-syncoid/${disk}@${base}`);
      await sh(
        `for s in $(${REAL_ZFS} list -H -o name -t snapshot ${ds} | grep '@syncoid_' || true); do ${REAL_ZFS} destroy "$s"; done`,
      );

      note(`${kind}: sample ${i + 1}: zfs send | ssh | zfs receive`);
      const b = must(
        await run('bash', [
          '-c',
          `set -o pipefail; zfs send -L -e -c -i @${base} ${ds}@${next} | ssh ${REPLICA} zfs receive -s -u main/${kind}-bare/${disk}`,
        ]),
        `bare pipeline (${kind})`,
      );
      ms.bare.push(Math.round(b.ms));
      await onReplica(`zfs rollback -r main/${kind}-bare/${disk}@${base}`);
      if (shaped) continue;

      note(`${kind}: sample ${i + 1}: zbm replicate --pull`);
      const p = must(
        await run('zbm', [
          'replicate',
          '--pull',
          '--remote',
          REPLICA,
          '--remote-zfs-root',
          pullSrc,
          '--local-zfs-root',
          `main/${kind}-pull-zbm`,
          '--json',
        ]),
        `zbm replicate --pull (${kind})`,
      );
      pullMs.zbm.push(Math.round(p.ms));
      zbmPullBytes = replicatedBytes(p);
      await sh(releaseAll(`main/${kind}-pull-zbm/${disk}`, base, REAL_ZFS));
      await onReplica(releaseAll(`${pullSrc}/${disk}`));

      note(`${kind}: sample ${i + 1}: ssh zfs send | zfs receive`);
      const pb = must(
        await run('bash', [
          '-c',
          `set -o pipefail; ssh ${REPLICA} zfs send -L -e -c -i @${base} ${pullSrc}/${disk}@${next} | zfs receive -s -u main/${kind}-pull-bare/${disk}`,
        ]),
        `bare pull pipeline (${kind})`,
      );
      pullMs.bare.push(Math.round(pb.ms));
      await sh(`${REAL_ZFS} rollback -r main/${kind}-pull-bare/${disk}@${base}`);
    }
  } finally {
    if (shaped) await sh(`tc qdisc del dev ${dev} root`);
  }
  await onReplica(`for t in ${tools.join(' ')}; do zfs destroy -r main/${kind}-$t; done`);
  await sh(`${REAL_ZFS} destroy -r ${src}`);
  if (!shaped) {
    await onReplica(`${releaseAll(`${pullSrc}/${disk}`)}\nzfs destroy -r ${pullSrc}`);
    for (const t of pullTargets) await destroyTree(`main/${kind}-pull-${t}`);
  }
  return {
    streamMiB,
    streamBytes,
    zbmBytes,
    rateMbit: shaped ? o.wanRateMbit : null,
    zbmMs: ms.zbm,
    syncoidMs: ms.syncoid,
    bareMs: ms.bare,
    ...(shaped
      ? {}
      : {
          pull: {
            streamBytes: pullStreamBytes,
            zbmBytes: zbmPullBytes,
            zbmMs: pullMs.zbm,
            bareMs: pullMs.bare,
          },
        }),
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  note(`lab-reset --empty, pools grown by 3 GiB each`);
  await sh('lab-reset --empty 2>/dev/null');
  await sh(`
    for p in rpool main; do
      rm -f /var/tmp/lab/$p-bench.img; truncate -s 3G /var/tmp/lab/$p-bench.img
      zpool add -f $p /var/tmp/lab/$p-bench.img
    done
    mkdir -p /etc/lab && touch /etc/lab/log-invocations
  `);
  const wrapper = await wrapperCostMs();
  const vm = {
    nproc: Number((await sh('nproc')).trim()),
    memMiB: Math.round(Number((await sh("awk '/MemTotal/{print $2}' /proc/meminfo")).trim()) / 1024),
    kernel: (await sh('uname -r')).trim(),
    zfs: (await sh(`${REAL_ZFS} version | head -1`)).trim(),
    syncoid: (await sh('syncoid --version 2>&1 | head -1')).trim(),
    node: process.version,
  };
  const result: Record<string, unknown> = { options: { ...o, skip: [...o.skip] }, vm, wrapper };
  // One section failing still reports the others.
  for (const [name, fn] of [
    ['startup', startup],
    ['fixed', fixedCost],
    ['cycles', cycles],
    ['datapath', datapath],
    ['wan', (x: Options) => link(x, true)],
    ['lan', (x: Options) => link(x, false)],
  ] as const) {
    if (o.skip.has(name)) continue;
    try {
      result[name] = await fn(o);
    } catch (err) {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      note(`${name} failed: ${msg}`);
      result[`${name}Error`] = msg;
    }
  }
  result.elapsedS = Math.round((performance.now() - started) / 1000);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  note('done');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
