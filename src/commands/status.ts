import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import { newestManifests } from '../metadata/manifest.ts';
import { METADATA_DIR_PROPERTY, metadataDirOf } from '../metadata/store.ts';
import { buildStatus, type RemoteView, renderStatusTable } from '../status/table.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type StatusOptions = CommandOptions<'status'>;

/**
 * A table per guest of the backups under --local-zfs-root, on any tier: guest names come from the
 * newest manifests when the root names a metadata directory (the backup server and its replicas).
 */
export async function status(opts: StatusOptions, log: Logger): Promise<number> {
  const local = new LocalHost();
  const root = opts.localZfsRoot;
  const listing = await new Zfs(local).list({ roots: [root], userProps: [METADATA_DIR_PROPERTY] });
  const rootDataset = listing.find((d) => d.name === root);
  if (!rootDataset) {
    log.error(`${root} does not exist on ${local.name}: check --local-zfs-root (zfs list ${root})`);
    return ExitCode.failure;
  }
  const names = new Map<number, string>();
  const property = rootDataset.props[METADATA_DIR_PROPERTY];
  const place = metadataDirOf(property, root);
  if ('error' in place && property !== undefined) log.warn(place.error);
  if ('dir' in place) {
    const { manifests, errors } = await newestManifests(place.dir);
    for (const e of errors) log.warn(e);
    for (const m of manifests) names.set(m.vmid, m.name);
  }

  let remote: RemoteView | undefined;
  let failed = false;
  if (opts.remote) {
    const host = new SshHost(opts.remote);
    const remoteRoot = opts.remoteZfsRoot ?? root;
    try {
      const there = await new Zfs(host).list({ roots: [remoteRoot] });
      remote = { name: host.name, root: remoteRoot, datasets: new Map(there.map((d) => [d.name, d])) };
    } catch (err) {
      log.error(
        `cannot list ${host.name}:${remoteRoot}, the replication lag is left out: ${errorMessage(err)}`,
      );
      failed = true;
    } finally {
      await host.close();
    }
  }

  const rows = buildStatus(listing, root, opts.prefix, Math.floor(Date.now() / 1000), names, remote);
  if (opts.json) {
    writeOut(
      `${JSON.stringify({ host: local.name, root, remote: remote ? `${remote.name}:${remote.root}` : null, guests: rows }, null, 2)}\n`,
    );
  } else {
    writeOut(`${root} on ${local.name}${remote ? `, replicated to ${remote.name}:${remote.root}` : ''}\n`);
    writeOut(rows.length ? renderStatusTable(rows, remote?.name) : 'no backups\n');
  }
  return failed ? ExitCode.failure : ExitCode.ok;
}
