/**
 * A write of guest configs and manifests through zbm serve: new files only, all or none, each
 * bounded, only for a backup that arrived, never through a link.
 */
import {
  closeSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { METADATA_FILE_LIMIT } from '../metadata/store.ts';
import { Zfs } from '../zfs/zfs.ts';
import type { Decision } from './policy.ts';
import type { ServeLog } from './run.ts';

/** Where a write goes: serve's root, whose snapshots the configs belong to, and --metadata-dir. */
export interface WritePlace {
  readonly root: string;
  readonly metadataDir?: string;
}

type WriteDecision = Extract<Decision, { kind: 'write' }>;

/**
 * Writes stdin to new files, all or none, never over an existing one: what a node wrote once (a
 * backup's config) it cannot replace later, nor can it write a config ahead for a backup that has
 * not arrived. stdin is streamed into temporary files beside their targets, each bounded; only
 * when all of it arrived, with the sizes announced, are they linked into place.
 */
export async function writeNewFiles(
  decision: WriteDecision,
  opts: WritePlace,
  log: ServeLog,
): Promise<number> {
  const fail = (why: string) => {
    log.error(`zbm serve on ${opts.root}: ${why}; nothing written`);
    return ExitCode.failure;
  };
  let shorts: Set<string>;
  try {
    const listing = await new Zfs(new LocalHost()).list({ roots: [opts.root] });
    shorts = new Set(listing.flatMap((d) => d.snapshots.map((s) => s.short)));
  } catch (err) {
    return fail(`cannot list ${opts.root}: ${errorMessage(err)}`);
  }
  const early = decision.files.find((f) => !shorts.has(f.snapshot));
  if (early)
    return fail(
      `${early.path}: no snapshot ${early.snapshot} under ${opts.root}: a config is written only for a backup that arrived`,
    );
  // Guest folders this call made: removed again when nothing is written, so a refusal leaves the
  // directory as it was.
  const made: string[] = [];
  const temps: { fd: number; tmp: string; path: string; limit: number; exact: boolean; written: number }[] =
    [];
  const linked: string[] = [];
  let done = false;
  try {
    for (const f of decision.files) {
      const problem = placeProblem(f.path, opts.metadataDir ?? '', made);
      if (problem) return fail(problem);
    }
    for (const f of decision.files) {
      const tmp = `${f.path}.tmp.${process.pid}`;
      temps.push({
        fd: openSync(tmp, 'wx', 0o600),
        tmp,
        path: f.path,
        limit: f.bytes ?? METADATA_FILE_LIMIT,
        exact: f.bytes !== null,
        written: 0,
      });
    }
    const problem = await streamInto(process.stdin, temps);
    if (problem) return fail(problem);
    for (const t of temps) fsyncSync(t.fd);
    for (const t of temps) {
      try {
        linkSync(t.tmp, t.path);
      } catch (err) {
        return fail(
          (err as NodeJS.ErrnoException).code === 'EEXIST'
            ? `${t.path} exists: configs are append-only through zbm serve`
            : `writing ${t.path}: ${errorMessage(err)}`,
        );
      }
      linked.push(t.path);
    }
    done = true;
    return ExitCode.ok;
  } catch (err) {
    return fail(`writing the configs: ${errorMessage(err)}`);
  } finally {
    for (const t of temps) {
      closeSync(t.fd);
      rmSync(t.tmp, { force: true });
    }
    if (!done) {
      // All or none: what this call linked before one file failed goes again (it was new).
      for (const path of linked) rmSync(path, { force: true });
      for (const folder of made.reverse()) {
        try {
          rmdirSync(folder);
        } catch {
          // Not empty: another writer's file arrived meanwhile.
        }
      }
    }
  }
}

/**
 * Why path cannot be written: its guest folder is not a plain directory of the metadata
 * directory (a symlink would lead the write elsewhere), or the file exists. Makes the folder (and
 * the metadata directory itself on the first write), adding what it made to made.
 */
function placeProblem(path: string, metadataDir: string, made: string[]): string | null {
  const folder = dirname(path);
  try {
    const first = mkdirSync(metadataDir, { recursive: true, mode: 0o700 });
    if (first !== undefined) made.push(metadataDir);
    try {
      mkdirSync(folder, { mode: 0o700 });
      made.push(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!lstatSync(folder).isDirectory()) return `${folder} is not a directory (a symlink is never followed)`;
  } catch (err) {
    return `${folder}: ${errorMessage(err)}`;
  }
  try {
    lstatSync(path);
    return `${path} exists: configs are append-only through zbm serve`;
  } catch {
    return null;
  }
}

/** Spreads input over the files in order, each up to its limit; the reason when the sizes do not match. */
async function streamInto(
  input: Readable,
  files: { fd: number; path: string; limit: number; exact: boolean; written: number }[],
): Promise<string | null> {
  let i = 0;
  for await (const chunk of input) {
    let data = chunk as Buffer;
    while (data.length > 0) {
      const f = files[i];
      if (!f) return 'more bytes on stdin than the files announced';
      const room = f.limit - f.written;
      if (room === 0) {
        if (!f.exact) return `${f.path}: more than ${METADATA_FILE_LIMIT} bytes, more than a config may have`;
        i++;
        continue;
      }
      const part = data.subarray(0, room);
      writeSync(f.fd, part);
      f.written += part.length;
      data = data.subarray(part.length);
    }
  }
  const short = files.find((f) => f.exact && f.written !== f.limit);
  return short ? `${short.path}: ${short.written} bytes on stdin, ${short.limit} announced` : null;
}
