import { existsSync, readFileSync } from 'node:fs';
import { errorMessage, UsageError } from '../errors.ts';
import { hostHasZone } from '../time/zoneinfo.ts';
import { type CommandSpecs, type Config, parseConfig } from './config.ts';

/** On a Proxmox cluster the file lives in the cluster file system, so every node shares it. */
export const CONFIG_PATHS = ['/etc/pve/zbm.yaml', '/etc/zbm/zbm.yaml'] as const;

/** --config (or ZBM_CONFIG, which the parser reads into it), else the first default that exists. */
export function configPath(given: unknown): string {
  if (typeof given === 'string') return given;
  return CONFIG_PATHS.find((p) => existsSync(p)) ?? CONFIG_PATHS[1];
}

const EXAMPLE = '/usr/share/doc/zbm/examples/zbm.yaml';

/**
 * Reads and validates the config file against the options of each command (the CLI's, handed in:
 * the config file sits below the command line); errors name the file, the line and the key.
 */
export function loadConfig(path: string, specs: CommandSpecs, given = true): Config {
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
  return parseConfig(text, path, specs, hostHasZone);
}
