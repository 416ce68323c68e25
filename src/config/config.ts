import {
  CST,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  Parser,
  parseDocument,
  type YAMLError,
  type YAMLMap,
} from 'yaml';
import { errorMessage, UsageError } from '../errors.ts';
import { type IsTimeZone, scheduleProblem, timeSpanSeconds } from './calendar.ts';

/**
 * The config file: named jobs, each one zbm command with the same options as its flags, written
 * as YAML keys without the leading dashes. The file is turned into command lines, which the CLI
 * parser then validates exactly like typed flags: one set of rules for both. Pure.
 *
 *   defaults:            # options for every job whose command has them
 *     prefix: bak-zbm-
 *   notify:              # alert targets for every job (--notify-mail, --notify-webhook, --notify-on)
 *     mail: [root]
 *     webhook: [https://ntfy.example.com/zbm]
 *     on: warning
 *   jobs:
 *     backup:
 *       command: backup-pve
 *       schedule: hourly   # systemd OnCalendar, for `zbm install-timers`
 *       randomized-delay: 5min   # RandomizedDelaySec, a stable offset per host
 *       remote: zbm-dest
 *       ...
 */

/** What the config needs to know of a command's option (taken from the CLI's definitions). */
export interface OptionSpec {
  /** The flag without dashes: `remote`, `keep-last`. */
  readonly key: string;
  readonly takesValue: boolean;
  readonly mandatory: boolean;
  /** The CLI's validating parser; throws on a bad value. */
  readonly parse?: (value: string, previous: unknown) => unknown;
}

export type CommandSpecs = ReadonlyMap<string, readonly OptionSpec[]>;

export interface Job {
  readonly name: string;
  readonly command: string;
  /** The command line the job stands for, without `zbm`: `[command, ...flags]`. */
  readonly argv: readonly string[];
  readonly schedule: string | null;
  /** A systemd time span: each host's timer fires at its own stable offset within it. */
  readonly randomizedDelay: string | null;
  readonly line: number;
}

export interface Config {
  readonly path: string;
  readonly jobs: readonly Job[];
}

export interface ConfigProblem {
  readonly line: number;
  /** Where in the file: `jobs.backup.remote`. */
  readonly key: string;
  readonly message: string;
}

/** A config file is the user's input, like flags: its errors are usage errors (exit code 2). */
export class ConfigError extends UsageError {
  override name = 'ConfigError';
  constructor(
    readonly path: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(problems.map((p) => `${path}:${p.line}: ${p.key ? `${p.key}: ` : ''}${p.message}`).join('\n'));
  }
}

/** The commands a job can run (restore and the rest are one-off actions, not jobs). */
export const JOB_COMMANDS = ['backup-pve', 'replicate', 'prune', 'verify', 'drill', 'status'] as const;

const JOB_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;
const NOTIFY_KEYS: Readonly<Record<string, string>> = {
  mail: 'notify-mail',
  webhook: 'notify-webhook',
  on: 'notify-on',
};

type Value = string | number | boolean | readonly (string | number)[];

/** Where a quote or a flow collection that is never closed was opened (the parser notices at the end). */
function unclosedOpeners(text: string): number[] {
  const starts: number[] = [];
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') continue;
    CST.visit(token, (item) => {
      for (const n of [item.key, item.value]) {
        if (n?.type === 'flow-collection' && n.end.length === 0) starts.push(n.offset);
        const quote =
          n?.type === 'double-quoted-scalar' ? '"' : n?.type === 'single-quoted-scalar' ? "'" : null;
        if (quote && n && 'source' in n && (n.source.length < 2 || !n.source.trimEnd().endsWith(quote)))
          starts.push(n.offset);
      }
    });
  }
  return starts;
}

/** YAML's syntax errors in zbm's one-line form: what is wrong, in words, at the line to look at. */
function syntaxProblems(text: string, errors: readonly YAMLError[], lines: LineCounter): ConfigProblem[] {
  const openers = unclosedOpeners(text);
  const found = new Map<number, string>();
  for (const e of errors) {
    let at = e.pos[0];
    let message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    if (/Missing closing|end with a [\]}]/.test(message)) {
      // Reported where the file ends; the line to fix is the one that opened it.
      at = openers.filter((o) => o <= at).at(-1) ?? at;
      message = /quote/.test(message)
        ? 'a quote opened on this line is never closed'
        : `a ${/\]/.test(message) ? '[' : '{'} opened on this line is never closed`;
    } else if (e.code === 'TAB_AS_INDENT') message = 'a tab in the indentation: YAML indents with spaces';
    else if (e.code === 'DUPLICATE_KEY') message = 'a key given twice in the same section';
    else if (e.code === 'BLOCK_AS_IMPLICIT_KEY')
      message = 'a second "key:" on one line: put each key on a line of its own, or quote the value';
    else if (e.code === 'MULTILINE_IMPLICIT_KEY' || /need to be followed by map values/.test(message))
      message = 'a key without its colon: write key: value';
    const line = lines.linePos(at).line;
    if (!found.has(line)) found.set(line, message);
  }
  return [...found].sort(([a], [b]) => a - b).map(([line, message]) => ({ line, key: '', message }));
}

export function parseConfig(
  text: string,
  path: string,
  specs: CommandSpecs,
  isTimeZone: IsTimeZone = (name) => name === 'UTC',
): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const lineOf = (node: Node | null | undefined) => (node?.range ? lines.linePos(node.range[0]).line : 1);
  if (doc.errors.length > 0) throw new ConfigError(path, syntaxProblems(text, doc.errors, lines));

  const root = doc.contents;
  if (!isMap(root))
    throw new ConfigError(path, [{ line: 1, key: '', message: 'expected a mapping with `jobs:`' }]);

  /** The entries of a mapping, with each key's line; a non-mapping is a problem. */
  const entries = (node: unknown, where: string): { key: string; line: number; value: unknown }[] => {
    if (node === undefined || node === null) return [];
    if (!isMap(node)) {
      problems.push({
        line: lineOf(node as Node),
        key: where,
        message: 'expected a mapping (key: value lines)',
      });
      return [];
    }
    return (node as YAMLMap).items.map((p) => ({
      key: isScalar(p.key) ? String(p.key.value) : '?',
      line: lineOf(p.key as Node),
      value: p.value,
    }));
  };
  /** A scalar or a list of scalars, as plain data; anything else is a problem. */
  const plain = (node: unknown, where: string, line: number): Value | undefined => {
    if (isAlias(node)) {
      problems.push({
        line,
        key: where,
        message: `a value that starts with * is a YAML alias: put it in quotes, "*${node.source}"`,
      });
      return undefined;
    }
    if (isScalar(node)) {
      const v = node.value;
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    } else if (
      isSeq(node) &&
      node.items.every((i) => isScalar(i) && ['string', 'number'].includes(typeof i.value))
    ) {
      return node.items.map((i) => (isScalar(i) ? (i.value as string | number) : ''));
    }
    problems.push({ line, key: where, message: 'expected a value, or a list of values' });
    return undefined;
  };

  const top = new Map(entries(root, '').map((e) => [e.key, e]));
  for (const e of top.values())
    if (!['defaults', 'notify', 'jobs'].includes(e.key))
      problems.push({
        line: e.line,
        key: e.key,
        message: 'unknown section (expected defaults, notify, jobs)',
      });

  const allKeys = new Set([...specs.values()].flatMap((opts) => opts.map((o) => o.key)));
  const defaults: { key: string; line: number; value: Value }[] = [];
  for (const e of entries(top.get('defaults')?.value, 'defaults')) {
    const value = plain(e.value, `defaults.${e.key}`, e.line);
    if (value === undefined) continue;
    if (!allKeys.has(e.key))
      problems.push({ line: e.line, key: `defaults.${e.key}`, message: 'no command has this option' });
    else defaults.push({ key: e.key, line: e.line, value });
  }
  for (const e of entries(top.get('notify')?.value, 'notify')) {
    const value = plain(e.value, `notify.${e.key}`, e.line);
    const key = NOTIFY_KEYS[e.key];
    if (value === undefined) continue;
    if (!key)
      problems.push({
        line: e.line,
        key: `notify.${e.key}`,
        message: 'unknown key (expected mail, webhook, on)',
      });
    else defaults.push({ key, line: e.line, value });
  }

  const jobsEntry = top.get('jobs');
  if (!jobsEntry)
    problems.push({ line: 1, key: 'jobs', message: 'missing: the file has no `jobs:` section' });
  const jobs: Job[] = [];
  for (const j of entries(jobsEntry?.value, 'jobs')) {
    const where = `jobs.${j.key}`;
    if (!JOB_NAME.test(j.key)) {
      problems.push({
        line: j.line,
        key: where,
        message: 'a job name is letters, digits, - and _ (it names a systemd unit)',
      });
      continue;
    }
    const fields = entries(j.value, where);
    const commandField = fields.find((f) => f.key === 'command');
    const command = commandField
      ? plain(commandField.value, `${where}.command`, commandField.line)
      : undefined;
    const options = typeof command === 'string' ? specs.get(command) : undefined;
    if (!options || !(JOB_COMMANDS as readonly string[]).includes(String(command))) {
      problems.push({
        line: commandField?.line ?? j.line,
        key: `${where}.command`,
        message: `expected one of ${JOB_COMMANDS.join(', ')}${command === undefined ? '' : `, not ${JSON.stringify(command)}`}`,
      });
      continue;
    }
    let schedule: string | null = null;
    let randomizedDelay: string | null = null;
    const given = new Map<string, { line: number; value: Value; where: string }>();
    for (const d of defaults)
      if (options.some((o) => o.key === d.key))
        given.set(d.key, { line: d.line, value: d.value, where: d.key });
    for (const f of fields) {
      if (f.key === 'command') continue;
      const value = plain(f.value, `${where}.${f.key}`, f.line);
      if (value === undefined) continue;
      if (f.key === 'schedule') {
        const problem =
          typeof value !== 'string' || /[\n\r]/.test(value)
            ? 'expected a systemd calendar event such as hourly or *-*-* 02:30'
            : scheduleProblem(value.trim(), isTimeZone);
        if (problem) problems.push({ line: f.line, key: `${where}.schedule`, message: problem });
        else schedule = String(value).trim();
        continue;
      }
      if (f.key === 'randomized-delay') {
        const text = typeof value === 'string' || typeof value === 'number' ? String(value).trim() : '';
        if (timeSpanSeconds(text) === null)
          problems.push({
            line: f.line,
            key: `${where}.randomized-delay`,
            message: `expected a systemd time span such as 5min, 90s or 1h 30min${typeof value === 'boolean' || Array.isArray(value) ? '' : `, not ${JSON.stringify(value)}`}`,
          });
        else randomizedDelay = text;
        continue;
      }
      if (!options.some((o) => o.key === f.key)) {
        problems.push({
          line: f.line,
          key: `${where}.${f.key}`,
          message: `zbm ${command} has no option --${f.key}`,
        });
        continue;
      }
      given.set(f.key, { line: f.line, value, where: `${where}.${f.key}` });
    }

    const argv: string[] = [command as string];
    for (const o of options) {
      const g = given.get(o.key);
      if (!g) {
        if (o.mandatory)
          problems.push({
            line: j.line,
            key: where,
            message: `missing ${o.key} (zbm ${command} needs --${o.key})`,
          });
        continue;
      }
      const values = Array.isArray(g.value) ? g.value : [g.value as string | number | boolean];
      if (!o.takesValue) {
        if (typeof g.value !== 'boolean')
          problems.push({ line: g.line, key: g.where, message: 'expected true or false' });
        else if (g.value) argv.push(`--${o.key}`);
        continue;
      }
      let previous: unknown;
      for (const v of values) {
        if (typeof v === 'boolean') {
          problems.push({ line: g.line, key: g.where, message: 'expected a value, not true/false' });
          break;
        }
        try {
          previous = o.parse ? o.parse(String(v), previous) : String(v);
          argv.push(`--${o.key}`, String(v));
        } catch (err) {
          problems.push({ line: g.line, key: g.where, message: errorMessage(err) });
          break;
        }
      }
    }
    const delayField = fields.find((f) => f.key === 'randomized-delay');
    if (randomizedDelay !== null && schedule === null && !fields.some((f) => f.key === 'schedule'))
      problems.push({
        line: delayField?.line ?? j.line,
        key: `${where}.randomized-delay`,
        message: 'a randomized delay spreads the timer of a schedule: add schedule:, or remove it',
      });
    jobs.push({ name: j.key, command: command as string, argv, schedule, randomizedDelay, line: j.line });
  }
  if (problems.length > 0)
    throw new ConfigError(
      path,
      problems.sort((a, b) => a.line - b.line),
    );
  return { path, jobs };
}
