import { readdirSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { commandOptionSpecs } from '../cli/program.ts';
import { configPath, loadConfig } from '../config/load.ts';
import { GENERATED_MARK, type UnitFile, unitsFor } from '../config/units.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { shellJoin } from '../host/quote.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ConfigCheckOptions = CommandOptions<'config-check'>;

/** `zbm config check`: validates the file and shows each job as the command line it runs. */
export async function configCheck(opts: ConfigCheckOptions, log: Logger): Promise<number> {
  const path = configPath(opts.config);
  const config = loadConfig(path, commandOptionSpecs(), opts.config !== undefined);
  if (opts.json) {
    writeOut(`${JSON.stringify({ path, jobs: config.jobs }, null, 2)}\n`);
  } else {
    writeOut(`${path}: ${config.jobs.length} job(s), valid\n`);
    for (const j of config.jobs)
      writeOut(
        `${j.name} (${j.schedule ?? 'not scheduled'}${j.randomizedDelay ? `, randomized delay ${j.randomizedDelay}` : ''}): ${shellJoin(['zbm', ...j.argv])}\n`,
      );
  }
  log.debug(`checked ${path}`);
  return ExitCode.ok;
}

/** Its flags (cli/options.ts) are its one declaration. */
export type InstallTimersOptions = CommandOptions<'install-timers'>;

/** The first line of each zbm-* unit in dir: who wrote it, and from which config file. */
function unitHeaders(dir: string): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return new Map();
  }
  const headers = new Map<string, string>();
  for (const n of names) {
    if (!/^zbm-.+\.(service|timer)$/.test(n)) continue;
    try {
      headers.set(n, readFileSync(join(dir, n), 'utf8').split('\n', 1)[0] ?? '');
    } catch {
      // Unreadable: not ours to touch.
    }
  }
  return headers;
}

/**
 * `zbm install-timers`: a service and a timer per scheduled job; units it generated earlier for
 * jobs no longer in the file are stopped and removed, hand-written units are never touched.
 */
export async function installTimers(opts: InstallTimersOptions, log: Logger): Promise<number> {
  const path = configPath(opts.config);
  const config = loadConfig(path, commandOptionSpecs(), opts.config !== undefined);
  const zbm = realpathSync(process.argv[1] ?? '/usr/bin/zbm');
  const all: UnitFile[] = config.jobs.flatMap((j) => unitsFor(j, zbm, path));
  const wanted = new Set(all.map((u) => u.name));
  // Ours: generated from this very file. Two files on one host (a node that is also a backup
  // server) keep their own units; a unit another file made, or one written by hand, is not replaced.
  const mine = `${GENERATED_MARK} from ${path}:`;
  const headers = unitHeaders(opts.unitDir);
  const stale = [...headers].filter(([n, h]) => h.startsWith(mine) && !wanted.has(n)).map(([n]) => n);
  const foreign = all.filter((u) => headers.has(u.name) && !(headers.get(u.name) ?? '').startsWith(mine));
  for (const u of foreign) {
    const h = headers.get(u.name) ?? '';
    log.error(
      `${join(opts.unitDir, u.name)} ${
        h.startsWith(GENERATED_MARK)
          ? `was made from another file (${h
              .slice(GENERATED_MARK.length)
              .replace(/^ from /, '')
              .replace(/:.*$/, '')})`
          : 'was not written by zbm'
      }: left as it is; give the job another name in ${path}`,
    );
  }
  // A job is installed whole or not at all: no service without its timer.
  const blocked = new Set(foreign.map((u) => u.name.replace(/\.(service|timer)$/, '')));
  const units = all.filter((u) => !blocked.has(u.name.replace(/\.(service|timer)$/, '')));
  const done = foreign.length > 0 ? ExitCode.failure : ExitCode.ok;
  if (opts.dryRun) {
    for (const u of units) writeOut(`# ${join(opts.unitDir, u.name)}\n${u.text}\n`);
    for (const n of stale) writeOut(`# would remove ${join(opts.unitDir, n)}\n`);
    return done;
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
  if (!opts.start) return done;
  try {
    await systemctl('daemon-reload');
    if (timers.length > 0) await systemctl('enable', '--now', ...timers);
  } catch (err) {
    log.error(`the units are written, but systemd did not take them: ${errorMessage(err)}`);
    return ExitCode.failure;
  }
  writeOut(
    timers.length === 0
      ? `no job of ${path} has a schedule: no timer installed\n`
      : `enabled ${timers.join(', ')}; see them with: systemctl list-timers 'zbm-*'\n`,
  );
  return done;
}
