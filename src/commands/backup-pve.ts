import { summaryLines } from '../backup/report.ts';
import { runBackup } from '../backup/run.ts';
import { confirm } from '../cli/confirm.ts';
import type { Logger } from '../cli/log.ts';
import type { CommandOptions } from '../cli/options.ts';
import { writeOut } from '../cli/printable.ts';
import { Progress } from '../cli/progress.ts';
import { ExitCode } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { SshHost } from '../host/ssh.ts';
import type { Metrics } from '../metrics/prometheus.ts';

/** Its flags (cli/options.ts) are its one declaration. */
export type BackupPveOptions = CommandOptions<'backup-pve'>;

export async function backupPve(opts: BackupPveOptions, log: Logger, metrics?: Metrics): Promise<number> {
  const out = writeOut;
  const remote = new SshHost(opts.remote);
  const progress = new Progress(process.stderr.isTTY === true && !opts.json);
  try {
    const run = await runBackup(
      opts,
      {
        remote,
        local: (node) => new LocalHost(node),
        progress,
        // Without -y, only a terminal can say yes.
        confirm: async (question) => process.stdin.isTTY === true && (await confirm(question)),
      },
      log,
      metrics,
    );
    if (run.kind === 'plan') {
      for (const l of run.lines) out(l);
      return run.failed.length > 0 ? ExitCode.failure : ExitCode.ok;
    }
    if (opts.json) {
      out(
        `${JSON.stringify({ node: run.node, remote: opts.remote, guests: run.results, failedGuests: run.failed }, null, 2)}\n`,
      );
    } else {
      for (const l of summaryLines(run.results)) out(l);
    }
    const bad =
      run.results.some((r) => r.result !== 'ok') || run.failed.length > 0 || log.problems.errors > 0;
    return bad ? ExitCode.failure : ExitCode.ok;
  } finally {
    progress.clear();
    await remote.close();
  }
}
