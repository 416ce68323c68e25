/**
 * The first record of a `zfs send` stream (DRR_BEGIN), read by `zbm serve` before zfs sees it, and
 * the rules an incoming stream must pass: one plain full or incremental stream of one zbm snapshot
 * that continues the target's chain, named for a time that is newer than everything the target
 * has and not in the future. Everything a receive could be talked into beyond that (renaming
 * snapshots, creating a clone whose origin is found by guid anywhere in the pool, a name that
 * makes retention destroy real backups) starts in this record. Pure.
 *
 * Layout, from OpenZFS include/sys/zfs_ioctl.h (`dmu_replay_record_t`, `struct drr_begin`), in
 * the sender's byte order (the magic tells which):
 *
 *   offset  size  field
 *        0     4  drr_type            DRR_BEGIN = 0
 *        4     4  drr_payloadlen      bytes of the nvlist that follows the record
 *        8     8  drr_magic           DMU_BACKUP_MAGIC 0x2F5bacbac
 *       16     8  drr_versioninfo     bits 0-1 header type (1 SUBSTREAM, 2 COMPOUNDSTREAM),
 *                                     bits 2-57 feature flags
 *       24     8  drr_creation_time   becomes the received snapshot's `creation`
 *       32     4  drr_type            dmu_objset_type_t: 2 file system, 3 volume
 *       36     4  drr_flags           DRR_FLAG_CLONE = 1, ...
 *       40     8  drr_toguid
 *       48     8  drr_fromguid        0 for a full stream
 *       56   256  drr_toname          `<dataset>@<snapshot>`, NUL-terminated
 *
 * The record is 312 bytes (the union is padded to drr_checksum's 272 + 32 bytes). A resumed
 * stream (`zfs send -t`) starts with the same record, with the RESUMING feature and its resume
 * position in the payload, and goes through the same rules: it continues the stream that passed
 * them when it started, and zfs itself checks that it does (same toguid, same name).
 */
import { chainDataset, familyOf, snapshotTime } from '../conventions/names.ts';
import { splitSnapshot } from '../zfs/names.ts';

export const BEGIN_RECORD_BYTES = 312;

const DRR_BEGIN = 0;
const DMU_BACKUP_MAGIC = 0x2f5bacbacn;
const DMU_SUBSTREAM = 1n;
const DMU_COMPOUNDSTREAM = 2n;
const DMU_OST_ZFS = 2;
const DMU_OST_ZVOL = 3;
const DRR_FLAG_CLONE = 1;
const TONAME_OFFSET = 56;
const TONAME_BYTES = 256;

/** Feature flags (drr_versioninfo bits 2-57) no stream of zbm ever carries. */
const REFUSED_FEATURES: readonly [bigint, string][] = [
  [1n << 0n, 'deduplicated (zfs send -D)'],
  [1n << 1n, 'deduplicated (zfs send -D)'],
  [1n << 21n, 'redacted (zfs send --redact)'],
  [1n << 26n, 'carrying holds (zfs send --holds)'],
];
export const FEATURE_RESUMING = 1n << 20n;

export type ObjsetType = 'filesystem' | 'volume';

export interface BeginRecord {
  /** A package of several streams with their properties (`zfs send -R`, `-I`, `-p`, `-b`, `--holds`). */
  readonly compound: boolean;
  readonly features: bigint;
  readonly flags: number;
  readonly type: ObjsetType | null;
  /** Seconds since the epoch: what the received snapshot's `creation` will say. */
  readonly creation: number;
  /** Decimal, as `zfs list -p -o guid` prints guids. */
  readonly toguid: string;
  /** "0" for a full stream. */
  readonly fromguid: string;
  readonly toname: string;
  readonly payloadBytes: number;
}

/** Reads the BEGIN record at the start of head (at least BEGIN_RECORD_BYTES of the stream). */
export function parseBeginRecord(head: Uint8Array): BeginRecord | { readonly error: string } {
  if (head.length < BEGIN_RECORD_BYTES)
    return { error: `the stream ended after ${head.length} bytes, before its first record did` };
  const view = new DataView(head.buffer, head.byteOffset, BEGIN_RECORD_BYTES);
  let little: boolean;
  if (view.getBigUint64(8, true) === DMU_BACKUP_MAGIC) little = true;
  else if (view.getBigUint64(8, false) === DMU_BACKUP_MAGIC) little = false;
  else return { error: 'not a zfs send stream (no DMU_BACKUP_MAGIC in its first record)' };
  if (view.getUint32(0, little) !== DRR_BEGIN)
    return { error: 'the stream does not start with a BEGIN record' };
  const versioninfo = view.getBigUint64(16, little);
  const hdrtype = versioninfo & 3n;
  if (hdrtype !== DMU_SUBSTREAM && hdrtype !== DMU_COMPOUNDSTREAM)
    return { error: `unknown stream header type ${hdrtype}` };
  const objset = view.getUint32(32, little);
  const nameBytes = head.subarray(TONAME_OFFSET, TONAME_OFFSET + TONAME_BYTES);
  const end = nameBytes.indexOf(0);
  return {
    compound: hdrtype === DMU_COMPOUNDSTREAM,
    features: (versioninfo >> 2n) & ((1n << 56n) - 1n),
    flags: view.getUint32(36, little),
    type: objset === DMU_OST_ZFS ? 'filesystem' : objset === DMU_OST_ZVOL ? 'volume' : null,
    creation: Number(view.getBigUint64(24, little)),
    toguid: view.getBigUint64(40, little).toString(),
    fromguid: view.getBigUint64(48, little).toString(),
    toname: Buffer.from(end < 0 ? nameBytes : nameBytes.subarray(0, end)).toString('latin1'),
    payloadBytes: view.getUint32(4, little),
  };
}

/** What serve knows of the target before the receive: its snapshots, oldest first by createtxg. */
export interface TargetState {
  readonly snapshots: readonly {
    readonly short: string;
    readonly guid: string;
    readonly creation: number;
  }[];
}

export interface IncomingRules {
  /** zbm's snapshot name prefix: names are `<prefix>YYYYMMDDTHHMMSSZ`. */
  readonly prefix: string;
  /** The server's clock, seconds since the epoch. */
  readonly now: number;
  /** How far ahead of the server's clock a node's clock may be, in seconds. */
  readonly skew: number;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * Whether the stream described by begin may be received into target, given what target holds
 * now (null: it does not exist yet). Returns the reason to refuse, or null.
 */
export function refuseIncoming(
  begin: BeginRecord,
  target: string,
  state: TargetState | null,
  rules: IncomingRules,
): string | null {
  if (begin.compound)
    return 'a replication or package stream (zfs send -R, -I, -p, -b or --holds): only a stream of one snapshot is received';
  if ((begin.flags & DRR_FLAG_CLONE) !== 0)
    return 'a clone stream (its origin would be looked up by guid in the whole pool)';
  if (begin.type === null) return 'a stream of neither a file system nor a volume';
  for (const [bit, what] of REFUSED_FEATURES) {
    if ((begin.features & bit) !== 0n) return `a stream ${what}`;
  }
  const at = begin.toname.indexOf('@');
  const short = at < 0 ? '' : begin.toname.slice(at + 1);
  if (at < 0 || short.includes('@'))
    return `the stream names ${JSON.stringify(begin.toname)}, not one snapshot`;
  const time = snapshotTime(short, rules.prefix, Number.NaN);
  if (!Number.isFinite(time))
    return `${JSON.stringify(short)} is not a zbm snapshot name (${rules.prefix}YYYYMMDDTHHMMSSZ, UTC)`;
  const latest = rules.now + rules.skew;
  if (time > latest)
    return `${short} lies in the future: this server's clock says ${iso(rules.now)} (${rules.skew} s of clock skew allowed); check the node's clock`;
  if (begin.creation > latest)
    return `the stream says ${short} was created at ${iso(begin.creation)}, in the future: this server's clock says ${iso(rules.now)}`;
  const snapshots = state?.snapshots ?? [];
  let last: { short: string; time: number } | null = null;
  for (const s of snapshots) {
    const t = snapshotTime(s.short, rules.prefix, s.creation);
    if (last === null || t > last.time) last = { short: s.short, time: t };
  }
  if (last !== null && last.time >= time)
    return (
      `${short} is not newer than ${last.short}, which ${target} already has: a backup is only ever added after the newest one` +
      (last.time > latest
        ? ` (${last.short} lies in the future, so it is not a real backup: destroy it on this server)`
        : '')
    );
  const newest = snapshots.at(-1);
  if (begin.fromguid === '0') {
    if (newest)
      return `a full stream into ${target}, which has snapshots already (${newest.short} is its newest)`;
  } else if (!newest) {
    return `an incremental stream into ${target}, which has no snapshot to continue from`;
  } else if (newest.guid !== begin.fromguid) {
    return `an incremental stream from guid ${begin.fromguid}, but the newest snapshot of ${target} is ${newest.short} (guid ${newest.guid})`;
  }
  return null;
}

/**
 * Properties a stream could bring that make this server execute, mount, expose or reserve
 * something. zbm's own streams carry no properties (and package streams, which do, are refused),
 * so `-x` changes nothing for them; it is the second line. A property that does not apply to the
 * stream's type is left out: zfs warns about those.
 */
const EXCLUDED_ANY = [
  'volmode',
  'snapdev',
  'reservation',
  'refreservation',
  'org.openzfs.systemd:requires',
  'org.openzfs.systemd:requires-mounts-for',
  'org.openzfs.systemd:before',
  'org.openzfs.systemd:after',
  'org.openzfs.systemd:wanted-by',
  'org.openzfs.systemd:required-by',
  'org.openzfs.systemd:nofail',
  'org.openzfs.systemd:ignore',
  'zbm:metadata-dir',
] as const;
const EXCLUDED_FILESYSTEM = [
  'mountpoint',
  'canmount',
  'sharenfs',
  'sharesmb',
  'exec',
  'setuid',
  'devices',
  'zoned',
] as const;

export function excludedProperties(type: ObjsetType): string[] {
  return type === 'filesystem' ? [...EXCLUDED_FILESYSTEM, ...EXCLUDED_ANY] : [...EXCLUDED_ANY];
}

/** The receive serve runs: the client's `-s`/`-u`/`-x`, then every forced `-x` it did not name. */
export function receiveCommand(target: string, clientFlags: readonly string[], type: ObjsetType): string[] {
  const named = new Set(clientFlags.filter((_, i) => clientFlags[i - 1] === '-x'));
  const forced = excludedProperties(type).filter((p) => !named.has(p));
  return ['zfs', 'receive', ...clientFlags, ...forced.flatMap((p) => ['-x', p]), target];
}

/**
 * Whether the stream may start a disk's later chain (plan/chain.ts) as a clone of origin: target
 * is new and named for the stream's snapshot beside a chain of origin's family (or it is a disk's
 * first chain, a clone of its template's or its own earlier snapshot), the stream starts
 * from origin itself (by guid), and it passes every rule a stream continuing origin must pass.
 * originDataset holds origin's dataset as listed here (null: it does not exist). A new chain adds
 * a dataset and removes nothing: the append-only promise holds.
 */
export function refuseNewChain(
  begin: BeginRecord,
  target: string,
  targetExists: boolean,
  origin: string,
  originDataset: { readonly name: string; readonly snapshots: TargetState['snapshots'] } | null,
  rules: IncomingRules,
): string | null {
  if (targetExists) return `a clone into ${target}, which exists already`;
  const { dataset: originName, snapshot: originShort } = splitSnapshot(origin);
  const short = begin.toname.slice(begin.toname.indexOf('@') + 1);
  // A disk's first backup may start as a clone of any snapshot inside the root (its template's, or
  // its own under the name it had before a rename): a new first chain is a family of its own. A
  // later chain must be named for the stream's snapshot beside a chain of the origin's family.
  const family = familyOf(originName, rules.prefix);
  const firstChain = familyOf(target, rules.prefix) === target;
  if (!firstChain && target !== chainDataset(family, short))
    return `a clone of ${origin} may only start a disk's first chain or the chain ${chainDataset(family, short)} (named for the snapshot the stream brings), not ${target}`;
  const snapshots = originDataset?.snapshots ?? [];
  const from = snapshots.find((s) => s.short === originShort);
  if (!originDataset || !from) return `the origin ${origin} does not exist`;
  if (from.guid !== begin.fromguid)
    return `the stream starts from guid ${begin.fromguid}, not from ${origin} (guid ${from.guid})`;
  // The rules of a stream that continues the origin: the origin stands last, as the snapshot the
  // stream must start from, and the name must be newer than every backup of the origin's chain.
  // A clone stream (replicate sends a later chain from its origin) is fine here: -o origin names
  // the origin, and zfs checks the stream's base against it rather than search the pool by guid.
  const asIncrement = { ...begin, flags: begin.flags & ~DRR_FLAG_CLONE };
  return refuseIncoming(
    asIncrement,
    target,
    { snapshots: [...snapshots.filter((s) => s !== from), from] },
    rules,
  );
}
