/**
 * What the drills of this host found, per guest: kept in a file of this host, so that `--sample`
 * rotates and `verify --max-drill-age-days` judges by what this host observed itself. Not a ZFS
 * property, which whoever can write to the pool (a node through zbm serve, the tier before this
 * one) could set; not the metrics file, which is the job's output and is replaced by every run.
 * One file per backup root: `<state-dir>/drill/<root, URI-encoded>.json`.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readOptionalText, writeFileAtomicLocal } from '../metrics/prometheus.ts';
import type { State } from '../verify/checks.ts';

/** Where zbm keeps its own records on this host (restore's replaced configs live there too). */
export const DEFAULT_STATE_DIR = '/var/lib/zbm';

export interface DrillRecord {
  /** When a drill of the guest last passed (seconds since the epoch), null if never. */
  readonly lastSuccess: number | null;
  /** When the guest was last drilled, whatever the outcome. */
  readonly lastAttempt: number;
  /** The outcome of that drill, and the restore point it drilled. */
  readonly state: State;
  readonly snapshot: string;
}

export type DrillRecords = ReadonlyMap<number, DrillRecord>;

/** The state file of the backups under root. */
export function drillStatePath(stateDir: string, root: string): string {
  return `${stateDir}/drill/${encodeURIComponent(root)}.json`;
}

const STATES: readonly string[] = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'];
const time = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Reads a state file's text; throws naming the file when it is not one zbm wrote. Pure. */
export function parseDrillRecords(text: string, where: string): Map<number, DrillRecord> {
  const out = new Map<number, DrillRecord>();
  if (text.trim() === '') return out;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const guests = (data as { guests?: unknown } | null)?.guests;
  if (typeof guests !== 'object' || guests === null || Array.isArray(guests))
    throw new Error(`${where}: expected {"guests": {...}}`);
  for (const [key, r] of Object.entries(guests)) {
    const vmid = Number(key);
    const rec = r as Partial<Record<keyof DrillRecord, unknown>>;
    if (
      !/^[1-9]\d*$/.test(key) ||
      typeof r !== 'object' ||
      r === null ||
      !(rec.lastSuccess === null || time(rec.lastSuccess)) ||
      !time(rec.lastAttempt) ||
      !STATES.includes(String(rec.state)) ||
      typeof rec.snapshot !== 'string'
    )
      throw new Error(`${where}: the record of guest ${JSON.stringify(key)} is not one zbm writes`);
    out.set(vmid, {
      lastSuccess: rec.lastSuccess,
      lastAttempt: rec.lastAttempt,
      state: rec.state as State,
      snapshot: rec.snapshot,
    });
  }
  return out;
}

export function renderDrillRecords(root: string, records: DrillRecords): string {
  const guests = Object.fromEntries([...records].sort(([a], [b]) => a - b).map(([v, r]) => [String(v), r]));
  return `${JSON.stringify({ format: 1, root, guests }, null, 2)}\n`;
}

/** The records of root on this host; none when no drill ran here yet. */
export async function readDrillRecords(stateDir: string, root: string): Promise<Map<number, DrillRecord>> {
  const path = drillStatePath(stateDir, root);
  return parseDrillRecords(await readOptionalText(path), path);
}

export async function writeDrillRecords(
  stateDir: string,
  root: string,
  records: DrillRecords,
): Promise<void> {
  const path = drillStatePath(stateDir, root);
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomicLocal(path, renderDrillRecords(root, records));
}
