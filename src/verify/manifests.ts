import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { METADATA_FILE_LIMIT } from '../backup/metadata.ts';
import { errorMessage } from '../errors.ts';
import type { ManifestSummary } from './checks.ts';

/**
 * The newest manifest of each guest under the metadata directory (docs/metadata.md; file names
 * are snapshot names, which sort by time). A missing directory gives none; a manifest that cannot
 * be read is named in errors, and the other guests are still checked. Only regular files directly
 * in a guest folder that is a directory are read, never through a symlink, and none larger than
 * zbm writes.
 */
export async function newestManifests(
  dir: string,
): Promise<{ manifests: ManifestSummary[]; errors: string[] }> {
  const out: ManifestSummary[] = [];
  const errors: string[] = [];
  const folders = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const vmid of folders
    .filter((f) => /^[1-9]\d*$/.test(f.name))
    .map((f) => f.name)
    .sort()) {
    const folder = join(dir, vmid);
    if (!(await lstat(folder).catch(() => null))?.isDirectory()) {
      errors.push(`${folder} is not a directory (a symlink is never followed)`);
      continue;
    }
    const files = (await readdir(folder, { withFileTypes: true }).catch(() => []))
      .filter((f) => f.isFile() && f.name.endsWith('.json'))
      .map((f) => f.name)
      .sort();
    const newest = files.at(-1);
    if (!newest) continue;
    const path = join(folder, newest);
    let m: Partial<ManifestSummary>;
    try {
      const { size } = await lstat(path);
      if (size > METADATA_FILE_LIMIT) throw new Error(`${size} bytes, more than a manifest has`);
      m = JSON.parse(await readFile(path, 'utf8')) as Partial<ManifestSummary>;
    } catch (err) {
      errors.push(`cannot read the manifest ${path}: ${errorMessage(err)}`);
      continue;
    }
    out.push({
      vmid: Number(vmid),
      name: typeof m.name === 'string' ? m.name : '',
      snapshot: typeof m.snapshot === 'string' ? m.snapshot : newest.replace(/\.json$/, ''),
      disks: Array.isArray(m.disks) ? m.disks : [],
      missing: Array.isArray(m.missing) ? m.missing : [],
    });
  }
  return { manifests: out, errors };
}
