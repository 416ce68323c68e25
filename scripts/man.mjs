// Writes the man page zbm(8) to stdout, made from `zbm --help` and every command's --help, so the
// page says exactly what the program says. Usage: node scripts/man.mjs dist/zbm.mjs > zbm.8
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const bundle = process.argv[2] ?? 'dist/zbm.mjs';
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const help = (...args) => execFileSync(process.execPath, [bundle, ...args, '--help'], { encoding: 'utf8' });

/** roff: a backslash is \e, and a line may not start with . or ' (a request). */
const roff = (text) =>
  text
    .replace(/\\/g, '\\e')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');

const top = help();
const commands = [...top.matchAll(/^ {2}([a-z][a-z-]+) /gm)].map((m) => m[1]).filter((c) => c !== 'help');
const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? Date.now() / 1000) * 1000)
  .toISOString()
  .slice(0, 10);

const out = [
  `.TH ZBM 8 "${date}" "zbm ${pkg.version}" "System Administration"`,
  '.SH NAME',
  'zbm \\- ZFS Backups Manager for Proxmox VE',
  '.SH SYNOPSIS',
  '.B zbm',
  '.I command',
  '[\\fIoptions\\fR]',
  '.SH DESCRIPTION',
  roff(pkg.description),
  '.PP',
  'Every command and option is described below, as printed by',
  '.BR "zbm \\fIcommand\\fB --help" .',
  '.SH OVERVIEW',
  '.nf',
  roff(top.trimEnd()),
  '.fi',
  '.SH COMMANDS',
];
for (const c of commands) {
  const text = c === 'config' ? help('config', 'check') : help(c);
  out.push(`.SS ${c === 'config' ? 'config check' : c}`, '.nf', roff(text.trimEnd()), '.fi');
}
out.push(
  '.SH FILES',
  '.TP',
  '.I /etc/pve/zbm.yaml, /etc/zbm/zbm.yaml',
  'the config file of zbm run, zbm config check and zbm install-timers',
  '.TP',
  '.I /run/lock/zbm',
  'lock files of running zbm commands',
  '.SH SEE ALSO',
  '.BR zfs (8),',
  '.BR zfs-send (8),',
  '.BR zfs-receive (8),',
  '.BR systemd.timer (5)',
  '',
);
process.stdout.write(out.join('\n'));
