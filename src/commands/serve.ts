import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { ExitCode } from '../errors.ts';
import { authorize } from '../serve/policy.ts';
import { locked } from '../serve/receive.ts';
import { refuseResume, run } from '../serve/run.ts';
import { splitShellWords } from '../serve/words.ts';
import { writeNewFiles } from '../serve/write.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type ServeOptions = CommandOptions<'serve'>;

/**
 * `zbm serve`: the forced command of a Proxmox node's ssh key on the backup server. It runs the one
 * command the client asked for (SSH_ORIGINAL_COMMAND) if the policy allows it, without a shell.
 */
export async function serve(opts: ServeOptions, log: Logger): Promise<number> {
  const line = process.env.SSH_ORIGINAL_COMMAND;
  if (line === undefined) {
    log.error(
      'zbm serve answers the commands of an ssh client: make it the forced command of the node\'s key in authorized_keys (command="zbm serve --root ...",restrict ssh-ed25519 ...), see /usr/share/doc/zbm/docs/serve.md',
    );
    return ExitCode.usage;
  }
  const argv = splitShellWords(line);
  const decision =
    argv === null
      ? {
          kind: 'refuse' as const,
          reason: 'not a command line zbm sends (only plain and single-quoted words)',
        }
      : authorize(argv, {
          root: opts.root,
          metadataDir: opts.metadataDir ?? null,
          sendOnly: opts.sendOnly,
          tag: opts.tag,
        });
  if (decision.kind === 'refuse') {
    const shown = JSON.stringify(line.length > 300 ? `${line.slice(0, 300)}...` : line);
    log.error(`zbm serve on ${opts.root}: refused ${shown}: ${decision.reason}`);
    return ExitCode.failure;
  }
  if (decision.kind === 'write') return writeNewFiles(decision, opts, log);
  if (decision.kind === 'receive') return locked(decision, opts, log);
  if (decision.resumeToken !== undefined) {
    const why = await refuseResume(decision.resumeToken, opts.root);
    if (why !== null) {
      log.error(`zbm serve on ${opts.root}: refused zfs send -t: ${why}`);
      return ExitCode.failure;
    }
  }
  return run(decision.argv, log, decision.input);
}
