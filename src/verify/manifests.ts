import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import type { ManifestSummary } from './checks.ts';

/**
 * The newest manifest of each guest under the metadata directory (docs/metadata.md; file names
 * are snapshot names, which sort by time). A missing directory gives none; a manifest that cannot
 * be read is named in errors, and the other guests are still checked.
 */
export async function newestManifests(
  dir: string,
): Promise<{ manifests: ManifestSummary[]; errors: string[] }> {
  const out: ManifestSummary[] = [];
  const errors: string[] = [];
  for (const vmid of (await readdir(dir).catch(() => [])).filter((v) => /^\d+$/.test(v)).sort()) {
    const files = (await readdir(join(dir, vmid)).catch(() => [])).filter((f) => f.endsWith('.json')).sort();
    const newest = files.at(-1);
    if (!newest) continue;
    let m: Partial<ManifestSummary>;
    try {
      m = JSON.parse(await readFile(join(dir, vmid, newest), 'utf8')) as Partial<ManifestSummary>;
    } catch (err) {
      errors.push(`cannot read the manifest ${join(dir, vmid, newest)}: ${errorMessage(err)}`);
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
