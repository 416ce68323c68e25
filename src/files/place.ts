/**
 * Moves what the sandboxed tar unpacked into its place, on this host's own terms: only the files
 * the plan names, each checked to be a regular file of the listed size; directories and links
 * made here from the listing; modes without setuid/setgid/sticky unless asked; owned by whoever
 * runs zbm. Nothing here follows a link: every path is lstat'ed or created.
 */
import { chmod, chown, lstat, mkdir, rename, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { ZbmError } from '../errors.ts';
import { type ExtractionPlan, writtenMode } from './entries.ts';

export interface PlaceOptions {
  /** Where the sandbox unpacked the tar stream: the files under their paths in the file system. */
  readonly staging: string;
  /** The directory that receives the tree (as plan's top name). */
  readonly dest: string;
  readonly keepSpecialBits: boolean;
}

export async function placeExtraction(plan: ExtractionPlan, opts: PlaceOptions): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  // The sandbox's user owned staging while it unpacked: from now on only root may look inside.
  await chown(opts.staging, uid, gid);
  await chmod(opts.staging, 0o700);
  // Parents first: the plan's directories are sorted by path. Made private until the end, so that
  // nobody else can slip a link in while the tree is written.
  for (const d of plan.dirs) await mkdir(join(opts.dest, d.path), { mode: 0o700 });
  for (const f of plan.files) {
    const from = join(opts.staging, f.source);
    const st = await lstat(from).catch(() => null);
    if (!st?.isFile() || st.size !== f.size) {
      throw new ZbmError(
        `${f.source} did not arrive whole (${st ? (st.isFile() ? `${st.size} of ${f.size} bytes` : 'not a regular file') : 'missing'}); nothing more was written`,
      );
    }
    const to = join(opts.dest, f.path);
    await rename(from, to);
    await chown(to, uid, gid);
    await chmod(to, writtenMode(f, opts.keepSpecialBits, 0o644));
    if (f.mtime !== null) await utimes(to, f.mtime, f.mtime);
  }
  for (const l of plan.links) await symlink(l.target ?? '', join(opts.dest, l.path));
  for (const d of [...plan.dirs].reverse()) {
    const to = join(opts.dest, d.path);
    await chmod(to, writtenMode(d, opts.keepSpecialBits, 0o755));
    if (d.mtime !== null) await utimes(to, d.mtime, d.mtime);
  }
}
