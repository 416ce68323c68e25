/**
 * What zbm serve runs once policy.ts allowed a command other than a receive or a write: the
 * command itself with the client's stdio, and before a resumed send the check of its token.
 */
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { exitStatus, run as runCommand, startWithStdio } from '../host/process.ts';
import { Zfs } from '../zfs/zfs.ts';
import { insideRoot } from './policy.ts';
import { parseTokenContents, refuseToken } from './token.ts';

/** What serve reports: every refusal and failure, to the client's stderr and the log. */
export interface ServeLog {
  error(msg: string): void;
}

/**
 * Runs an allowed command, its stdio the client's; its exit code is the answer. With an input of
 * serve's own (zbm's bookmark batch script), that is the command's stdin, and the client's is
 * drained unread.
 */
export async function run(argv: readonly string[], log: ServeLog, input?: string): Promise<number> {
  const [file, ...args] = argv;
  // The stream goes from ssh straight into zfs: stdio is handed over, not copied through node.
  const child = startWithStdio(file ?? 'false', args, input === undefined ? 'inherit' : 'pipe');
  if (input !== undefined) {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
    process.stdin.resume();
  }
  const status = await exitStatus(child);
  if ('spawnError' in status) {
    log.error(`zbm serve: cannot run ${file}: ${errorMessage(status.spawnError)}`);
    return ExitCode.failure;
  }
  if (input !== undefined) process.stdin.destroy();
  return status.code;
}

/**
 * Why the snapshot a resume token would send is not one of the root's: zfs decodes the token (`zfs
 * send -n -v -t`), serve reads the guid of the snapshot it names. Null when it may be sent.
 */
export async function refuseResume(token: string, root: string): Promise<string | null> {
  const host = new LocalHost();
  let contents: ReturnType<typeof parseTokenContents>;
  try {
    const { stdout, stderr } = await runCommand(host, ['zfs', 'send', '-n', '-v', '-t', token]);
    contents = parseTokenContents(`${stdout}\n${stderr}`);
  } catch (err) {
    return `zfs cannot read its token: ${errorMessage(err)}`;
  }
  if ('error' in contents) return contents.error;
  if (!insideRoot(contents.toname, root)) return refuseToken(contents, root, null);
  const [guid] = await new Zfs(host).get(['guid'], [contents.toname]).catch(() => []);
  return refuseToken(contents, root, guid?.value ?? null);
}
