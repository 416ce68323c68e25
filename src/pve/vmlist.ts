import { errorMessage } from '../errors.ts';
import { PveFormatError } from './text.ts';

export type GuestType = 'qemu' | 'lxc';

export interface VmlistEntry {
  vmid: number;
  node: string;
  type: GuestType;
}

/** PVE's VMID range (100 to 999999999); smaller ids are reserved. */
const VMID = /^[1-9]\d{2,8}$/;
/**
 * Node names are host names. Checked because they become path components
 * (`nodes/<node>/qemu-server`): no `/`, and never `.` or `..`.
 */
export const NODE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(problem: string): never {
  throw new PveFormatError(`/etc/pve/.vmlist: ${problem}`);
}

/**
 * Parses /etc/pve/.vmlist, the cluster's list of guests and the node each one is on. Its shape is
 * checked strictly (a misread list could back up the wrong guests); guest types other than qemu and
 * lxc are skipped with a warning, since a future PVE may add some.
 */
export function parseVmlist(text: string): { entries: VmlistEntry[]; warnings: string[] } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    fail(`not valid JSON (${errorMessage(err)})`);
  }
  if (!isObject(data)) fail('expected a JSON object');
  const ids = data.ids;
  if (!isObject(ids)) fail('expected an "ids" object');
  const entries: VmlistEntry[] = [];
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(ids)) {
    if (!VMID.test(key)) fail(`${JSON.stringify(key)} is not a VMID`);
    if (!isObject(value)) fail(`guest ${key}: expected an object`);
    const { node, type } = value;
    if (typeof node !== 'string' || !NODE_NAME.test(node)) {
      fail(`guest ${key}: node ${JSON.stringify(node)} is not a node name`);
    }
    if (typeof type !== 'string') fail(`guest ${key}: type ${JSON.stringify(type)} is not a string`);
    if (type !== 'qemu' && type !== 'lxc') {
      warnings.push(`guest ${key} on node ${node} has unknown type ${JSON.stringify(type)}; skipped`);
      continue;
    }
    entries.push({ vmid: Number(key), node, type });
  }
  entries.sort((a, b) => a.vmid - b.vmid);
  return { entries, warnings };
}
