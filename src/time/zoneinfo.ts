import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** Where libc and systemd find named zones (TZDIR overrides it for libc). */
export const ZONEINFO = '/usr/share/zoneinfo';

/** A zone name as libc and systemd accept one: relative, no `..`, plain characters. */
export function isZoneName(name: string): boolean {
  return (
    /^[A-Za-z0-9_+-]+(?:\/[A-Za-z0-9_+-]+)*$/.test(name) &&
    !name.split('/').some((p) => p === '..' || p === '.') &&
    name.length < 256
  );
}

/** Whether file is a TZif file (RFC 8536): how systemd decides that a word names a time zone. */
export function isTzif(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === 'TZif';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether name is a time zone of this host's tzdata, as systemd's timezone_is_valid() decides. */
export function hostHasZone(name: string): boolean {
  return isZoneName(name) && isTzif(join(ZONEINFO, name));
}
