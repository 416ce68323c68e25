/**
 * POSIX shell quoting. ssh hands the remote side ONE string that the remote user's shell parses
 * again, so every argument of a remote argv must be quoted here: this is a security boundary.
 */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one argument so that `sh -c` sees exactly this string as one word. */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) {
    throw new Error(`argument contains a NUL byte and cannot be passed to a shell: ${JSON.stringify(arg)}`);
  }
  if (arg !== '' && SAFE.test(arg)) return arg;
  // Inside single quotes nothing is special except the single quote itself, which is closed,
  // escaped and reopened.
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Quotes an argv into one command line for a POSIX shell. */
export function shellJoin(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty command');
  return argv.map(shellQuote).join(' ');
}

/**
 * An argv as messages show it: zbm's own `sh -c <script> <name> args...` wrappers by their name and
 * arguments (`zbm-lock <file> 30 ... zfs receive ...`), not by the script's text.
 */
export function displayArgv(argv: readonly string[]): string {
  const wrapped = argv[0] === 'sh' && argv[1] === '-c' && argv.length > 3;
  return wrapped ? shellJoin(argv.slice(3)) : argv.join(' ');
}
