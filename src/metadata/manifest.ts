/**
 * Manifests (docs/metadata.md): what one backup of a guest holds, written by backup-pve beside the
 * data, read on the tier that holds the backups (through one dump command) or here (verify, status).
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { VERSION } from '../version.ts';
import { nameProblem } from '../zfs/names.ts';
import { METADATA_FILE_LIMIT } from './store.ts';

export interface ManifestDisk {
  readonly key: string;
  readonly volume: string;
  readonly source: string;
  readonly target: string;
  readonly guid: string;
  readonly referenced: number;
  readonly bytesSent: number;
  readonly mode: string;
}

export interface Manifest {
  readonly format: 1;
  readonly zbm: string;
  readonly vmid: number;
  readonly type: 'qemu' | 'lxc';
  readonly name: string;
  /** The node the guest ran on when it was backed up. */
  readonly node: string;
  readonly snapshot: string;
  /** UTC, ISO 8601. */
  readonly time: string;
  readonly frozen: boolean;
  readonly disks: readonly ManifestDisk[];
  /** Disks of the guest that are not in this backup, and why. */
  readonly missing: readonly { key: string; reason: string }[];
}

export function buildManifest(m: Omit<Manifest, 'format' | 'zbm'>): Manifest {
  return { format: 1, zbm: VERSION, ...m };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * Reads a manifest file. Its content comes from another host: everything zbm later hands to zfs
 * or a shell is checked here (the names), the rest only has to have the right type.
 */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isObject(data)) throw new Error(`${where}: expected a JSON object`);
  if (data.format !== 1)
    throw new Error(`${where}: manifest format ${JSON.stringify(data.format)} is unknown`);
  const vmid = data.vmid;
  if (typeof vmid !== 'number' || !Number.isInteger(vmid) || vmid < 100) {
    throw new Error(`${where}: vmid ${JSON.stringify(vmid)} is not a VMID`);
  }
  if (data.type !== 'qemu' && data.type !== 'lxc') {
    throw new Error(`${where}: type ${JSON.stringify(data.type)} is neither qemu nor lxc`);
  }
  const snapshot = str(data.snapshot);
  if (nameProblem(`x@${snapshot}`, 'snapshot')) {
    throw new Error(`${where}: snapshot ${JSON.stringify(data.snapshot)} is not a snapshot name`);
  }
  if (!Array.isArray(data.disks)) throw new Error(`${where}: "disks" is not a list`);
  const disks: ManifestDisk[] = data.disks.map((d: unknown, i: number) => {
    if (!isObject(d)) throw new Error(`${where}: disks[${i}] is not an object`);
    const target = str(d.target);
    const problem = nameProblem(target, 'dataset');
    if (problem) throw new Error(`${where}: disks[${i}].target ${JSON.stringify(d.target)}: ${problem}`);
    if (!/^[a-z][a-z0-9]*$/.test(str(d.key))) {
      throw new Error(`${where}: disks[${i}].key ${JSON.stringify(d.key)} is not a config key`);
    }
    return {
      key: str(d.key),
      volume: str(d.volume),
      source: str(d.source),
      target,
      guid: /^\d+$/.test(str(d.guid)) ? str(d.guid) : '',
      referenced: num(d.referenced),
      bytesSent: num(d.bytesSent),
      mode: str(d.mode),
    };
  });
  const missing = Array.isArray(data.missing)
    ? data.missing.filter(isObject).map((m) => ({ key: str(m.key), reason: str(m.reason) }))
    : [];
  return {
    format: 1,
    zbm: str(data.zbm),
    vmid,
    type: data.type,
    name: str(data.name),
    node: str(data.node),
    snapshot,
    time: str(data.time),
    frozen: data.frozen === true,
    disks,
    missing,
  };
}

/**
 * Prints `<vmid>/<snapshot>.json`, the file, and a NUL for each manifest (of one guest, or of all):
 * the whole metadata of a tier in one command, whatever the number of backups. Only regular files
 * in guest folders that are directories (never through a symlink), each cut at the size zbm
 * writes at most.
 */
const DUMP = `cd -- "$1" 2>/dev/null || exit 0
for f in $2/*.json; do [ -f "$f" ] && [ ! -L "$f" ] && [ ! -L "\${f%/*}" ] || continue; printf '%s\\n' "$f"; head -c ${METADATA_FILE_LIMIT} -- "$f"; printf '\\000'; done`;

/** The command that prints the manifests of one guest, or of all, under metadataDir (DUMP). */
export function dumpManifestsArgv(metadataDir: string, vmid?: number): string[] {
  return ['sh', '-c', DUMP, 'zbm-manifests', metadataDir, vmid === undefined ? '[1-9]*' : String(vmid)];
}

/**
 * Prints one guest config of the tier: a regular file in a guest folder that is a directory,
 * never through a symlink, at most the size zbm writes.
 */
export function readConfigArgv(metadataDir: string, vmid: number, snapshot: string): string[] {
  return [
    'sh',
    '-c',
    `f="$1/$2/$3.conf"; if [ -L "$1/$2" ] || [ -L "$f" ] || [ ! -f "$f" ]; then echo "zbm: $f is not a regular file (a symlink is never followed)" >&2; exit 1; fi; head -c ${METADATA_FILE_LIMIT} -- "$f"`,
    'zbm-config',
    metadataDir,
    String(vmid),
    snapshot,
  ];
}

/**
 * The files of a metadata dump: records `<vmid>/<snapshot>.json\n<content>` separated by NUL
 * (what the reader on the tier prints). Unreadable manifests are reported, never fatal: one bad
 * file must not hide the other backups.
 */
export function parseManifestDump(dump: string): { manifests: Manifest[]; errors: string[] } {
  const manifests: Manifest[] = [];
  const errors: string[] = [];
  for (const record of dump.split('\0')) {
    if (record.trim() === '') continue;
    const nl = record.indexOf('\n');
    const path = (nl < 0 ? record : record.slice(0, nl)).replace(/^\n+/, '');
    const m = /^([1-9]\d*)\/(.+)\.json$/.exec(path);
    if (!m) {
      errors.push(`${JSON.stringify(path)} is not <vmid>/<snapshot>.json`);
      continue;
    }
    try {
      const manifest = parseManifest(nl < 0 ? '' : record.slice(nl + 1), path);
      if (manifest.vmid !== Number(m[1]) || manifest.snapshot !== m[2]) {
        throw new Error(`${path}: names guest ${manifest.vmid} snapshot ${manifest.snapshot}`);
      }
      manifests.push(manifest);
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  return { manifests, errors };
}

/** The part of a backup manifest (docs/metadata.md) that coverage needs. */
export interface ManifestSummary {
  readonly vmid: number;
  readonly name: string;
  readonly snapshot: string;
  readonly disks: readonly { key: string; target: string }[];
  readonly missing: readonly { key: string; reason: string }[];
}

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
