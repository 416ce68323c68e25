/**
 * What zbm serve runs once policy.ts allowed a command other than a receive or a write: the
 * command itself with the client's stdio, and before a resumed send the check of its token.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { ExitCode, errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run as runCommand } from '../host/process.ts';
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
export function run(argv: readonly string[], log: ServeLog, input?: string): Promise<number> {
  const [file, ...args] = argv;
  // The stream goes from ssh straight into zfs: stdio is handed over, not copied through node.
  const child = spawn(file ?? 'false', args, {
    stdio: [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit'],
  });
  if (input !== undefined) {
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
    process.stdin.resume();
  }
  return new Promise((resolve) => {
    child.on('error', (err) => {
      log.error(`zbm serve: cannot run ${file}: ${errorMessage(err)}`);
      resolve(ExitCode.failure);
    });
    child.on('exit', (code, signal) => {
      if (input !== undefined) process.stdin.destroy();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
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
