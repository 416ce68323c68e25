import { readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../cli/log.ts';
import { configPath, loadConfig } from '../config/load.ts';
import { GENERATED_MARK, type UnitFile, unitsFor } from '../config/units.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { shellJoin } from '../host/quote.ts';

export interface ConfigCheckOptions {
  readonly config?: string;
  readonly json?: boolean;
}

/** `zbm config check`: validates the file and shows each job as the command line it runs. */
export async function configCheck(opts: ConfigCheckOptions, log: Logger): Promise<number> {
  const path = configPath(opts.config);
  const config = loadConfig(path, opts.config !== undefined);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ path, jobs: config.jobs }, null, 2)}\n`);
  } else {
    process.stdout.write(`${path}: ${config.jobs.length} job(s), valid\n`);
    for (const j of config.jobs)
      process.stdout.write(
        `${j.name} (${j.schedule ?? 'not scheduled'}): ${shellJoin(['zbm', ...j.argv])}\n`,
      );
  }
  log.debug(`checked ${path}`);
  return ExitCode.ok;
}

export interface InstallTimersOptions {
  readonly config?: string;
  readonly unitDir: string;
  /** commander's --no-start: false when given. */
  readonly start: boolean;
  readonly dryRun?: boolean;
}

function generatedUnits(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => {
    if (!/^zbm-.+\.(service|timer)$/.test(n)) return false;
    try {
      return readFileSync(join(dir, n), 'utf8').startsWith(GENERATED_MARK);
    } catch {
      return false;
    }
  });
}

/**
 * `zbm install-timers`: a service and a timer per scheduled job; units it generated earlier for
 * jobs no longer in the file are stopped and removed, hand-written units are never touched.
 */
export async function installTimers(opts: InstallTimersOptions, log: Logger): Promise<number> {
  const path = configPath(opts.config);
  const config = loadConfig(path, opts.config !== undefined);
  const zbm = realpathSync(process.argv[1] ?? '/usr/bin/zbm');
  const units: UnitFile[] = config.jobs.flatMap((j) => unitsFor(j, zbm, path));
  const wanted = new Set(units.map((u) => u.name));
  const stale = generatedUnits(opts.unitDir).filter((n) => !wanted.has(n));
  if (opts.dryRun) {
    for (const u of units) process.stdout.write(`# ${join(opts.unitDir, u.name)}\n${u.text}\n`);
    for (const n of stale) process.stdout.write(`# would remove ${join(opts.unitDir, n)}\n`);
    return ExitCode.ok;
  }
  const local = new LocalHost();
  const systemctl = async (...args: string[]) => {
    await run(local, ['systemctl', ...args]);
  };
  const staleTimers = stale.filter((n) => n.endsWith('.timer'));
  if (opts.start && staleTimers.length > 0) await systemctl('disable', '--now', ...staleTimers);
  for (const n of stale) {
    rmSync(join(opts.unitDir, n), { force: true });
    log.info(`removed ${join(opts.unitDir, n)} (its job is no longer in ${path})`);
  }
  for (const u of units) {
    const file = join(opts.unitDir, u.name);
    writeFileSync(`${file}.tmp`, u.text, { mode: 0o644 });
    renameSync(`${file}.tmp`, file);
    log.info(`wrote ${file}`);
  }
  const timers = units.filter((u) => u.name.endsWith('.timer')).map((u) => u.name);
  if (!opts.start) return ExitCode.ok;
  try {
    await systemctl('daemon-reload');
    if (timers.length > 0) await systemctl('enable', '--now', ...timers);
  } catch (err) {
    log.error(`the units are written, but systemd did not take them: ${errorMessage(err)}`);
    return ExitCode.failure;
  }
  process.stdout.write(
    timers.length === 0
      ? `no job of ${path} has a schedule: no timer installed\n`
      : `enabled ${timers.join(', ')}; see them with: systemctl list-timers 'zbm-*'\n`,
  );
  return ExitCode.ok;
}
