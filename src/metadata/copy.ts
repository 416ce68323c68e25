import type { Host } from '../host/host.ts';
import { pipe } from '../host/pipe.ts';
import { run } from '../host/process.ts';
import type { Dataset } from '../zfs/types.ts';
import { METADATA_FILE, snapshotsByGuest } from './store.ts';

/** Relative paths `<vmid>/<snapshot>.conf|.json` of the metadata files under dir on host. */
export function listMetadataArgv(dir: string): string[] {
  return [
    'sh',
    '-c',
    'if [ -d "$1" ]; then cd "$1" && find . -mindepth 2 -maxdepth 2 -type f; fi',
    'zbm-list',
    dir,
  ];
}

/** One tar stream of the metadata files (relative paths) under dir. */
export function tarMetadataArgv(dir: string, files: readonly string[]): string[] {
  return ['tar', '-C', dir, '-cf', '-', '--', ...files];
}

/**
 * Unpacks the tar stream of another host into dir: into a fresh directory first, from which only
 * regular files `<vmid>/<name>.conf|json` move into dir, into guest folders that are directories
 * (never through a symlink), never over a file already there. A symlink, a device or a path
 * with `..` in the stream stays behind and is removed with the rest.
 */
export function untarMetadataArgv(dir: string): string[] {
  const script = [
    'set -e',
    'mkdir -p -- "$1"',
    't=$(mktemp -d "$1/.zbm-untar.XXXXXX")',
    'trap \'rm -rf -- "$t"\' EXIT',
    'tar -C "$t" --no-same-owner --no-same-permissions -xf -',
    'cd -- "$t"',
    'find . -mindepth 2 -maxdepth 2 -type f | while IFS= read -r f; do',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    ' f=${f#./}; v=${f%%/*}',
    ' case $v in [1-9]*) ;; *) continue ;; esac',
    ' case $v in *[!0-9]*) continue ;; esac',
    ' case $f in *.conf|*.json) ;; *) continue ;; esac',
    ' if [ -L "$1/$v" ]; then echo "zbm: $1/$v is a symlink: $f not copied" >&2; continue; fi',
    ' mkdir -p -- "$1/$v"',
    ' [ -e "$1/$f" ] || [ -L "$1/$f" ] || mv -- "$f" "$1/$f"',
    'done',
  ].join('\n');
  return ['sh', '-c', script, 'zbm-untar', dir];
}

async function metadataFiles(host: Host, dir: string): Promise<string[]> {
  const { stdout } = await run(host, listMetadataArgv(dir));
  return stdout
    .split('\n')
    .map((l) => l.replace(/^\.\//, ''))
    .filter((f) => METADATA_FILE.test(f) && !f.includes('.tmp.'));
}

export interface MetadataPlace {
  readonly host: Host;
  readonly dir: string;
}

/**
 * Copies the configs and manifests of the snapshots the target now has, in one tar stream, so that
 * a guest can be restored from the target alone. Files already there are not sent again.
 */
export async function copyMetadata(
  from: MetadataPlace,
  to: MetadataPlace,
  replicated: readonly Dataset[],
): Promise<number> {
  const wanted = snapshotsByGuest(replicated);
  const [available, present] = await Promise.all([
    metadataFiles(from.host, from.dir),
    metadataFiles(to.host, to.dir),
  ]);
  const have = new Set(present);
  const missing = available.filter((f) => {
    const [vmid = '', file = ''] = f.split('/');
    return !have.has(f) && (wanted.get(Number(vmid))?.has(file.replace(/\.(conf|json)$/, '')) ?? false);
  });
  if (missing.length === 0) return 0;
  await pipe(
    { host: from.host, argv: tarMetadataArgv(from.dir, missing) },
    { host: to.host, argv: untarMetadataArgv(to.dir) },
  );
  return missing.length;
}
