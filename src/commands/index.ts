import type { Invocation } from '../cli/program.ts';
import { ExitCode } from '../errors.ts';

/** Runs a parsed command and returns its exit code. */
export async function runCommand(inv: Invocation): Promise<number> {
  process.stderr.write(`error: zbm ${inv.command} is not implemented yet\n`);
  return ExitCode.failure;
}
