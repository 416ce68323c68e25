/**
 * Proxmox VE's own operations on a guest's ZFS volumes, with exactly the zfs commands Proxmox runs
 * for them (docs: /work/shared/reference/proxmox.md, "What Proxmox runs on ZFS"; pve-storage's
 * ZFSPoolPlugin, qemu-server, pve-guest-common), run on the lab's node pve1. The lab has no
 * Proxmox, so the config bookkeeping around them is reduced to what zbm can see: the `lock:` line
 * Proxmox writes into the guest's config, and the config and .vmlist entry a destroy removes.
 * Each operation throws Proxmox's own message where Proxmox would refuse or fail.
 */
import { shellJoin } from '../../src/host/quote.ts';
import { sh, vm } from './lab.ts';

/** The lab's zfspool storage (storage.cfg: `zfspool: local-zfs`, `pool rpool/data`). */
const STORAGE = 'local-zfs';

export interface PveGuest {
  readonly vmid: number;
  readonly type: 'qemu' | 'lxc';
  /** The guest's volumes as datasets, in config order. */
  readonly disks: readonly string[];
}

export class ProxmoxRefused extends Error {
  override name = 'ProxmoxRefused';
}

const zfs = (args: readonly string[]) => sh(shellJoin(['zfs', ...args]), 'pve1');

export function configFile(g: Pick<PveGuest, 'vmid' | 'type'>): string {
  return `/etc/pve/nodes/pve1/${g.type === 'qemu' ? 'qemu-server' : 'lxc'}/${g.vmid}.conf`;
}

const volid = (dataset: string) => `${STORAGE}:${dataset.slice(dataset.lastIndexOf('/') + 1)}`;

/** The lock of the running config (the part before the first `[snapshot]` section), as Proxmox reads it. */
export async function lockOf(g: Pick<PveGuest, 'vmid' | 'type'>): Promise<string | null> {
  const text = await sh(shellJoin(['cat', configFile(g)]), 'pve1');
  const current = text.split(/^\[/m)[0] ?? '';
  return /^lock: *(\S+)/m.exec(current)?.[1] ?? null;
}

/** What Proxmox writes while an operation runs (`qm set --lock` is not in the lab's qm). */
export async function setLock(g: Pick<PveGuest, 'vmid' | 'type'>, lock: string): Promise<void> {
  await sh(shellJoin(['sed', '-i', `1i lock: ${lock}`, configFile(g)]), 'pve1');
}

/** `qm unlock`: the running config's lock line goes. */
export async function unlock(g: Pick<PveGuest, 'vmid' | 'type'>): Promise<void> {
  await sh(shellJoin(['sed', '-i', '0,/^\\[/{/^lock: /d}', configFile(g)]), 'pve1');
}

/** PVE::AbstractConfig::check_lock: every guest operation below refuses a locked guest first. */
async function checkLock(g: PveGuest): Promise<void> {
  const lock = await lockOf(g);
  if (lock !== null) throw new ProxmoxRefused(`${g.type === 'qemu' ? 'VM' : 'CT'} is locked (${lock})`);
}

/** `qm snapshot` / `pct snapshot` on ZFS: one `zfs snapshot <ds>@<name>` per volume. */
export async function snapshot(g: PveGuest, name: string): Promise<void> {
  await checkLock(g);
  for (const ds of g.disks) await zfs(['snapshot', `${ds}@${name}`]);
}

/**
 * ZFSPoolPlugin::volume_rollback_is_possible for one volume: the snapshots by creation
 * (`zfs list -H -r -t snapshot -o name -s creation`), and any after the target is a blocker.
 * Bookmarks are not listed, so a newer bookmark passes this check.
 */
export async function rollbackBlockers(dataset: string, snap: string): Promise<string[]> {
  const out = await zfs(['list', '-H', '-r', '-t', 'snapshot', '-o', 'name', '-s', 'creation', dataset]);
  const names = out
    .split('\n')
    .filter((l) => l.startsWith(`${dataset}@`))
    .map((l) => l.slice(dataset.length + 1));
  const at = names.indexOf(snap);
  if (at < 0)
    throw new ProxmoxRefused(`can't rollback, snapshot '${snap}' does not exist on '${volid(dataset)}'`);
  return names.slice(at + 1);
}

/**
 * `qm rollback` / `pct rollback` of a guest without replication jobs: every volume checked first
 * (any newer snapshot refuses, nothing changed yet), then the guest stopped and `lock: rollback`
 * written, then `zfs rollback <ds>@<snap>` per volume without -r, then the lock removed. A failed
 * `zfs rollback` leaves the lock, as in Proxmox (the admin runs `qm unlock`).
 */
export async function rollback(g: PveGuest, snap: string): Promise<void> {
  for (const ds of g.disks) {
    const blockers = await rollbackBlockers(ds, snap);
    if (blockers.length > 0)
      throw new ProxmoxRefused(`can't rollback, '${snap}' is not most recent snapshot on '${volid(ds)}'`);
  }
  await checkLock(g);
  await setLock(g, 'rollback');
  for (const ds of g.disks) await zfs(['rollback', `${ds}@${snap}`]);
  await unlock(g);
}

/**
 * `qm destroy` / `pct destroy`: `zfs destroy -r <ds>` for every volume (a failure is only a warning
 * in Proxmox, "Could not remove disk"), then the config goes and the guest leaves .vmlist. Returns
 * the volumes Proxmox could not remove, with zfs's message.
 */
export async function destroyGuest(g: PveGuest): Promise<string[]> {
  await checkLock(g);
  const failed: string[] = [];
  for (const ds of g.disks) {
    const r = await vm(shellJoin(['zfs', 'destroy', '-r', ds]), undefined, 'pve1');
    if (r.code !== 0) failed.push(`${ds}: ${r.stderr.trim()}`);
  }
  await sh(
    `rm -f ${shellJoin([configFile(g)])} && jq -c ${shellJoin([`del(.ids["${g.vmid}"])`])} /etc/pve/.vmlist > /etc/pve/.vmlist.new && mv /etc/pve/.vmlist.new /etc/pve/.vmlist`,
    'pve1',
  );
  return failed;
}

/** One pvesr job's state between its runs: the last replication snapshot both sides have. */
export interface ReplicationJob {
  readonly id: string;
  /** Where the other node's storage would be: the lab has one node, so another dataset stands in. */
  readonly targetRoot: string;
  last: string | null;
}

/**
 * One run of a pvesr storage replication job of guest g: on the target, the job's older
 * replication snapshots go (all but the last one in common); on the source, `zfs snapshot
 * <ds>@__replicate_<job>_<unixtime>__` per volume; per volume `zfs send -RpvU [-I <last>] --
 * <ds>@<new>` into `zfs recv -F -x encryption -- <target>` (pvesm export | pvesm import); then the
 * previous replication snapshot is destroyed on the source. Returns the new snapshot's name. `-U`
 * is left out only if this lab's zfs does not know it (it came with the OpenZFS Proxmox 9 ships).
 */
export async function replicateGuest(g: PveGuest, job: ReplicationJob): Promise<string> {
  await checkLock(g);
  const target = (ds: string) => `${job.targetRoot}/${ds.slice(ds.lastIndexOf('/') + 1)}`;
  for (const ds of g.disks) {
    const r = await vm(
      shellJoin(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', target(ds)]),
      undefined,
      'pve1',
    );
    const stale =
      r.code !== 0
        ? []
        : r.stdout
            .split('\n')
            .filter((n) => n.includes(`@__replicate_${job.id}_`) && !n.endsWith(`@${job.last}`));
    for (const s of stale) await zfs(['destroy', s]);
  }
  const snap = `__replicate_${job.id}_${Math.floor(Date.now() / 1000)}__`;
  for (const ds of g.disks) await zfs(['snapshot', `${ds}@${snap}`]);
  for (const ds of g.disks) {
    const from = job.last === null ? [] : ['-I', job.last];
    const send = (flags: string) => shellJoin(['zfs', 'send', flags, ...from, '--', `${ds}@${snap}`]);
    const recv = shellJoin(['zfs', 'recv', '-F', '-x', 'encryption', '--', target(ds)]);
    const probe = shellJoin(['zfs', 'send', '-nRU', '--', `${ds}@${snap}`]);
    await sh(
      `set -o pipefail; if ${probe} >/dev/null 2>&1; then ${send('-RpvU')} | ${recv}; else ${send('-Rpv')} | ${recv}; fi`,
      'pve1',
    );
  }
  if (job.last !== null) for (const ds of g.disks) await zfs(['destroy', `${ds}@${job.last}`]);
  job.last = snap;
  return snap;
}

/**
 * HA failover of g onto the disks pvesr replicated: its node is gone, and the guest runs on the
 * node that has the copies (only the config moves; the replicated copy becomes the disk). In the
 * lab both are on pve1, in two pools: each copy comes back under the disk's name with its
 * snapshots and their guids (`zfs send -R`), as the new node holds it.
 */
export async function failover(g: PveGuest, job: ReplicationJob): Promise<void> {
  for (const ds of g.disks) {
    const copy = `${job.targetRoot}/${ds.slice(ds.lastIndexOf('/') + 1)}`;
    const snaps = await zfs(['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', copy]);
    const newest = snaps.trim().split('\n').at(-1) ?? '';
    await zfs(['destroy', '-r', ds]);
    await sh(
      `set -o pipefail; ${shellJoin(['zfs', 'send', '-R', newest])} | ${shellJoin(['zfs', 'recv', ds])}`,
      'pve1',
    );
  }
  await sh('udevadm settle', 'pve1');
}

/**
 * A volume that comes back under its name as a fresh zvol with the same content and no snapshot:
 * `qm disk move` (zfs create -V, a block copy, `zfs destroy -r` of the old one: "snapshots will not
 * be moved!"), as an online migration with local disks leaves it on the new node.
 */
export async function freshVolume(dataset: string): Promise<void> {
  const size = (await zfs(['get', '-H', '-p', '-o', 'value', 'volsize', dataset])).trim();
  const moving = `${dataset}-moving`;
  await zfs(['create', '-V', size, moving]);
  await sh('udevadm settle', 'pve1');
  await sh(
    `dd if=${shellJoin([`/dev/zvol/${dataset}`])} of=${shellJoin([`/dev/zvol/${moving}`])} bs=1M conv=fsync status=none`,
    'pve1',
  );
  await zfs(['destroy', '-r', dataset]);
  await zfs(['rename', moving, dataset]);
  await sh('udevadm settle', 'pve1');
}

/**
 * `qm template`: each volume renamed `vm-<id>-…` → `base-<id>-…` (the rename carries its snapshots)
 * and snapshotted `@__base__`; the config names the new volumes and says `template: 1`. Returns the
 * template's volumes.
 */
export async function template(g: PveGuest): Promise<PveGuest> {
  await checkLock(g);
  const disks: string[] = [];
  for (const ds of g.disks) {
    const base = ds.replace(/\/vm-(\d+-)/, '/base-$1');
    await zfs(['rename', ds, base]);
    await zfs(['snapshot', `${base}@__base__`]);
    await sh(shellJoin(['sed', '-i', `s|${volid(ds)}|${volid(base)}|`, configFile(g)]), 'pve1');
    disks.push(base);
  }
  await sh(shellJoin(['sed', '-i', '1i template: 1', configFile(g)]), 'pve1');
  await sh('udevadm settle', 'pve1');
  return { ...g, disks };
}

/**
 * `qm clone <template> <vmid>` (linked): `zfs clone <base>@__base__ <pool>/vm-<vmid>-disk-0`, a
 * config whose volume is `local-zfs:base-…/vm-<vmid>-disk-0`, and the guest in .vmlist.
 */
export async function linkedClone(t: PveGuest, vmid: number): Promise<PveGuest> {
  const base = t.disks[0] ?? '';
  const ds = `${base.slice(0, base.lastIndexOf('/'))}/vm-${vmid}-disk-0`;
  await zfs(['clone', `${base}@__base__`, ds]);
  const g: PveGuest = { vmid, type: 'qemu', disks: [ds] };
  const own = base.slice(base.lastIndexOf('/') + 1);
  const config = `name: clone${vmid}\nmemory: 512\nscsi0: ${STORAGE}:${own}/vm-${vmid}-disk-0,size=64M\n`;
  await sh(
    `printf %s ${shellJoin([config])} > ${shellJoin([configFile(g)])} && jq -c ${shellJoin([`.ids["${vmid}"] = {node: "pve1", type: "qemu", version: 1}`])} /etc/pve/.vmlist > /etc/pve/.vmlist.new && mv /etc/pve/.vmlist.new /etc/pve/.vmlist`,
    'pve1',
  );
  await sh('udevadm settle', 'pve1');
  return g;
}
