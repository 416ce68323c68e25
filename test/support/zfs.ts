/** Builders of the ZFS layer's typed listings for unit tests: every field set, overridable. */
import type { Bookmark, Dataset, Snapshot } from '../../src/zfs/types.ts';

export function snapshot(dataset: string, short: string, fields: Partial<Snapshot> = {}): Snapshot {
  return {
    name: `${dataset}@${short}`,
    dataset,
    short,
    guid: `g-${dataset}@${short}`,
    createtxg: 0,
    creation: 0,
    used: 0,
    referenced: 0,
    userrefs: 0,
    props: {},
    ...fields,
  };
}

export function dataset(
  name: string,
  snapshots: readonly Snapshot[] = [],
  fields: Partial<Dataset> = {},
): Dataset {
  return {
    name,
    type: 'volume',
    guid: '1',
    creation: 0,
    used: 0,
    referenced: 0,
    written: 0,
    encrypted: false,
    resumeToken: null,
    origin: null,
    props: {},
    snapshots,
    bookmarks: [],
    ...fields,
  };
}

export function bookmark(dataset: string, short: string, fields: Partial<Bookmark> = {}): Bookmark {
  return {
    name: `${dataset}#${short}`,
    dataset,
    short,
    guid: `g-${dataset}#${short}`,
    createtxg: 0,
    creation: 0,
    ...fields,
  };
}
