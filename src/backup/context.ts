/**
 * The types every step of a backup-pve run shares: the run's context (hosts, options, log), each
 * guest's state as it goes through the steps (GuestRun), and the results the command renders. They
 * live apart from the steps so that each step's module depends on them and not on another step.
 */
import type { Host } from '../host/host.ts';
import type { RateLimiter } from '../host/rate.ts';
import type { Guest } from '../pve/index.ts';
import type { SyncResult } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import type { Zfs } from '../zfs/zfs.ts';
import type { PreparedGuest } from './guest.ts';

export interface BackupLog {
  error(msg: string): void;
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

export interface BackupContext {
  readonly node: string;
  readonly local: Host;
  readonly remote: Host;
  readonly localZfs: Zfs;
  readonly remoteZfs: Zfs;
  readonly prefix: string;
  readonly remoteZfsRoot: string;
  readonly metadataDir: string;
  readonly keepSource: number;
  readonly lockWaitMs: number;
  /** Disks sent at the same time (1: one after the other). */
  readonly jobs?: number;
  readonly limiter?: RateLimiter;
  readonly log: BackupLog;
  readonly now: () => Date;
  readonly onProgress?: (label: string, bytes: number) => void;
  /**
   * The guest's Proxmox lock as its config says now: read again right before its snapshot (and
   * freeze), so that a vzdump, snapshot or migration that began during the run is left alone.
   */
  readonly currentLock?: (guest: Guest) => Promise<string | null>;
}

export interface DiskResult {
  readonly key: string;
  readonly source: string;
  readonly target: string;
  readonly mode: SyncResult['mode'] | 'failed';
  readonly resumed: SyncResult['resumed'];
  readonly bytes: number;
  readonly error?: string;
}

export interface GuestResult {
  readonly vmid: number;
  readonly name: string;
  readonly type: 'qemu' | 'lxc';
  readonly snapshot: string | null;
  readonly frozen: boolean;
  readonly disks: readonly DiskResult[];
  readonly bytes: number;
  readonly durationMs: number;
  readonly result: 'ok' | 'failed' | 'skipped';
  readonly error?: string;
  /** zbm snapshots on this node that are no longer needed, to destroy once the run is confirmed. */
  readonly obsolete: readonly string[];
}

/** One guest's way through the run. */
export interface GuestRun {
  readonly guest: Guest;
  readonly label: string;
  prepared: PreparedGuest | null;
  /** From its snapshot to its last disk sent: the run-wide steps after the sends are not its own. */
  started: number;
  finished: number | null;
  snapshot: string | null;
  at: Date | null;
  frozen: boolean;
  disks: DiskResult[];
  /** target: the chain the disk went to; primary: its first chain, `<root>/<volume>` (plan/chain.ts). */
  synced: { source: Dataset; target: string; primary: string; sync: SyncResult }[];
  /** Each disk sent, as listed after its snapshot (a template's @__base__ under zbm's name): the manifest's. */
  listed: Map<string, Dataset>;
  obsolete: string[];
  /** Set when the guest ended early (skipped, or failed before any disk was sent). */
  end: { result: 'failed' | 'skipped'; error: string } | null;
  metadataError?: string;
}
