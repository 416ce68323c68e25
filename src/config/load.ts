import { existsSync, readFileSync } from 'node:fs';
import { commandOptionSpecs, type Invocation, type ProgramIO, parseCommandLine } from '../cli/program.ts';
import { ExitCode, errorMessage, UsageError } from '../errors.ts';
import { hostHasZone } from '../time/zoneinfo.ts';
import { type Config, parseConfig } from './config.ts';

/** On a Proxmox cluster the file lives in the cluster file system, so every node shares it. */
export const CONFIG_PATHS = ['/etc/pve/zbm.yaml', '/etc/zbm/zbm.yaml'] as const;

/** --config (or ZBM_CONFIG, which the parser reads into it), else the first default that exists. */
export function configPath(given: unknown): string {
  if (typeof given === 'string') return given;
  return CONFIG_PATHS.find((p) => existsSync(p)) ?? CONFIG_PATHS[1];
}

const EXAMPLE = '/usr/share/doc/zbm/examples/zbm.yaml';

/** Reads and validates the config file; errors name the file, the line and the key. */
export function loadConfig(path: string, given = true): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(
      code === 'ENOENT'
        ? given
          ? `${path} does not exist: check the name (or create it, see ${EXAMPLE})`
          : `no config file: neither ${CONFIG_PATHS.join(' nor ')} exists; create one (see ${EXAMPLE}) or name it with --config or ZBM_CONFIG`
        : code === 'EISDIR'
          ? `${path} is a directory, not a config file`
          : `cannot read ${path}: ${errorMessage(err)}`,
    );
  }
  return parseConfig(text, path, commandOptionSpecs(), hostHasZone);
}

/**
 * `zbm run <job> [flags]`: the job's command line with the flags appended (the last value of an
 * option wins), parsed like a typed one. A usage error in the file or the flags is exit code 2.
 */
export function expandRun(options: Readonly<Record<string, unknown>>, io: ProgramIO): Invocation | number {
  const path = configPath(options.config);
  let config: Config;
  try {
    config = loadConfig(path, typeof options.config === 'string');
  } catch (err) {
    io.writeErr(`error: ${errorMessage(err)}\n`);
    return ExitCode.usage;
  }
  const job = config.jobs.find((j) => j.name === options.job);
  if (!job) {
    io.writeErr(
      `error: ${path} has no job ${JSON.stringify(options.job)} (jobs: ${config.jobs.map((j) => j.name).join(', ') || 'none'})\n`,
    );
    return ExitCode.usage;
  }
  const rest = Array.isArray(options.rest) ? options.rest.map(String) : [];
  return parseCommandLine([...job.argv, ...rest], io);
}
