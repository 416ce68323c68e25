import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { formatStamp } from '../conventions/names.ts';
import { ExitCode, errorMessage, ZbmError } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { RateLimiter } from '../host/rate.ts';
import { acquire, describeHolder } from '../lock/lock.ts';
import { readConfigArgv } from '../metadata/manifest.ts';
import { metadataDirOption } from '../metadata/store.ts';
import { writeFileAtomic } from '../metadata/write.ts';
import type { Step } from '../plan/diff.ts';
import { parseStorageCfg, parseVmlist, readPveState, zfsPools } from '../pve/index.ts';
import type { GuestType } from '../pve/vmlist.ts';
import { subvolProperties, waitForZvolsArgv } from '../restore/argv.ts';
import { addUnused, generateMac, macPrefix } from '../restore/config.ts';
import {
  type DiskOnlyPlan,
  type DiskPlan,
  describePlan,
  type ExistingGuest,
  type GuestPlan,
  type LocalState,
  planDiskRestore,
  planGuestRestore,
} from '../restore/plan.ts';
import { choosePoint, type RestorePoint } from '../restore/points.ts';
import { loadTier, originsOf, type Tier, tierFromOptions } from '../restore/tier.ts';
import { formatBytes } from '../text/human.ts';
import { printableLines } from '../text/printable.ts';
import { syncDataset } from '../transfer/sync.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type RestoreOptions = CommandOptions<'restore'>;

const PVE = '/etc/pve';
/** Where the config of a guest replaced by a forced restore is kept (pmxcfs is no place for extra files). */
const REPLACED_CONFIGS = '/var/lib/zbm/replaced';

function guestRunning(type: GuestType, vmid: number): boolean {
  if (type === 'lxc') return existsSync(`/sys/fs/cgroup/lxc/${vmid}`);
  try {
    const pid = Number(readFileSync(`/var/run/qemu-server/${vmid}.pid`, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`);
  } catch {
    return false;
  }
}

/**
 * The guest that has vmid now: a config file under any node (pmxcfs keeps every node's folder),
 * else an entry of .vmlist. zbm never writes .vmlist: pmxcfs derives it from the config files.
 */
function findGuest(vmid: number, vmlist: string, node: string): ExistingGuest | null {
  let nodes: string[] = [];
  try {
    nodes = readdirSync(path.join(PVE, 'nodes'));
  } catch {}
  for (const n of [node, ...nodes.filter((x) => x !== node)]) {
    for (const type of ['qemu', 'lxc'] as const) {
      const file = path.join(PVE, 'nodes', n, type === 'qemu' ? 'qemu-server' : 'lxc', `${vmid}.conf`);
      if (!existsSync(file)) continue;
      return {
        node: n,
        type,
        configText: n === node ? readFileSync(file, 'utf8') : undefined,
        running: n === node && guestRunning(type, vmid),
      };
    }
  }
  const e = parseVmlist(vmlist).entries.find((x) => x.vmid === vmid);
  return e ? { node: e.node, type: e.type, running: false } : null;
}

interface Received {
  readonly key: string;
  readonly target: string;
  readonly volume: string;
  readonly bytes: number;
  readonly resumed: string | null;
}

/**
 * A linked clone's one step: the increment from its template's copy on the tier to the point,
 * received as a clone of the template's `@__base__` here (the same snapshot, by guid).
 */
function linkedChain(
  linked: NonNullable<DiskPlan['linked']>,
  source: Dataset | null,
  snapshot: string,
): { origin: string; steps: Step[] } {
  const to = source?.snapshots.find((s) => s.short === snapshot);
  if (!to) throw new ZbmError(`${source?.name ?? 'the backup'}@${snapshot} is gone from the tier`);
  const [dataset = '', short = ''] = linked.from.split('@');
  return { origin: linked.origin, steps: [{ from: { short, bookmark: false, dataset }, to }] };
}

/** Receives every disk into its temporary dataset (resuming, or skipping those already there). */
async function receiveAll(
  disks: readonly DiskPlan[],
  tier: Tier,
  tierDatasets: ReadonlyMap<string, Dataset>,
  local: Zfs,
  localDatasets: ReadonlyMap<string, Dataset>,
  opts: RestoreOptions,
  progress: Progress,
  log: Logger,
  vmid: number,
): Promise<Received[]> {
  const limiter = opts.bwlimit ? new RateLimiter(opts.bwlimit) : undefined;
  const received: Received[] = [];
  for (const d of disks) {
    if (d.tempState === 'complete') {
      log.info(`${d.key}: ${d.temp} already holds ${d.snapshot} from an interrupted restore`);
      received.push({
        key: d.key,
        target: d.target,
        volume: d.volume,
        bytes: 0,
        resumed: 'already received',
      });
      continue;
    }
    const label = `guest ${vmid} ${d.key}`;
    log.info(
      `${d.key}: ${tier.host.name}:${d.source}@${d.snapshot} → ${d.temp} (${formatBytes(d.referenced)})`,
    );
    const source = tierDatasets.get(d.source) ?? null;
    const r = await syncDataset(
      { zfs: tier.zfs, dataset: d.source, listing: source },
      { zfs: local, dataset: d.temp, listing: localDatasets.get(d.temp) ?? null },
      {
        select: (s) => s === d.snapshot,
        newChain: d.linked ? linkedChain(d.linked, source, d.snapshot) : undefined,
        limiter,
        onProgress: (b) => progress.update(label, b),
        onMessage: (m) => {
          progress.clear();
          log.info(m);
        },
      },
    );
    progress.clear();
    if (r.common.guid !== d.guid) {
      throw new ZbmError(
        `${d.temp} holds ${r.common.short} with guid ${r.common.guid}, not the backup's ${d.guid}`,
      );
    }
    received.push({ key: d.key, target: d.target, volume: d.volume, bytes: r.bytes, resumed: r.resumed });
  }
  return received;
}

/** Renames the temporary datasets into place, moving what is there aside first (forced restores). */
async function moveIntoPlace(disks: readonly DiskPlan[], local: Zfs, log: Logger): Promise<void> {
  const now = new Set(
    (await local.list({ roots: disks.map((d) => d.target), depth: 0, withSnapshots: false })).map(
      (d) => d.name,
    ),
  );
  const appeared = disks.filter((d) => now.has(d.target) && d.aside === null);
  if (appeared.length > 0) {
    throw new ZbmError(
      `${appeared.map((d) => d.target).join(', ')} appeared on this node during the restore; nothing was renamed, ` +
        `the restored data waits in ${appeared.map((d) => d.temp).join(', ')}: run the restore again`,
    );
  }
  for (const d of disks) {
    if (d.aside && now.has(d.target)) {
      await local.rename(d.target, d.aside);
      log.warn(
        `${d.target} was moved aside to ${d.aside} (destroy it with \`zfs destroy -r ${d.aside}\` once the restore is checked)`,
      );
    }
    await local.rename(d.temp, d.target);
  }
}

/** After the rename: the snapshot goes (unless the chain continues from it), file systems mount, zvol links appear. */
async function finish(
  disks: readonly DiskPlan[],
  keepSnapshot: boolean,
  local: Zfs,
  log: Logger,
): Promise<void> {
  if (!keepSnapshot) {
    for (const d of disks) {
      await local.destroySnapshots(d.target, [d.snapshot]).catch((err: unknown) => {
        log.warn(`could not destroy ${d.target}@${d.snapshot}: ${errorMessage(err)}; destroy it yourself`);
      });
    }
  }
  for (const d of disks.filter((x) => x.subvol)) {
    await local.mount(d.target).catch((err: unknown) => {
      log.warn(`could not mount ${d.target}: ${errorMessage(err)}`);
    });
  }
  const zvols = disks.filter((x) => !x.subvol);
  if (zvols.length > 0) {
    await run(local.host, waitForZvolsArgv(zvols)).catch((err: unknown) => {
      log.warn(errorMessage(err));
    });
  }
}

async function setSubvolProperties(disks: readonly DiskPlan[], local: Zfs): Promise<void> {
  for (const d of disks) {
    if (d.subvol) await local.setProperties(d.temp, subvolProperties(d.subvol.refquota));
  }
}

async function readOptional(file: string): Promise<string | undefined> {
  return readFile(file, 'utf8').catch(() => undefined);
}

function printResult(
  plan: GuestPlan | DiskOnlyPlan,
  received: readonly Received[],
  extra: Record<string, unknown>,
  opts: RestoreOptions,
): void {
  const out = writeOut;
  if (opts.json) {
    out(
      `${JSON.stringify({ fromVmid: plan.fromVmid, vmid: plan.vmid, snapshot: plan.snapshot, tier: plan.tier, config: `${PVE}/${plan.configPath}`, disks: received, ...extra, warnings: plan.warnings }, null, 2)}\n`,
    );
    return;
  }
  for (const r of received) {
    out(
      `${r.key} → ${r.volume} (${r.target}): ${formatBytes(r.bytes)}${r.resumed ? `, ${r.resumed}` : ''}\n`,
    );
  }
}

/**
 * Restores a guest (or one of its disks) from a backup tier onto this Proxmox node: the disks are
 * received under temporary names, and only when all of them arrived are they renamed into place
 * and the config written. Refuses to replace an existing guest or dataset unless forced and confirmed.
 */
export async function restore(opts: RestoreOptions, log: Logger): Promise<number> {
  const metadataDir = metadataDirOption(opts);
  const state = await readPveState(PVE, opts.node);
  const pools = zfsPools(parseStorageCfg(state.storageCfg));
  const targetVmid = opts.asVmid ?? opts.vmid;
  const existing = findGuest(targetVmid, state.vmlist, state.node);
  const tier = tierFromOptions({ remote: opts.remote, remoteZfsRoot: opts.remoteZfsRoot });
  const localHost = new LocalHost(state.node);
  const localZfs = new Zfs(localHost);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  const where = `${tier.host.name}:${tier.root}`;
  try {
    const tierState = await loadTier(tier, { metadataDir, vmid: opts.vmid }, log);
    const points = tierState.points.filter((p) => p.vmid === opts.vmid);
    const usable = (p: RestorePoint) =>
      opts.disk === undefined ? p.complete : p.disks.some((d) => d.key === opts.disk && d.present);
    const choice = choosePoint(points, { snapshot: opts.snapshot, time: opts.time }, usable, where);
    if ('error' in choice) {
      log.error(choice.error);
      return ExitCode.failure;
    }
    const { point } = choice;
    if (choice.skipped.length > 0) {
      log.warn(
        `newer backups are incomplete on ${where} and were passed over: ${choice.skipped.map((p) => p.snapshot).join(', ')}`,
      );
    }
    const { stdout: configText } = await run(
      tier.host,
      readConfigArgv(tierState.metadataDir, point.vmid, point.snapshot),
    );

    const poolRoots = [
      ...new Set([...pools.values()].filter((p) => p.pool !== '' && !p.disabled).map((p) => p.pool)),
    ];
    const localDatasets = new Map(
      (await localZfs.list({ roots: poolRoots, depth: 2 })).map((d) => [d.name, d]),
    );
    const local: LocalState = { node: state.node, pools, datasets: localDatasets, existing };
    const prefix = macPrefix(await readOptional(path.join(PVE, 'datacenter.cfg')));
    const req = {
      point,
      configText,
      tier: where,
      asVmid: opts.asVmid,
      targetStorage: opts.targetStorage,
      force: opts.force === true,
      newMac: opts.newMacs ? () => generateMac(prefix, randomBytes(6)) : undefined,
      newUuid: randomUUID,
      now: new Date(),
      keepHostKeys: opts.keepHostKeys === true,
      origins: originsOf(tierState.datasets),
    };
    const planned =
      opts.disk === undefined
        ? planGuestRestore(req, local)
        : planDiskRestore({ ...req, disk: opts.disk }, local);
    if ('refused' in planned) {
      for (const r of planned.refused)
        log.error(`restore of guest ${opts.vmid} from ${point.snapshot} refused: ${r}`);
      return ExitCode.failure;
    }
    const { plan } = planned;
    for (const w of plan.warnings) log.warn(w);
    if (opts.dryRun) {
      if (opts.json) {
        writeOut(`${JSON.stringify({ dryRun: true, plan }, null, 2)}\n`);
      } else {
        writeOut(`plan (dry run, nothing is changed):\n${describePlan(plan)}`);
        if (plan.kind === 'guest') writeOut(`config:\n${plan.configText.trimEnd().replace(/^/gm, '  | ')}\n`);
      }
      return ExitCode.ok;
    }
    const replacing = plan.kind === 'guest' && (plan.replaces !== null || plan.disks.some((d) => d.aside));
    if (replacing && !opts.yes) {
      const asked =
        process.stdin.isTTY === true &&
        (await confirm(
          printableLines(`${describePlan(plan)}Replace guest ${plan.vmid} and these datasets?`),
        ));
      if (!asked) {
        log.error(
          `restore over guest ${plan.vmid} not confirmed: nothing was changed (run with -y to confirm)`,
        );
        return ExitCode.failure;
      }
    }

    const acquired = await acquire(
      `guest-${plan.vmid}`,
      `restore of guest ${plan.vmid}`,
      opts.lockWait * 1000,
    );
    if ('heldBy' in acquired) {
      log.error(`${describeHolder(acquired.heldBy)} is working on guest ${plan.vmid}; try again later`);
      return ExitCode.failure;
    }
    try {
      const tierDatasets = new Map(tierState.datasets.map((d) => [d.name, d]));
      const disks = plan.kind === 'guest' ? plan.disks : [plan.disk];
      const received = await receiveAll(
        disks,
        tier,
        tierDatasets,
        localZfs,
        localDatasets,
        opts,
        progress,
        log,
        plan.vmid,
      ).catch((err: unknown) => {
        throw new ZbmError(
          `${errorMessage(err)}\nnothing was renamed and no config written; what arrived waits under ${disks.map((d) => d.temp).join(', ')}: ` +
            'run the same restore again to resume',
        );
      });
      await setSubvolProperties(disks, localZfs);
      await moveIntoPlace(disks, localZfs, log);
      const configFile = `${PVE}/${plan.configPath}`;
      let extra: Record<string, unknown> = {};
      if (plan.kind === 'guest') {
        if (plan.replaces?.configText !== undefined) {
          const saved = `${REPLACED_CONFIGS}/${plan.vmid}-${formatStamp(new Date())}.conf`;
          await writeFileAtomic(localHost, saved, plan.replaces.configText);
          log.warn(`the replaced config of guest ${plan.vmid} is kept as ${saved}`);
          extra = { replacedConfig: saved };
        }
        await writeFileAtomic(localHost, configFile, plan.configText);
        log.info(`guest ${plan.vmid}: config written to ${configFile}`);
        await finish(disks, plan.keepSnapshot, localZfs, log);
      } else {
        // Read again just before writing: the guest may have been edited while the disk arrived.
        const fresh = addUnused(readFileSync(configFile, 'utf8'), plan.disk.volume);
        await writeFileAtomic(localHost, configFile, fresh.text);
        log.info(`guest ${plan.vmid}: ${plan.disk.volume} added to ${configFile} as ${fresh.key}`);
        extra = { unusedKey: fresh.key };
        await finish(disks, false, localZfs, log);
      }
      printResult(plan, received, extra, opts);
      return log.problems.errors > 0 ? ExitCode.failure : ExitCode.ok;
    } finally {
      acquired.lock.release();
    }
  } finally {
    progress.clear();
    await tier.host.close();
  }
}
