import type { Config } from '../config/config.ts';
import { configPath, loadConfig } from '../config/load.ts';
import { ExitCode, errorMessage } from '../errors.ts';
import { commandOptionSpecs, type Invocation, type ProgramIO, parseCommandLine } from './program.ts';

/**
 * `zbm run <job> [flags]`: the job's command line with the flags appended (the last value of an
 * option wins), parsed like a typed one. A usage error in the file or the flags is exit code 2.
 */
export function expandRun(options: Readonly<Record<string, unknown>>, io: ProgramIO): Invocation | number {
  const path = configPath(options.config);
  let config: Config;
  try {
    config = loadConfig(path, commandOptionSpecs(), typeof options.config === 'string');
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
