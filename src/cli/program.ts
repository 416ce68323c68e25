import { Argument, Command, CommanderError, Option } from 'commander';
import type { OptionSpec } from '../config/config.ts';
import { ExitCode, speaksMonitoringPlugin } from '../errors.ts';
import { printable } from '../text/printable.ts';
import { VERSION } from '../version.ts';
import { bashCompletion, type CompletionCommand } from './completion.ts';
import { type Flags, isRequired } from './flags.ts';
import {
  COMMANDS,
  CONFIG_CHECK_FLAGS,
  type CommandOptions,
  type Commands,
  configFlags,
  configOption,
  INSTALL_TIMERS_FLAGS,
  SERVE_FLAGS,
} from './options.ts';
import * as v from './values.ts';

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    a failure (for example one guest or dataset failed, or was skipped as Proxmox had locked it; the others were still done), an error, or a refusal that changed nothing
  2    usage error (unknown flag, bad value, missing option)
  75   zbm serve: the dataset is locked by another zbm run (a prune); the next run retries
  130  interrupted (SIGINT/SIGTERM/SIGHUP); every child process was stopped`;

export const VERIFY_EXIT_CODES_HELP = `
Exit codes (monitoring-plugin convention, for Nagios, Icinga, Checkmk):
  0    OK
  1    WARNING (too few snapshots, an interrupted transfer, a scrub overdue, a disk missing from a backup)
  2    CRITICAL (a backup too old or missing, a degraded pool)
  3    UNKNOWN (a check could not run, or a usage error)
The first line of stdout is the status, with performance data after "|"; every run prints it.`;

export const DRILL_EXIT_CODES_HELP = `
Exit codes (monitoring-plugin convention, as verify):
  0    OK (every guest drilled passed)
  2    CRITICAL (a guest failed its drill: a disk missing or with another guid, a config that does not parse or names other disks, a block that does not read back; or no restore point)
  3    UNKNOWN (the drills could not run, or a usage error)
The first line of stdout is the status, with performance data after "|"; every run prints it.`;

const EXIT_CODES_OF: Readonly<Record<string, string>> = {
  verify: VERIFY_EXIT_CODES_HELP,
  drill: DRILL_EXIT_CODES_HELP,
};

export interface ProgramIO {
  readonly writeOut: (s: string) => void;
  readonly writeErr: (s: string) => void;
}

/**
 * What a parsed command line asks for: the command's name and its validated options. Besides its
 * own, every command has --verbose, and each job the alert and metrics flags (notify/after-run.ts
 * reads those); they stay in options, untyped.
 */
export type Invocation =
  | {
      [C in keyof Commands]: {
        readonly command: C;
        readonly options: CommandOptions<C> & Readonly<Record<string, unknown>>;
      };
    }[keyof Commands]
  | { readonly command: 'run' | 'completion'; readonly options: Readonly<Record<string, unknown>> };

/**
 * Adds the flags of a table to cmd. The table's keys are the keys of the command's Options, so
 * each must be the key commander stores the flag's value under.
 */
function addFlags(cmd: Command, flags: Flags): Command {
  for (const [key, f] of Object.entries(flags)) {
    if (f.option.attributeName() !== key)
      throw new Error(
        `zbm ${cmd.name()}: the flag ${f.option.flags} is stored as ${f.option.attributeName()}, not ${key}`,
      );
    cmd.addOption(f.option);
  }
  return cmd;
}

/**
 * The invocation of a command built from its flags (addFlags). Commander's types do not follow the
 * flags, so this is the one place where they are taken as typed: addFlags checked that each key of
 * the table is the key commander stores the value under, and the table typed each parser and default.
 */
function invocation(command: keyof Commands, options: Record<string, unknown>): Invocation {
  return { command, options } as Invocation;
}

/** Commander's messages on one line, with its suggestion as part of the sentence. */
function oneLine(message: string): string {
  return (
    message
      .trim()
      .replace(/\n\(Did you mean (.+)\?\)$/, ', did you mean $1?')
      .replace(
        /^error: option '([^' ]+)[^']*' argument '(.*)' is invalid\. /s,
        (_, flag: string, value: string) => `error: ${flag} ${JSON.stringify(value)}: `,
      )
      // The value once: `--remote "x": invalid remote "x": ...` says it twice.
      .replace(/^(error: \S+ (".*?")): invalid [a-z ]+ \2: /, '$1: ')
      .replace(/\s*\n\s*/g, ' ')
  );
}

/**
 * Parses argv (without `node zbm`). Returns the invocation, or the exit code when parsing ended the
 * run: help and version (0), a usage error (one line naming the flag, exit code 2; for verify and drill,
 * monitoring plugins, an UNKNOWN status line on stdout and exit code 3).
 */
export function parseCommandLine(args: readonly string[], io: ProgramIO): Invocation | number {
  let invocation: Invocation | undefined;
  let lastError = '';
  const program = buildProgram(
    {
      writeOut: io.writeOut,
      writeErr: (s) => {
        lastError = s;
        io.writeErr(s);
      },
    },
    (inv) => {
      invocation = inv;
    },
  );
  // `zbm help <command>` is `zbm <command> --help`; an unknown one gets `zbm <unknown>`'s answer.
  const known = (name: string) => program.commands.some((c) => c.name() === name);
  const parse =
    args[0] === 'help' && args[1] !== undefined
      ? known(args[1])
        ? [args[1], ...args.slice(2), '--help']
        : [args[1]]
      : args;
  try {
    program.parse(parse, { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.exitCode === 0) return ExitCode.ok;
    if (speaksMonitoringPlugin(args[0] ?? '') && err.code !== 'commander.help') {
      io.writeOut(`ZBM UNKNOWN - ${lastError.trim().replace(/^error: /, '')}\n`);
      return ExitCode.unknown;
    }
    return ExitCode.usage;
  }
  if (!invocation) {
    io.writeErr(program.helpInformation());
    return ExitCode.usage;
  }
  return invocation;
}

/** The options of every command that can be a job, as the config file needs them. */
export function commandOptionSpecs(): Map<string, OptionSpec[]> {
  const program = buildProgram({ writeOut: () => {}, writeErr: () => {} }, () => {});
  return new Map(
    program.commands.map((c) => [
      c.name(),
      c.options
        .filter((o) => o.long !== undefined && o.long !== '--help')
        .map((o) => ({
          key: (o.long ?? '').replace(/^--/, ''),
          takesValue: o.required || o.optional,
          mandatory: isRequired(o),
          ...(o.parseArg ? { parse: o.parseArg as (value: string, previous: unknown) => unknown } : {}),
        })),
    ]),
  );
}

/** The bash completion script, from the same definitions the parser uses. */
export function completionScript(): string {
  const program = buildProgram({ writeOut: () => {}, writeErr: () => {} }, () => {});
  const visible = (c: Command) => c.options.filter((o) => !o.hidden && o.long).map((o) => o.long as string);
  const describe = (c: Command): CompletionCommand => ({
    name: c.name(),
    options: visible(c),
    subcommands: c.commands.map(describe),
    jobs: c.name() === 'run',
  });
  return bashCompletion(program.commands.map(describe));
}

function verboseOption(): Option {
  return new Option(
    '-v, --verbose',
    'print debug messages, and the command line of every command that fails',
  );
}

/** The usage line names the required options, so `--help` shows what a command cannot run without. */
function usageOf(cmd: Command): string {
  const req = cmd.options.filter((o) => isRequired(o)).map((o) => o.flags);
  return [
    ...req,
    '[options]',
    ...cmd.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)),
  ].join(' ');
}

/** Every required option that was not given, in one usage error. */
function checkRequired(cmd: Command, options: Readonly<Record<string, unknown>>): void {
  const missing = cmd.options.filter((o) => isRequired(o) && options[o.attributeName()] === undefined);
  if (missing.length === 0) return;
  const name = cmd.parent?.parent ? `${cmd.parent.name()} ${cmd.name()}` : cmd.name();
  cmd.error(`error: zbm ${name} needs ${missing.map((o) => o.flags).join(', ')} (see zbm ${name} --help)`, {
    code: 'zbm.missingRequired',
    exitCode: ExitCode.usage,
  });
}

function buildProgram(io: ProgramIO, onAction: (inv: Invocation) => void): Command {
  const program = new Command('zbm')
    .description('zbm: ZFS Backups Manager for Proxmox VE')
    .version(VERSION, '-V, --version')
    .configureOutput({
      writeOut: io.writeOut,
      writeErr: io.writeErr,
      // One line, and a value from a config file or a terminal cannot drive the terminal either.
      outputError: (message, write) => write(`${printable(oneLine(message))}\n`),
    })
    .exitOverride()
    .showSuggestionAfterError(true)
    .helpCommand('help [command]', 'show the help of a command')
    .addHelpText('after', EXIT_CODES_HELP);

  for (const spec of COMMANDS) {
    const cmd = addFlags(
      program.command(spec.name).summary(spec.summary).description(spec.summary),
      spec.flags,
    );
    cmd.addOption(verboseOption());
    if (spec.job) {
      // Alerts and metrics, for the commands that run unattended (README "Alerts and metrics").
      cmd.addOption(
        new Option(
          '--notify-mail <address>',
          'mail a summary of problems to this address or local user through the local sendmail (repeatable)',
        ).argParser(v.mailAddresses),
      );
      cmd.addOption(
        new Option(
          '--notify-webhook <url>',
          'POST a JSON summary of problems to this URL (Gotify, ntfy; repeatable)',
        ).argParser(v.webhookUrls),
      );
      cmd.addOption(
        new Option('--notify-on <when>', 'notify on failure, on warning (and failure), or always')
          .choices(['failure', 'warning', 'always'])
          .default('warning'),
      );
      cmd.addOption(
        new Option(
          '--prometheus-textfile <path>',
          "write the run's metrics to this file for node_exporter's textfile collector (one file per job)",
        ).argParser(v.absolutePath),
      );
    }
    cmd.usage(usageOf(cmd));
    cmd.addHelpText('after', EXIT_CODES_OF[spec.name] ?? EXIT_CODES_HELP);
    cmd.action((options: Record<string, unknown>) => {
      checkRequired(cmd, options);
      onAction(invocation(spec.name, options));
    });
  }

  program
    .command('run')
    .summary('run a job of the config file; flags after the job name override the file')
    .description(
      'Runs the job as if its command line had been typed. Flags after the job name override the\n' +
        "file's values (options given several times, like --vmid, add to them).",
    )
    .argument('<job>', 'job name in the config file')
    .addOption(configOption())
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', EXIT_CODES_HELP)
    .action((job: string, options: Record<string, unknown>, cmd: Command) => {
      onAction({ command: 'run', options: { ...options, job, rest: cmd.args.slice(1) } });
    });
  const config = program.command('config').summary('check the config file');
  addFlags(
    config
      .command('check')
      .summary('validate the config file and print each job as the command line it runs')
      .description('validate the config file and print each job as the command line it runs'),
    { ...configFlags(), ...CONFIG_CHECK_FLAGS },
  )
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP)
    .action((options: Record<string, unknown>) => {
      onAction(invocation('config-check', options));
    });
  program
    .command('completion')
    .summary('print the bash completion script')
    .description(
      'Prints the bash completion script (installed by the Debian package in\n' +
        '/usr/share/bash-completion/completions/zbm): commands, flags, and the job names after zbm run.',
    )
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash']))
    .action(() => {
      onAction({ command: 'completion', options: {} });
    });
  const serve = addFlags(program.command('serve'), SERVE_FLAGS)
    .summary("answer a Proxmox node's backup-pve on the backup server, append-only (an ssh forced command)")
    .description(
      "Runs as the forced command of a node's ssh key on the backup server and allows only what\n" +
        'backup-pve needs inside --root: list; receive one new zbm snapshot per stream, checked before\n' +
        'zfs reads it (named --prefix and a UTC time after the target newest, at most --clock-skew\n' +
        'ahead); resume; hold its --tag; new configs of backups that arrived. No destroy, rollback,\n' +
        'receive -F, property of its choosing, nothing outside --root, no shell. With --send-only, what\n' +
        'a pulling replica or a restore needs instead: list, send, read configs, hold its --tag; no\n' +
        'writes. See /usr/share/doc/zbm/docs/serve.md (threat model).',
    )
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP);
  serve.usage(usageOf(serve)).action((options: Record<string, unknown>) => {
    checkRequired(serve, options);
    onAction(invocation('serve', options));
  });
  const installTimers = program
    .command('install-timers')
    .summary('create systemd service and timer units for the scheduled jobs of the config file')
    .description(
      'Writes zbm-<job>.service and zbm-<job>.timer for each job of the config file that has a\n' +
        'schedule, reloads systemd and enables the timers. Run it again after editing the file: units of\n' +
        'jobs no longer in it are stopped and removed; units it did not make are never touched.',
    );
  addFlags(installTimers, { ...configFlags(), ...INSTALL_TIMERS_FLAGS })
    .addOption(verboseOption())
    .addHelpText('after', EXIT_CODES_HELP)
    .action((options: Record<string, unknown>) => {
      onAction(invocation('install-timers', options));
    });
  return program;
}
