import { lineError, splitLines } from './text.ts';

export interface GuestConfig {
  /** The running configuration: everything before the first `[section]`. */
  current: Readonly<Record<string, string>>;
  /** PVE snapshots (`[name]`) and the special sections (`[PENDING]`, `[special:cloudinit]`), by name. */
  snapshots: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The guest's notes: the `#` lines of the current configuration, without the `#`, one per line. */
  description: string;
}

const WHAT = 'config';
const KEY = /^[a-z][a-z0-9_-]*$/;
/**
 * Raw LXC keys (`lxc.apparmor.profile`, `lxc.mount.entry`) are common in CT configs and may repeat;
 * their values are kept joined by newlines since no disk is ever declared there.
 */
const RAW_LXC_KEY = /^lxc(?:\.[a-z0-9_-]+)+$/;
const SECTION = /^\[([^[\]\s]+)\]\s*$/;
const ENTRY = /^([^:\s]+):(?:[ \t]+(.*?))?[ \t]*$/;

/**
 * Parses a guest config (qemu-server or lxc). Only the part before the first section is the running
 * guest; a disk named only in a snapshot section is not attached now and must not be picked up.
 */
export function parseGuestConfig(text: string): GuestConfig {
  const current = new Map<string, string>();
  const sections = new Map<string, Map<string, string>>();
  const description: string[] = [];
  let target = current;
  let inCurrent = true;
  for (const [i, line] of splitLines(text).entries()) {
    const n = i + 1;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      // A section's own `#` lines are that snapshot's notes, not the guest's.
      if (inCurrent) description.push(line.slice(1));
      continue;
    }
    const s = SECTION.exec(line);
    if (s) {
      const name = s[1] as string;
      if (sections.has(name)) throw lineError(WHAT, n, line, `section [${name}] appears twice`);
      target = new Map();
      sections.set(name, target);
      inCurrent = false;
      continue;
    }
    const m = ENTRY.exec(line);
    const key = m?.[1];
    if (!m || key === undefined) throw lineError(WHAT, n, line, 'expected "key: value"');
    const value = m[2] ?? '';
    if (RAW_LXC_KEY.test(key)) {
      const before = target.get(key);
      target.set(key, before === undefined ? value : `${before}\n${value}`);
      continue;
    }
    if (!KEY.test(key)) throw lineError(WHAT, n, line, `${JSON.stringify(key)} is not a config key`);
    if (target.has(key)) throw lineError(WHAT, n, line, `key "${key}" appears twice`);
    target.set(key, value);
  }
  return {
    current: Object.fromEntries(current),
    snapshots: Object.fromEntries([...sections].map(([name, props]) => [name, Object.fromEntries(props)])),
    description: description.join('\n'),
  };
}
