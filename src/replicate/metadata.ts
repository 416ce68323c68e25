import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { vmidOf } from '../backup/metadata.ts';
import type { Host } from '../host/host.ts';
import { pipe } from '../host/pipe.ts';
import { run } from '../host/process.ts';
import type { Dataset } from '../zfs/types.ts';

/** vmid → snapshot names that some dataset of that guest has. Pure. */
export function snapshotsByGuest(datasets: readonly Dataset[]): Map<number, Set<string>> {
  const byGuest = new Map<number, Set<string>>();
  for (const d of datasets) {
    const vmid = vmidOf(d.name);
    if (vmid === null) continue;
    const set = byGuest.get(vmid) ?? new Set<string>();
    for (const s of d.snapshots) set.add(s.short);
    byGuest.set(vmid, set);
  }
  return byGuest;
}

/** Relative paths `<vmid>/<snapshot>.conf|.json` of the local metadata files. */
async function localFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  let vmids: string[];
  try {
    vmids = await readdir(dir);
  } catch {
    return [];
  }
  for (const v of vmids.filter((x) => /^\d+$/.test(x))) {
    for (const f of await readdir(join(dir, v)).catch(() => [])) {
      if (/\.(conf|json)$/.test(f) && !f.includes('.tmp.')) files.push(`${v}/${f}`);
    }
  }
  return files;
}

/**
 * Copies the configs and manifests of the snapshots the replica now has, in one tar stream, so that
 * a guest can be restored from the replica alone. Files already there are not sent again.
 */
export async function copyMetadata(
  local: Host,
  remote: Host,
  dir: string,
  replicated: readonly Dataset[],
): Promise<number> {
  const wanted = snapshotsByGuest(replicated);
  const candidates = (await localFiles(dir)).filter((f) => {
    const [vmid = '', file = ''] = f.split('/');
    return wanted.get(Number(vmid))?.has(file.replace(/\.(conf|json)$/, '')) ?? false;
  });
  if (candidates.length === 0) return 0;
  const { stdout } = await run(remote, [
    'sh',
    '-c',
    'if [ -d "$1" ]; then cd "$1" && find . -type f; fi',
    'zbm-list',
    dir,
  ]);
  const present = new Set(stdout.split('\n').map((l) => l.replace(/^\.\//, '')));
  const missing = candidates.filter((f) => !present.has(f));
  if (missing.length === 0) return 0;
  await pipe(
    { host: local, argv: ['tar', '-C', dir, '-cf', '-', '--', ...missing] },
    { host: remote, argv: ['sh', '-c', 'mkdir -p -- "$1" && tar -C "$1" -xf -', 'zbm-untar', dir] },
  );
  return missing.length;
}
