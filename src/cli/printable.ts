import { printableLines } from '../text/printable.ts';

/** What a command prints on stdout (tables, plans, JSON), with no control character of another host's. */
export function writeOut(text: string): void {
  process.stdout.write(printableLines(text));
}
