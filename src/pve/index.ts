export { type GuestConfig, parseGuestConfig } from './config.ts';
export {
  configPath,
  type DiscoverOptions,
  type Discovery,
  discover,
  type Guest,
  type PveState,
  readPveState,
} from './discover.ts';
export {
  agentFreeze,
  type GuestDisk,
  parsePropertyString,
  type SelectOptions,
  type SkippedDisk,
  selectDisks,
} from './disks.ts';
export {
  guestLock,
  type LockDecision,
  type LockPlan,
  lockDecision,
  lockedMessage,
  PROXMOX_LOCKS,
  planLocks,
} from './locks.ts';
export { parseStorageCfg, type StorageEntry, type ZfsPool, zfsPools } from './storage.ts';
export { PveFormatError } from './text.ts';
export { type GuestType, parseVmlist, type VmlistEntry } from './vmlist.ts';
