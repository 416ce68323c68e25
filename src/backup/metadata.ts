import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';
import { parseVolname } from '../pve/volumes.ts';
import { VERSION } from '../version.ts';

/**
 * Layout on the backup server (documented in docs/metadata.md):
 *   <metadata-dir>/<vmid>/<snapshot>.conf   the guest's config at the moment of the snapshot
 *   <metadata-dir>/<vmid>/<snapshot>.json   the manifest (Manifest below)
 * One pair of files per guest and snapshot name: prune removes the pair with its snapshot, and
 * replicate copies the files of the snapshots it copies.
 */
/**
 * Set by backup-pve on the backup server's root: where the metadata of the datasets below lives.
 * Through zbm serve a node can only set it to serve's own --metadata-dir, so on a server whose
 * nodes go through serve it names a directory the administrator chose; a command given the
 * directory explicitly (--local-metadata-dir, --remote-metadata-dir) uses that and says when the
 * property disagrees.
 */
export const METADATA_DIR_PROPERTY = 'zbm:metadata-dir';

/** The largest config or manifest zbm writes, accepts through serve, or reads: PVE's own stay far below. */
export const METADATA_FILE_LIMIT = 1024 * 1024;

/**
 * The metadata directory a command works in: the one it was given (by the flag named flag), else
 * the root's property. Returns the reason when there is none usable. Pure.
 */
export function chooseMetadataDir(
  given: string | undefined,
  property: string | undefined,
  where: string,
  flag: string,
): { dir: string; warning?: string } | { error: string } {
  if (given !== undefined) {
    const differs = property !== undefined && property !== given;
    return differs
      ? {
          dir: given,
          warning: `${where} has ${METADATA_DIR_PROPERTY}=${property}; using ${flag} ${given}`,
        }
      : { dir: given };
  }
  return metadataDirOf(property, where);
}

/** The metadata directory the root's property names, when it is usable (an absolute path). Pure. */
export function metadataDirOf(
  property: string | undefined,
  where: string,
): { dir: string } | { error: string } {
  if (property === undefined) return { error: `${where} has no ${METADATA_DIR_PROPERTY} property` };
  if (!property.startsWith('/') || /[\n\0]/.test(property) || property.split('/').includes('..'))
    return {
      error: `${where} has ${METADATA_DIR_PROPERTY}=${JSON.stringify(property)}, not an absolute path`,
    };
  return { dir: property };
}

/** The VMID of a PVE volume dataset, from its last component (`.../vm-100-disk-0` → 100). */
export function vmidOf(dataset: string): number | null {
  const v = parseVolname(dataset.slice(dataset.lastIndexOf('/') + 1));
  return v?.plainVmid && v.rest !== '' ? v.vmid : null;
}

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
  readonly node: string;
  readonly snapshot: string;
  readonly time: string;
  readonly frozen: boolean;
  readonly disks: readonly ManifestDisk[];
  /** Disks of the guest that are not in this backup, and why. */
  readonly missing: readonly { key: string; reason: string }[];
}

export function metadataPaths(
  dir: string,
  vmid: number,
  snapshot: string,
): { config: string; manifest: string } {
  const base = `${dir}/${vmid}/${snapshot}`;
  return { config: `${base}.conf`, manifest: `${base}.json` };
}

export function buildManifest(m: Omit<Manifest, 'format' | 'zbm'>): Manifest {
  return { format: 1, zbm: VERSION, ...m };
}

/**
 * Writes a file on host atomically: a temporary file in the same directory, flushed, then renamed,
 * so that a reader never sees half a config. The path is an argument of the script, never part of it.
 */
export async function writeFileAtomic(host: Host, path: string, content: string): Promise<void> {
  await run(host, [...WRITE_FILE_ARGV, path], { input: content, timeoutMs: 120_000 });
}

/** The command writeFileAtomic runs, without the path; `zbm serve` recognizes exactly this one. */
export const WRITE_FILE_ARGV = [
  'sh',
  '-c',
  'set -e; mkdir -p -- "$(dirname -- "$1")"; t="$1.tmp.$$"; cat > "$t"; sync -- "$t"; mv -f -- "$t" "$1"',
  'zbm-write',
] as const;

/**
 * Writes several files with one command: their contents one after the other on stdin, each file's
 * byte length and path in the arguments (`<length>:<path>`, the length first since a path may hold
 * a colon). Each file is written as writeFileAtomic writes it (temporary file, flushed, renamed); the
 * whole of stdin is checked first, so a cut connection writes nothing. `zbm serve` accepts it too,
 * checking every path and writing new files only.
 */
export const WRITE_FILES_ARGV = [
  'sh',
  '-c',
  [
    'set -e',
    'b=$(mktemp)',
    'trap "rm -f -- \\"$b\\"" EXIT',
    'cat > "$b"',
    'got=$(($(wc -c < "$b")))',
    '[ "$got" -eq "$1" ] || { echo "zbm-write-files: $got bytes on stdin, $1 expected" >&2; exit 1; }',
    'shift',
    'o=1',
    'made=',
    'for a in "$@"; do',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    ' n=${a%%:*}; p=${a#*:}; t="$p.tmp.$$"',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    ' [ "${p%/*}" = "$made" ] || { mkdir -p -- "${p%/*}"; made=${p%/*}; }',
    ' tail -c "+$o" -- "$b" | head -c "$n" > "$t"',
    ' sync -- "$t"; mv -f -- "$t" "$p"',
    ' o=$((o + n))',
    'done',
  ].join('\n'),
  'zbm-write-files',
] as const;

/** A file for writeFilesAtomic. */
export interface FileToWrite {
  readonly path: string;
  readonly content: string;
}

/**
 * Files per command: the arguments travel in the one command line ssh hands to the remote shell,
 * which Linux caps at 128 KiB per argument.
 */
export const FILES_PER_COMMAND = 200;

/** The argv and stdin of the writeFilesAtomic commands for files. Pure. */
export function writeFilesCommands(
  files: readonly FileToWrite[],
  perCommand = FILES_PER_COMMAND,
): { argv: string[]; input: string }[] {
  const commands: { argv: string[]; input: string }[] = [];
  for (let i = 0; i < files.length; i += perCommand) {
    const chunk = files.slice(i, i + perCommand);
    const input = chunk.map((f) => f.content).join('');
    commands.push({
      argv: [
        ...WRITE_FILES_ARGV,
        String(Buffer.byteLength(input)),
        ...chunk.map((f) => `${Buffer.byteLength(f.content)}:${f.path}`),
      ],
      input,
    });
  }
  return commands;
}

/** Writes files on host atomically each, with one command per FILES_PER_COMMAND files. */
export async function writeFilesAtomic(host: Host, files: readonly FileToWrite[]): Promise<void> {
  for (const c of writeFilesCommands(files)) {
    await run(host, c.argv, { input: c.input, timeoutMs: 120_000 });
  }
}
