export type DatasetType = 'filesystem' | 'volume';

/** A snapshot as `zfs list -Hp` reports it. guid is decimal text: it does not fit a JS number. */
export interface Snapshot {
  /** Full name, `pool/ds@short`. */
  readonly name: string;
  readonly dataset: string;
  readonly short: string;
  readonly guid: string;
  readonly createtxg: number;
  /** Seconds since the epoch; preserved by send/receive. */
  readonly creation: number;
  readonly used: number;
  readonly referenced: number;
  /** Number of holds: only snapshots with holds need a `zfs holds` call. */
  readonly userrefs: number;
  /** User properties (`zbm:*`) asked for in the listing; absent ones are left out. */
  readonly props: Readonly<Record<string, string>>;
}

export interface Bookmark {
  readonly name: string;
  readonly dataset: string;
  readonly short: string;
  readonly guid: string;
  readonly createtxg: number;
  readonly creation: number;
}

export interface Dataset {
  readonly name: string;
  readonly type: DatasetType;
  readonly guid: string;
  readonly creation: number;
  readonly used: number;
  readonly referenced: number;
  /** Bytes written since the newest snapshot: a backup target that is not 0 was modified. */
  readonly written: number;
  /** Encrypted datasets are sent raw: the receiver never sees plaintext nor needs the key. */
  readonly encrypted: boolean;
  /** Set while a resumable receive into this dataset is incomplete. */
  readonly resumeToken: string | null;
  /** The snapshot this dataset was cloned from (`pool/base-100-disk-0@__base__`); null when it is no clone, or when the listing did not ask (withOrigin). */
  readonly origin: string | null;
  readonly props: Readonly<Record<string, string>>;
  /** Oldest first (by createtxg). */
  readonly snapshots: readonly Snapshot[];
  readonly bookmarks: readonly Bookmark[];
}

export interface Hold {
  readonly snapshot: string;
  readonly tag: string;
  readonly timestamp: number;
}

export interface PropertyValue {
  readonly name: string;
  readonly property: string;
  /** null for `-` (not set / not applicable). */
  readonly value: string | null;
  readonly source: string;
}

export interface SendEstimate {
  readonly bytes: number;
}
