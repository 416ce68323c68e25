import assert from 'node:assert/strict';

/** Decodes RFC 2047 encoded words as a mail client shows the subject. */
export function decodeHeader(v: string): string {
  return v
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?UTF-8\?B\?([^?]*)\?=/gi, (_, b64: string) => Buffer.from(b64, 'base64').toString());
}

/** One header of a mail as its reader sees it: unfolded and decoded. */
export function mailHeader(mail: string, name: string): string {
  const head = mail.split('\n\n')[0] ?? '';
  const m = new RegExp(`^${name}: (.*(?:\\n[ \\t].*)*)`, 'm').exec(head);
  assert.ok(m, `no ${name} header in ${head}`);
  return decodeHeader((m[1] ?? '').replace(/\n[ \t]/g, ' '));
}

/** The mails a logging sendmail appended, each ended by a `--END--` line. */
export function splitMails(log: string): string[] {
  return log
    .split(/^--END--\n?/m)
    .map((m) => m.replace(/^ARGS: .*\n/, ''))
    .filter((m) => m.trim() !== '');
}
