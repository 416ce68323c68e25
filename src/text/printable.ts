/**
 * Text that came from another host (a lock holder, a remote's stderr, a manifest's guest name) is
 * shown with its control characters escaped: an escape sequence could otherwise move the cursor,
 * rewrite a line already printed or set the terminal's title, and a newline could forge a line of
 * zbm's own output. Pure.
 */

/**
 * C0 controls, DEL, C1 controls, and the Unicode characters that reorder or break what is shown
 * (line and paragraph separators, bidirectional overrides and isolates).
 */
function isControl(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

function escaped(text: string, keep: (code: number) => boolean): string {
  let out = '';
  for (const c of text) {
    const code = c.codePointAt(0) ?? 0;
    if (!isControl(code) || keep(code)) out += c;
    else out += `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/** One line: every control character escaped, newlines included. */
export function printable(text: string): string {
  return escaped(text, () => false);
}

/**
 * Several lines: newlines and tabs kept, every other control character escaped. The escape is
 * JSON's (`\\u001b`), so JSON text stays valid JSON with the same meaning.
 */
export function printableLines(text: string): string {
  return escaped(text, (code) => code === 0x0a || code === 0x09);
}
