/** Strings an attacker could put into a guest name, a storage id or a path. */
export function hostileStrings(marker: string): string[] {
  return [
    'plain',
    '',
    ' ',
    'with space',
    "it's",
    '"double"',
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `; touch ${marker}`,
    `&& touch ${marker}`,
    `| touch ${marker}`,
    `line\ntouch ${marker}`,
    '-rf',
    '--help',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
    '$HOME ${PATH} $1 $@',
    '*',
    '~root',
    "'; touch /tmp/x; echo '",
    '\\',
    'back\\slash\\',
    'tab\there',
    'ünïcödé ✓ 🚀',
    '!',
    '#comment',
    '{a,b}',
    '>out',
    '<in',
    '\r\n',
  ];
}
