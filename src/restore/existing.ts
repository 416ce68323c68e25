/**
 * The guest that has a VMID on this Proxmox node's cluster now, read from /etc/pve as restore
 * plans against it: its node, its type, its config when it is on this node, and whether it runs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseVmlist } from '../pve/index.ts';
import type { GuestType } from '../pve/vmlist.ts';
import type { ExistingGuest } from './plan.ts';

/** Where pmxcfs shows the cluster's configuration. */
export const PVE = '/etc/pve';

function guestRunning(type: GuestType, vmid: number): boolean {
  if (type === 'lxc') return existsSync(`/sys/fs/cgroup/lxc/${vmid}`);
  try {
    const pid = Number(readFileSync(`/var/run/qemu-server/${vmid}.pid`, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`);
  } catch {
    return false;
  }
}

/**
 * The guest that has vmid now: a config file under any node (pmxcfs keeps every node's folder),
 * else an entry of .vmlist. zbm never writes .vmlist: pmxcfs derives it from the config files.
 */
export function findGuest(vmid: number, vmlist: string, node: string): ExistingGuest | null {
  let nodes: string[] = [];
  try {
    nodes = readdirSync(path.join(PVE, 'nodes'));
  } catch {}
  for (const n of [node, ...nodes.filter((x) => x !== node)]) {
    for (const type of ['qemu', 'lxc'] as const) {
      const file = path.join(PVE, 'nodes', n, type === 'qemu' ? 'qemu-server' : 'lxc', `${vmid}.conf`);
      if (!existsSync(file)) continue;
      return {
        node: n,
        type,
        configText: n === node ? readFileSync(file, 'utf8') : undefined,
        running: n === node && guestRunning(type, vmid),
      };
    }
  }
  const e = parseVmlist(vmlist).entries.find((x) => x.vmid === vmid);
  return e ? { node: e.node, type: e.type, running: false } : null;
}
