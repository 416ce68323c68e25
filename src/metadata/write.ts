import type { Host } from '../host/host.ts';
import { run } from '../host/process.ts';

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
