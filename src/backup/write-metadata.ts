/**
 * The metadata step of a run: each guest's Proxmox config and its manifest (the disks, guids and
 * sizes of the snapshot just taken) written beside the data on the backup server, in one command
 * for the run, guest by guest after a failure so that the failure names its guest.
 */
import { buildManifest } from '../metadata/manifest.ts';
import { metadataPaths } from '../metadata/store.ts';
import { type FileToWrite, writeFileAtomic, writeFilesAtomic } from '../metadata/write.ts';
import { batchThenEach } from './batch.ts';
import type { BackupContext, GuestRun } from './context.ts';

/**
 * Writes the config and manifest of every guest with at least one disk sent, in one command. After
 * a failure (or a `zbm serve` too old for the batch), each guest's two files are written one by
 * one, so that a failure names its guest.
 */
export async function writeAllMetadata(ctx: BackupContext, runs: readonly GuestRun[]): Promise<void> {
  const { log } = ctx;
  // A template backed up already has its manifest from then: nothing of it is new.
  const writers = runs.filter(
    (r) =>
      r.disks.some((d) => d.mode !== 'failed') &&
      !(r.prepared?.template && r.disks.every((d) => d.mode === 'up-to-date')),
  );
  const files = new Map(writers.map((r) => [r, metadataFiles(ctx, r)]));
  const errors = await batchThenEach(
    writers,
    (rs) =>
      writeFilesAtomic(
        ctx.remote,
        rs.flatMap((r) => files.get(r) ?? []),
      ),
    log,
    'writing the configs and manifests',
    async (r) => {
      for (const f of files.get(r) ?? []) await writeFileAtomic(ctx.remote, f.path, f.content);
    },
    true,
  );
  for (const [i, err] of errors) {
    const r = writers[i] as GuestRun;
    r.metadataError = `writing the config and manifest to ${ctx.remote.name}:${ctx.metadataDir}: ${err}`;
    log.error(`${r.label}: ${r.metadataError}`);
  }
}

/** A guest's config and manifest files, for the snapshot it just took. */
function metadataFiles(ctx: BackupContext, r: GuestRun): FileToWrite[] {
  const { guest } = r;
  const snapshot = r.snapshot ?? '';
  const paths = metadataPaths(ctx.metadataDir, guest.vmid, snapshot);
  const fresh = r.listed;
  const manifest = buildManifest({
    vmid: guest.vmid,
    type: guest.type,
    name: guest.name,
    node: ctx.node,
    snapshot,
    time: (r.at ?? new Date()).toISOString(),
    frozen: r.frozen,
    disks: r.disks
      .filter((d) => d.mode !== 'failed')
      .map((d) => {
        const snap = fresh.get(d.source)?.snapshots.find((s) => s.short === snapshot);
        const disk = guest.disks.find((x) => x.key === d.key);
        return {
          key: d.key,
          // From the parsed disk: a CT's value may start with other properties (`acl=0,volume=...`).
          volume: disk ? `${disk.storage}:${disk.volname}` : '',
          source: d.source,
          target: d.target,
          guid: snap?.guid ?? '',
          referenced: snap?.referenced ?? 0,
          bytesSent: d.bytes,
          mode: d.mode,
        };
      }),
    missing: [
      ...r.disks.filter((d) => d.mode === 'failed').map((d) => ({ key: d.key, reason: d.error ?? 'failed' })),
      ...guest.skipped.filter((s) => s.warn).map((s) => ({ key: s.key, reason: s.reason })),
    ],
  });
  return [
    { path: paths.config, content: guest.configText },
    { path: paths.manifest, content: `${JSON.stringify(manifest, null, 2)}\n` },
  ];
}
