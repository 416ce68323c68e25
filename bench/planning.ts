/**
 * Planning benchmarks: prune's planner over long snapshot histories and the discovery of many
 * guests, timed on generated data at several sizes. What matters is the growth: time per item
 * should stay flat from the smallest size to the largest (linear total time). Prints JSON.
 *
 *   node --expose-gc --import tsx bench/planning.ts [--sizes 1000,10000,100000,200000] [--guests 100,1000,10000]
 */
import { type DatasetInfo, planDataset, retentionFor, type SnapInfo } from '../src/prune/plan.ts';
import type { KeepRules } from '../src/prune/retention.ts';
import { discover, type PveState } from '../src/pve/index.ts';

const PREFIX = 'bak-zbm-';
const RULES: KeepRules = { last: 24, hourly: 48, daily: 30, weekly: 8, monthly: 12, yearly: 5 };

function arg(name: string, fallback: number[]): number[] {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  return (process.argv[i + 1] ?? '').split(',').map(Number);
}

/** zbm's snapshot name for a time (seconds): `bak-zbm-YYYYMMDDTHHMMSSZ`. */
function zbmName(t: number): string {
  return `${PREFIX}${new Date(t * 1000)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

/** n hourly zbm snapshots ending at a fixed time, a foreign one every 1000. */
function history(n: number): DatasetInfo {
  const end = Date.UTC(2026, 10, 26, 12) / 1000;
  const snapshots: SnapInfo[] = [];
  for (let i = 0; i < n; i++) {
    const t = end - (n - 1 - i) * 3600;
    const short = i % 1000 === 999 ? `autosnap_${i}` : zbmName(t);
    snapshots.push({ short, guid: String(1e15 + i), createtxg: 1000 + i, creation: t });
  }
  return { name: 'main/bak-zbm/vm-100-disk-0', snapshots };
}

function prunePlan(ds: DatasetInfo): number {
  const retention = retentionFor(ds, PREFIX, RULES, 'Europe/Berlin');
  // The replica has everything but the newest 10: the newest-common search walks back over them.
  const remoteSnaps = ds.snapshots.slice(0, -10).map((s) => ({ guid: s.guid }));
  const held = ds.snapshots.at(-11);
  const plan = planDataset({
    dataset: ds,
    prefix: PREFIX,
    retention,
    holds: new Map(held ? [[held.short, ['zbm-base:pve:zbm-dest']]] : []),
    remote: { kind: 'listed', remote: 'zbm-replica', dataset: ds.name, snapshots: remoteSnaps },
  });
  return plan.destroy.length + plan.keep.length;
}

function pveState(guests: number): PveState {
  const ids: Record<string, unknown> = {};
  const configs = new Map<number, string>();
  for (let i = 0; i < guests; i++) {
    const vmid = 1000 + i;
    const ct = i % 4 === 3;
    ids[String(vmid)] = { node: i % 10 === 9 ? 'pve2' : 'pve1', type: ct ? 'lxc' : 'qemu', version: 1 };
    configs.set(
      vmid,
      ct
        ? `arch: amd64\nhostname: ct${vmid}\nmemory: 512\nmp0: local-zfs:subvol-${vmid}-disk-1,mp=/srv,backup=1,size=8G\nrootfs: local-zfs:subvol-${vmid}-disk-0,size=8G\n`
        : `agent: 1\nboot: order=scsi0\ncores: 2\nmemory: 2048\nname: vm${vmid}\nnet0: virtio=BC:24:11:00:00:01,bridge=vmbr0\nscsi0: local-zfs:vm-${vmid}-disk-0,iothread=1,size=32G\nscsi1: local-zfs:vm-${vmid}-disk-1,size=64G\nefidisk0: local-zfs:vm-${vmid}-disk-2,size=1M\nide2: local:iso/debian.iso,media=cdrom\nscsihw: virtio-scsi-single\n\n[before-upgrade]\nscsi0: local-zfs:vm-${vmid}-disk-0,size=32G\nsnaptime: 1700000000\n`,
    );
  }
  const storageCfg =
    'dir: local\n\tpath /var/lib/vz\n\tcontent iso,backup\n\nzfspool: local-zfs\n\tpool rpool/data\n\tsparse\n\tcontent images,rootdir\n';
  return { node: 'pve1', vmlist: JSON.stringify({ version: 1, ids }), storageCfg, configs };
}

/** Best of reps runs (the least disturbed by the machine's other load), in milliseconds. */
function best(reps: number, fn: () => number): { ms: number; check: number } {
  let ms = Number.POSITIVE_INFINITY;
  let check = 0;
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < reps; i++) {
    // Garbage of the previous run must not be collected on this one's clock.
    gc?.();
    const t0 = performance.now();
    check = fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return { ms, check };
}

function series(sizes: number[], make: (n: number) => unknown, fn: (input: never) => number) {
  const rows = sizes.map((n) => {
    const input = make(n) as never;
    for (let i = 0; i < 3; i++) fn(input); // warm-up: JIT and caches
    const reps = n >= 100_000 ? 3 : n >= 10_000 ? 5 : 20;
    const { ms, check } = best(reps, () => fn(input));
    return { items: n, ms: Number(ms.toFixed(3)), usPerItem: Number(((ms * 1000) / n).toFixed(3)), check };
  });
  const first = rows[0];
  const last = rows.at(-1);
  const growth = first && last ? Number((last.usPerItem / first.usPerItem).toFixed(2)) : null;
  return { rows, perItemGrowth: growth };
}

const prune = series(arg('--sizes', [1000, 10_000, 100_000, 200_000]), history, prunePlan);
const discovery = series(arg('--guests', [100, 1000, 10_000]), pveState, (s: PveState) => {
  const d = discover(s, { localZfsRoot: 'rpool/data' });
  return d.guests.length;
});
process.stdout.write(
  `${JSON.stringify({ node: process.version, prune: { rules: RULES, ...prune }, discovery }, null, 2)}\n`,
);
