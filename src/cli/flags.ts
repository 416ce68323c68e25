/**
 * A command's flags as a typed table: each entry is the commander Option that parses the flag and,
 * as a type, the value the command receives under that key. The table is the one declaration of a
 * command's options: the parser, --help, the config file (which checks its keys against the same
 * Options) and the command's Options type (OptionsOf) all come from it.
 */
import { Option } from 'commander';

export interface Flag<T> {
  readonly option: Option;
  /** Never set: it only carries the type of the value to OptionsOf. */
  readonly value?: T;
}

export type Flags = Readonly<Record<string, Flag<unknown>>>;

type ValueOf<F> = F extends Flag<infer T> ? T : never;

/** The options a command receives: a flag that may be absent is an optional key. */
export type OptionsOf<F extends Flags> = {
  readonly [K in keyof F as undefined extends ValueOf<F[K]> ? K : never]?: Exclude<ValueOf<F[K]>, undefined>;
} & {
  readonly [K in keyof F as undefined extends ValueOf<F[K]> ? never : K]: ValueOf<F[K]>;
};

type Parse<T> = (value: string, previous: T) => T;

/**
 * Options a command cannot run without. Not commander's requiredOption: that one reports a missing
 * option before an unknown one (a typo, `--remot`, came out as "--remote missing") and one per run;
 * these are checked after the unknown ones, all at once, and marked in --help.
 */
const REQUIRED = new WeakSet<Option>();

export function isRequired(o: Option): boolean {
  return REQUIRED.has(o);
}

export function required<T>(flags: string, description: string, parse: Parse<T>): Flag<T> {
  const o = new Option(flags, `${description} (required)`).argParser(parse);
  REQUIRED.add(o);
  return { option: o };
}

/** A flag with a value: without the flag, the default (shown in --help), else absent. */
export function valued<T>(flags: string, description: string, parse: Parse<T>, defaultValue: T): Flag<T>;
export function valued<T>(flags: string, description: string, parse: Parse<T>): Flag<T | undefined>;
export function valued<T>(flags: string, description: string, parse: Parse<T>, defaultValue?: T): Flag<T> {
  // As commander's .option(flags, description, parse, default) makes it.
  return { option: new Option(flags, description).default(defaultValue).argParser(parse) };
}

/** A flag without a value: true when given. */
export function onOff(flags: string, description: string): Flag<boolean | undefined> {
  return { option: new Option(flags, description).default(undefined) };
}

/** A flag with a value taken as it is: absent without the flag. */
export function verbatim(flags: string, description: string): Flag<string | undefined> {
  return { option: new Option(flags, description).default(undefined) };
}

/** `--no-<name>`: the key `<name>` is true unless the flag is given. */
export function negation(flags: string, description: string): Flag<boolean> {
  return { option: new Option(flags, description).default(undefined) };
}

/** An earlier spelling of an option, still accepted (commands written with it keep working), not shown. */
export function oldSpelling<T>(flags: string, parse: Parse<T>): Flag<T | undefined> {
  return { option: new Option(flags).argParser(parse).hideHelp() };
}

/** An Option built elsewhere, with the type of its value. */
export function flagOf<T>(option: Option): Flag<T> {
  return { option };
}
