/**
 * Whether stderr is what a `zbm serve` older than one of zbm's `sh -c` scripts (the counted send,
 * the hold moved in one command) answers it, as it answers any `sh -c` it does not know (the
 * command line it shows is cut at 300 characters): refused before anything ran, so the client may
 * do the same work the older way.
 */
export function refusedByOlderServe(stderr: string): boolean {
  return /zbm serve on \S+: refused "sh -c .*: only zfs commands and config writes are served, not sh$/m.test(
    stderr,
  );
}
