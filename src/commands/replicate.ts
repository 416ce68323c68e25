import { hostname } from 'node:os';
import { METADATA_DIR_PROPERTY } from '../backup/metadata.ts';
import type { Logger } from '../cli/log.ts';
import { formatBytes, Progress } from '../cli/progress.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { RateLimiter } from '../host/rate.ts';
import { SshHost } from '../host/ssh.ts';
import { acquire, describeHolder } from '../lock/lock.ts';
import { describeConflict } from '../plan/diff.ts';
import { copyMetadata } from '../replicate/metadata.ts';
import { type BasePair, holdTag, protectBases } from '../transfer/protect.ts';
import { planSync, type SyncResult, syncDataset } from '../transfer/sync.ts';
import { joinDataset, relativeTo } from '../zfs/names.ts';
import type { Dataset } from '../zfs/types.ts';
import { Zfs } from '../zfs/zfs.ts';

export interface ReplicateOptions {
  readonly remote: string;
  readonly remoteZfsRoot: string;
  readonly localZfsRoot: string;
  readonly prefix?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly bwlimit?: number;
  readonly forceRollback?: boolean;
  readonly lockWait: number;
}

export interface DatasetResult {
  readonly source: string;
  readonly target: string;
  readonly result: 'ok' | 'failed' | 'skipped';
  readonly mode?: SyncResult['mode'];
  readonly resumed?: SyncResult['resumed'];
  readonly sent: readonly string[];
  readonly bytes: number;
  readonly error?: string;
}

/**
 * Mirrors every dataset under --local-zfs-root to the same relative path under --remote-zfs-root,
 * with every selected snapshot the replica lacks (its history is pruned by its own rules later).
 */
export async function replicate(opts: ReplicateOptions, log: Logger): Promise<number> {
  const local = new LocalHost();
  const remote = new SshHost(opts.remote);
  const localZfs = new Zfs(local);
  const remoteZfs = new Zfs(remote);
  const select = (short: string) => opts.prefix === undefined || short.startsWith(opts.prefix);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  const out = (s: string) => process.stdout.write(s);
  try {
    const sourceList = await localZfs.list({
      roots: [opts.localZfsRoot],
      userProps: [METADATA_DIR_PROPERTY],
    });
    if (sourceList.length === 0) {
      log.error(`${local.name}: ${opts.localZfsRoot} does not exist; nothing to replicate`);
      return ExitCode.failure;
    }
    const remoteRootExists = await remoteZfs.exists(opts.remoteZfsRoot);
    const targets = new Map(
      (remoteRootExists ? await remoteZfs.list({ roots: [opts.remoteZfsRoot] }) : []).map((d) => [d.name, d]),
    );
    const sources = sourceList
      .filter((d) => d.name !== opts.localZfsRoot || d.snapshots.some((s) => select(s.short)))
      .sort((a, b) => a.name.localeCompare(b.name));
    const targetOf = (d: Dataset) =>
      joinDataset(opts.remoteZfsRoot, relativeTo(opts.localZfsRoot, d.name) ?? '');

    if (opts.dryRun) {
      out(
        `plan (dry run, nothing is changed): replicate ${opts.localZfsRoot} to ${remote.name}:${opts.remoteZfsRoot}\n`,
      );
      for (const d of sources) {
        const t = targetOf(d);
        const plan = planSync(
          { zfs: localZfs, dataset: d.name, listing: d },
          { zfs: remoteZfs, dataset: t, listing: targets.get(t) ?? null },
          select,
        );
        const what =
          plan.kind === 'full' || plan.kind === 'incremental'
            ? `${plan.kind}, ${plan.steps.length} snapshot(s): ${plan.steps.map((s) => s.to.short).join(', ')}`
            : plan.kind === 'up-to-date'
              ? 'up to date'
              : `refused: ${describeConflict(plan, { host: local.name, dataset: d.name }, { host: remote.name, dataset: t }, '--force-rollback')}`;
        out(
          `${d.name} → ${t}: ${what}${targets.get(t)?.resumeToken ? ' (first resumes an interrupted transfer)' : ''}\n`,
        );
      }
      return ExitCode.ok;
    }

    if (!remoteRootExists) {
      log.info(`creating ${remote.name}:${opts.remoteZfsRoot}`);
      await remoteZfs.create(opts.remoteZfsRoot);
    }
    const limiter = opts.bwlimit ? new RateLimiter(opts.bwlimit) : undefined;
    const tag = holdTag(hostname(), remote.name);
    const results: DatasetResult[] = [];
    const bases: BasePair[] = [];
    for (const d of sources) {
      const target = targetOf(d);
      const base = { source: d.name, target, sent: [], bytes: 0 };
      const acquired = await acquire(`dataset-${d.name}`, `replicate ${d.name}`, opts.lockWait * 1000);
      if ('heldBy' in acquired) {
        const error = `skipped: ${describeHolder(acquired.heldBy)} is working on ${d.name}`;
        log.warn(error);
        results.push({ ...base, result: 'skipped', error });
        continue;
      }
      try {
        let before = targets.get(target) ?? null;
        const sync = async () =>
          syncDataset(
            { zfs: localZfs, dataset: d.name, listing: d },
            { zfs: remoteZfs, dataset: target, listing: before },
            {
              select,
              limiter,
              rollbackOption: '--force-rollback',
              onProgress: (b) => progress.update(d.name, b),
              onMessage: (m) => {
                progress.clear();
                log.warn(m);
              },
            },
          );
        if (opts.forceRollback && before) {
          const plan = planSync(
            { zfs: localZfs, dataset: d.name, listing: d },
            { zfs: remoteZfs, dataset: target, listing: before },
            select,
          );
          if (plan.kind === 'diverged') {
            log.warn(
              `${remote.name}:${target}: rolling back to ${plan.common.short} (guid ${plan.common.guid}) as --force-rollback asks`,
            );
            await remoteZfs.rollback(`${target}@${plan.common.short}`);
            before =
              (await remoteZfs.list({ roots: [target], depth: 1 })).find((x) => x.name === target) ?? null;
          }
        }
        const r = await sync();
        progress.clear();
        bases.push({ source: d, target, targetBefore: before, common: r.common.short });
        if (r.sent.length > 0)
          log.info(
            `${d.name} → ${remote.name}:${target}: ${r.mode}, ${r.sent.length} snapshot(s), ${formatBytes(r.bytes)}`,
          );
        results.push({
          ...base,
          result: 'ok',
          mode: r.mode,
          resumed: r.resumed,
          sent: r.sent,
          bytes: r.bytes,
        });
      } catch (err) {
        progress.clear();
        const error = errorMessage(err);
        log.error(`${d.name} → ${remote.name}:${target}: ${error}`);
        results.push({ ...base, result: 'failed', error });
      } finally {
        acquired.lock.release();
      }
    }

    let protectFailed = false;
    try {
      await protectBases(localZfs, remoteZfs, tag, bases, select);
    } catch (err) {
      protectFailed = true;
      log.error(
        `protecting the new common snapshots on ${local.name} and ${remote.name}: ${errorMessage(err)}`,
      );
    }

    const metadataDir = sourceList.find((d) => d.name === opts.localZfsRoot)?.props[METADATA_DIR_PROPERTY];
    let metadataFailed = false;
    if (metadataDir) {
      try {
        const replicated = await remoteZfs.list({ roots: [opts.remoteZfsRoot] });
        const copied = await copyMetadata(local, remote, metadataDir, replicated);
        await remoteZfs.setUserProperties(opts.remoteZfsRoot, { [METADATA_DIR_PROPERTY]: metadataDir });
        if (copied > 0)
          log.info(`copied ${copied} guest config and manifest file(s) to ${remote.name}:${metadataDir}`);
      } catch (err) {
        metadataFailed = true;
        log.error(`copying guest configs from ${metadataDir} to ${remote.name}: ${errorMessage(err)}`);
      }
    }

    if (opts.json) {
      out(`${JSON.stringify({ remote: remote.name, datasets: results }, null, 2)}\n`);
    } else {
      const ok = results.filter((r) => r.result === 'ok');
      out(
        `replicated ${ok.length} of ${results.length} dataset(s) to ${remote.name}:${opts.remoteZfsRoot}, ` +
          `${ok.reduce((n, r) => n + r.sent.length, 0)} snapshot(s), ${formatBytes(results.reduce((n, r) => n + r.bytes, 0))}\n`,
      );
      for (const r of results.filter((x) => x.result !== 'ok'))
        out(`  ${r.source}: ${r.result}: ${r.error}\n`);
    }
    return results.some((r) => r.result !== 'ok') || metadataFailed || protectFailed
      ? ExitCode.failure
      : ExitCode.ok;
  } finally {
    progress.clear();
    await remote.close();
  }
}
