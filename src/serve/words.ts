/**
 * Splits a command line that zbm's own shellJoin produced back into its words, and refuses
 * anything else: only bare safe characters, single-quoted text and the `'\''` escape, words
 * separated by one space. No expansion of any kind can be expressed, so nothing a client sends is
 * ever interpreted by a shell. Returns null for a line outside that grammar. Pure.
 */
export function splitShellWords(line: string): string[] | null {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    let word = '';
    let any = false;
    while (i < line.length && line[i] !== ' ') {
      const c = line[i] as string;
      if (c === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) return null;
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (c === '\\' && line[i + 1] === "'") {
        word += "'";
        i += 2;
      } else if (/[A-Za-z0-9_@%+=:,./-]/.test(c)) {
        word += c;
        i += 1;
      } else {
        return null;
      }
      any = true;
    }
    if (!any) return null;
    words.push(word);
    if (i < line.length) {
      i += 1;
      if (i >= line.length) return null;
    }
  }
  return words.length > 0 ? words : null;
}
