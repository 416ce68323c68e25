/**
 * Which of a guest's disks a run backs up and where each goes on the backup server, decided before
 * anything is snapshotted; and how a guest is named in messages. Pure, so the choice can be tested
 * without a host.
 */
import { targetDataset } from '../conventions/names.ts';
import type { GuestDisk } from '../pve/disks.ts';
import type { Guest } from '../pve/index.ts';
import { TEMPLATE_SNAPSHOT } from '../pve/volumes.ts';
import type { Dataset } from '../zfs/types.ts';

/** A guest whose disks can be backed up: the ones that exist here, and where each goes. */
export interface PreparedGuest {
  readonly guest: Guest;
  readonly disks: readonly GuestDisk[];
  /** source dataset → target dataset */
  readonly targets: ReadonlyMap<string, string>;
  /**
   * A template (`template: 1`): zbm takes no snapshot of it; each disk's `@__base__` (which its
   * linked clones start from) goes once, named for the newest of them, created then.
   */
  readonly template: { readonly created: Date } | null;
}

/**
 * Which of a guest's disks this run backs up, and where. Pure: the warnings are returned for the
 * executor to log; a guest with nothing to back up ends here, skipped or failed.
 */
export function prepareGuest(
  guest: Guest,
  sourceListing: ReadonlyMap<string, Dataset>,
  remoteZfsRoot: string,
  node: string,
):
  | { readonly prepared: PreparedGuest; readonly warnings: readonly string[] }
  | { readonly result: 'failed' | 'skipped'; readonly error: string; readonly warnings: readonly string[] } {
  const warnings: string[] = [];
  const disks = guest.disks.filter((d) => {
    if (sourceListing.has(d.dataset)) return true;
    warnings.push(
      `${guestLabel(guest)}: disk ${d.key} (${d.value}): dataset ${d.dataset} does not exist on ${node}; not backed up`,
    );
    return false;
  });
  if (disks.length === 0) return { result: 'skipped', error: 'no disk that zbm can back up', warnings };
  const targets = new Map(disks.map((d) => [d.dataset, targetDataset(remoteZfsRoot, d.dataset)]));
  if (new Set(targets.values()).size !== targets.size) {
    return {
      result: 'failed',
      error: 'two of its disks would have the same name on the backup server',
      warnings,
    };
  }
  if (!guest.template) return { prepared: { guest, disks, targets, template: null }, warnings };
  let created = 0;
  for (const d of disks) {
    const base = sourceListing.get(d.dataset)?.snapshots.find((s) => s.short === TEMPLATE_SNAPSHOT);
    if (!base)
      return {
        result: 'failed',
        error: `it is a template, but its disk ${d.key} (${d.dataset}) has no @${TEMPLATE_SNAPSHOT}, the snapshot Proxmox makes of a template's disks: back it up again once Proxmox has made it`,
        warnings,
      };
    created = Math.max(created, base.creation);
  }
  return { prepared: { guest, disks, targets, template: { created: new Date(created * 1000) } }, warnings };
}

export function guestLabel(guest: Guest): string {
  return `guest ${guest.vmid}${guest.name ? ` (${guest.name})` : ''}`;
}
