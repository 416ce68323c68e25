import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { METADATA_DIR_PROPERTY } from '../backup/metadata.ts';
import type { Logger } from '../cli/log.ts';
import { errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { SshHost } from '../host/ssh.ts';
import {
  type Check,
  checkDataset,
  checkGuest,
  checkPool,
  checkReplication,
  type FreshnessRules,
  type ManifestSummary,
  parseZpoolStatus,
  STATE_CODE,
  worst,
} from '../verify/checks.ts';
import { joinDataset, relativeTo } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

export interface VerifyOptions {
  readonly localZfsRoot: string;
  readonly prefix: string;
  readonly maxAgeDays: number;
  readonly maxAgeHours?: number;
  readonly minSnapshots: number;
  readonly remote?: string;
  readonly remoteZfsRoot?: string;
  readonly maxScrubAgeDays: number;
  readonly json?: boolean;
}

/** The newest manifest of each guest under the metadata directory (file names sort by time). */
async function newestManifests(dir: string): Promise<ManifestSummary[]> {
  const out: ManifestSummary[] = [];
  for (const vmid of (await readdir(dir).catch(() => [])).filter((v) => /^\d+$/.test(v))) {
    const files = (await readdir(join(dir, vmid))).filter((f) => f.endsWith('.json')).sort();
    const newest = files.at(-1);
    if (!newest) continue;
    const m = JSON.parse(await readFile(join(dir, vmid, newest), 'utf8')) as Partial<ManifestSummary>;
    out.push({
      vmid: Number(vmid),
      name: typeof m.name === 'string' ? m.name : '',
      snapshot: typeof m.snapshot === 'string' ? m.snapshot : newest.replace(/\.json$/, ''),
      disks: Array.isArray(m.disks) ? m.disks : [],
      missing: Array.isArray(m.missing) ? m.missing : [],
    });
  }
  return out;
}

/**
 * Checks freshness and count per dataset, coverage per guest (from the manifests), replication
 * lag (with --remote) and pool health, and exits with the monitoring-plugin code of the worst state.
 */
export async function verify(opts: VerifyOptions, _log: Logger): Promise<number> {
  const rules: FreshnessRules = {
    prefix: opts.prefix,
    maxAgeSeconds: opts.maxAgeHours !== undefined ? opts.maxAgeHours * 3600 : opts.maxAgeDays * 86400,
    minSnapshots: opts.minSnapshots,
  };
  const now = Math.floor(Date.now() / 1000);
  const local = new LocalHost();
  const zfs = new Zfs(local);
  const checks: Check[] = [];
  const listing = await zfs
    .list({ roots: [opts.localZfsRoot], userProps: [METADATA_DIR_PROPERTY] })
    .catch((err: unknown) => {
      checks.push({ state: 'UNKNOWN', subject: opts.localZfsRoot, message: errorMessage(err), figures: {} });
      return [] as Dataset[];
    });
  const root = listing.find((d) => d.name === opts.localZfsRoot);
  if (!root && checks.length === 0) {
    checks.push({
      state: 'CRITICAL',
      subject: opts.localZfsRoot,
      message: `${opts.localZfsRoot} does not exist on ${local.name}`,
      figures: {},
    });
  }
  const datasets = listing.filter((d) => d.name !== opts.localZfsRoot || d.snapshots.length > 0);
  if (root && datasets.length === 0) {
    checks.push({
      state: 'CRITICAL',
      subject: opts.localZfsRoot,
      message: 'no backup dataset under it',
      figures: {},
    });
  }
  for (const d of datasets) checks.push(checkDataset(d, rules, now));

  const metadataDir = root?.props[METADATA_DIR_PROPERTY];
  if (metadataDir) {
    const names = new Set(listing.map((d) => d.name));
    // Manifests name the dataset on the backup server; on another tier its name under this root counts.
    for (const m of await newestManifests(metadataDir)) {
      checks.push(
        checkGuest(m, names, (t) => joinDataset(opts.localZfsRoot, t.slice(t.lastIndexOf('/') + 1))),
      );
    }
  }

  if (opts.remote) {
    const remote = new SshHost(opts.remote);
    const remoteRoot = opts.remoteZfsRoot ?? opts.localZfsRoot;
    try {
      const there = new Map((await new Zfs(remote).list({ roots: [remoteRoot] })).map((d) => [d.name, d]));
      for (const d of datasets) {
        const t = joinDataset(remoteRoot, relativeTo(opts.localZfsRoot, d.name) ?? '');
        checks.push(checkReplication(d, there.get(t) ?? null, remote.name, rules, now));
      }
    } catch (err) {
      checks.push({
        state: 'UNKNOWN',
        subject: `replication to ${remote.name}`,
        message: `cannot list ${remoteRoot}: ${errorMessage(err)}`,
        figures: {},
      });
    } finally {
      await remote.close();
    }
  }

  const pool = opts.localZfsRoot.split('/')[0] ?? '';
  try {
    const { stdout } = await run(local, ['zpool', 'status', pool]);
    checks.push(checkPool(parseZpoolStatus(stdout), opts.maxScrubAgeDays * 86400, now));
  } catch (err) {
    checks.push({ state: 'UNKNOWN', subject: `pool ${pool}`, message: errorMessage(err), figures: {} });
  }

  const state = worst(checks.map((c) => c.state));
  const count = (s: string) => checks.filter((c) => c.state === s).length;
  const summary =
    `ZBM ${state} - ${opts.localZfsRoot} on ${local.name}: ${count('CRITICAL')} critical, ${count('WARNING')} warning, ` +
    `${count('UNKNOWN')} unknown, ${count('OK')} ok`;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ state, summary, checks }, null, 2)}\n`);
  } else {
    // The first line is what monitoring systems show; the rest is their long output.
    process.stdout.write(`${summary}\n`);
    for (const c of checks) process.stdout.write(`${c.state} ${c.subject}: ${c.message}\n`);
  }
  return STATE_CODE[state];
}
