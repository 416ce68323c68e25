// Writes the man page zbm(8) to stdout. The synopsis, the commands and their options, and the exit
// codes come from the program's own --help, so the page says exactly what the program says; the
// prose around them is here. Usage: node scripts/man.mjs dist/zbm.cjs > zbm.8
// (src/main.ts works too, through tsx: the unit tests check the page that way.)
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const entry = process.argv[2] ?? 'dist/zbm.cjs';
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const node = entry.endsWith('.ts') ? ['--import', 'tsx', entry] : [entry];
const help = (...args) =>
  execFileSync(process.execPath, [...node, ...args, '--help'], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '200' },
  });

/** roff: a backslash is \e, a dash \-, and a line may not start with . or ' (a request). */
const roff = (text) =>
  text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');

/** The blocks of a --help text: usage, description, options, and the exit codes it ends with. */
function parseHelp(text) {
  const usage = /^Usage: (.*)$/m.exec(text)?.[1] ?? '';
  const [body, exit = ''] = text.split(/\n(?=Exit codes)/);
  const options = [];
  const section = /\nOptions:\n([\s\S]*?)(?:\n\n|$)/.exec(`${body}\n\n`)?.[1] ?? '';
  for (const line of section.split('\n')) {
    const m = /^ {2}(\S.*?)(?: {2,}(.*))?$/.exec(line);
    if (m) options.push({ flags: m[1], text: m[2] ?? '' });
    else if (line.trim() && options.length > 0) options.at(-1).text += ` ${line.trim()}`;
  }
  const description = (/^Usage: .*\n\n([\s\S]*?)\n\n(?:Options|Arguments):/m.exec(body)?.[1] ?? '').trim();
  return { usage, description, options, exit: exit.trim() };
}

const top = help();
const commands = [...top.matchAll(/^ {2}([a-z][a-z-]+) /gm)]
  .map((m) => m[1])
  .filter((c) => c !== 'help')
  .map((c) => (c === 'config' ? 'config check' : c));
const date = new Date(Number(process.env.SOURCE_DATE_EPOCH ?? Date.now() / 1000) * 1000)
  .toISOString()
  .slice(0, 10);
const parsed = new Map(commands.map((c) => [c, parseHelp(help(...c.split(' ')))]));

const out = [
  `.TH ZBM 8 "${date}" "zbm ${pkg.version}" "System Administration"`,
  '.SH NAME',
  'zbm \\- ZFS Backups Manager for Proxmox VE',
  '.SH SYNOPSIS',
];
for (const c of commands) {
  const usage = parsed.get(c).usage.replace(/^zbm /, '');
  out.push('.br', `.B zbm ${roff(usage.slice(0, c.length))}`, roff(usage.slice(c.length).trim()));
}
out.push(
  '.SH DESCRIPTION',
  'zbm backs up the guests of a Proxmox VE cluster whose disks live on ZFS, to a backup server',
  'that runs OpenZFS, and from there to an offsite replica. It takes one atomic snapshot of each',
  "guest's disks (its file systems frozen through the guest agent), sends only the changed blocks",
  "(\\fBzfs send \\-i\\fR over ssh), and keeps each guest's Proxmox config beside its backups, so that",
  'a guest can be restored from either tier alone.',
  '.PP',
  'Nothing is received with \\fBzfs receive \\-F\\fR, a target that diverged is refused untouched,',
  'and nothing is destroyed without \\fB\\-y\\fR (or a yes on a terminal). Remote hosts are reached',
  'with the system \\fBssh\\fR(1), so \\fI~/.ssh/config\\fR, keys and \\fIknown_hosts\\fR apply.',
  "On the backup server, \\fBzbm serve\\fR as the forced command of a node's key makes it append-only.",
  '.PP',
  'The README and the documents in \\fI/usr/share/doc/zbm\\fR describe the set-up step by step.',
  '.SH COMMANDS',
);
for (const c of commands) {
  const h = parsed.get(c);
  out.push(`.SS ${roff(c)}`, roff(h.description));
  for (const o of h.options) {
    if (o.flags === '-h, --help') continue;
    out.push('.TP', `.B ${roff(o.flags)}`, roff(o.text));
  }
}
out.push(
  '.SH CONFIGURATION',
  'Jobs live in one YAML file: every key of a job is a flag of its command without the dashes, and',
  '\\fBschedule\\fR is a systemd calendar event (\\fBsystemd.time\\fR(7)).',
  '\\fBzbm config check\\fR validates it, \\fBzbm run\\fR \\fIjob\\fR runs one job, and',
  '\\fBzbm install\\-timers\\fR makes a service and a timer for each scheduled job.',
  '.PP',
  '.nf',
  roff(readFileSync(new URL('../packaging/zbm.yaml', import.meta.url), 'utf8').trimEnd()),
  '.fi',
  '.SH FILES',
  '.TP',
  '.I /etc/pve/zbm.yaml',
  'the config file on a Proxmox VE cluster (shared by every node through the cluster file system)',
  '.TP',
  '.I /etc/zbm/zbm.yaml',
  'the config file elsewhere (the backup server, the replica), and where /etc/pve/zbm.yaml does not exist',
  '.TP',
  '.I /usr/share/doc/zbm/examples/',
  'example config files for a node, a backup server and a replica',
  '.TP',
  '.I /etc/systemd/system/zbm\\-*.service, zbm\\-*.timer',
  'the units \\fBzbm install\\-timers\\fR writes, one pair per scheduled job',
  '.TP',
  '.I /run/lock/zbm',
  'lock files of running zbm commands',
  '.TP',
  '.I /var/lib/zbm/replaced',
  'configs of guests replaced by \\fBzbm restore \\-\\-force\\fR',
  '.TP',
  '.I /var/lib/zbm/drill',
  'what the restore drills of this host found, per backup root and guest (\\fBzbm drill\\fR, \\fBzbm verify \\-\\-max\\-drill\\-age\\-days\\fR)',
  '.TP',
  '.I /usr/share/doc/zbm/',
  'README.md, and in docs/: serve.md (append-only servers), restore.md, prune.md, metadata.md, faults.md',
  '.SH ENVIRONMENT',
  '.TP',
  '.B ZBM_CONFIG',
  'the config file, as \\fB\\-\\-config\\fR names it',
  '.TP',
  '.B TZ',
  "the time zone of prune's periods, read as the C library reads it; unset: \\fI/etc/localtime\\fR",
  '.TP',
  '.B JOURNAL_STREAM',
  'set by systemd: messages then carry syslog priorities, so \\fBjournalctl \\-p warning\\fR finds them',
  '.SH EXAMPLES',
  'On every Proxmox node, hourly:',
  '.PP',
  '.nf',
  roff(
    'zbm backup-pve --remote zbm-dest --prefix bak-zbm- --local-zfs-root rpool/data \\\n  --remote-zfs-root main/bak-zbm --remote-metadata-dir /root/backups_metadata -y',
  ),
  '.fi',
  '.PP',
  'On the replica, pulling from the backup server, then its own retention:',
  '.PP',
  '.nf',
  roff(
    'zbm replicate --pull --remote zbm-dest --remote-zfs-root main/bak-zbm --local-zfs-root main/bak-zbm\nzbm prune --local-zfs-root main/bak-zbm --keep-last 5 --keep-daily 30 --keep-monthly 12 -y',
  ),
  '.fi',
  '.PP',
  'As a Nagios/Icinga check on a tier, and on a node:',
  '.PP',
  '.nf',
  roff(
    'zbm verify --local-zfs-root main/bak-zbm --max-age-hours 2\nzbm verify --pve --remote zbm-dest --remote-zfs-root main/bak-zbm --local-zfs-root rpool/data',
  ),
  '.fi',
  '.PP',
  'A restore drill on a tier, of the 15 guests drilled longest ago, every block read back:',
  '.PP',
  '.nf',
  roff('zbm drill --local-zfs-root main/bak-zbm --sample 15 --full-read'),
  '.fi',
  '.PP',
  'A whole restore, as a new guest:',
  '.PP',
  '.nf',
  roff(
    'zbm list-backups --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100\nzbm restore --remote zbm-replica --remote-zfs-root main/bak-zbm --vmid 100 --as-vmid 9100 --new-macs -y',
  ),
  '.fi',
  '.SH "EXIT STATUS"',
  '.nf',
  roff(parseHelp(top).exit.replace(/^Exit codes:\n/, '')),
  '.fi',
  '.PP',
  '\\fBzbm verify\\fR follows the monitoring-plugin convention instead:',
  '.PP',
  '.nf',
  roff(parsed.get('verify').exit.replace(/^Exit codes[^\n]*\n/, '')),
  '.fi',
  '.PP',
  '\\fBzbm drill\\fR too:',
  '.PP',
  '.nf',
  roff(parsed.get('drill').exit.replace(/^Exit codes[^\n]*\n/, '')),
  '.fi',
  '.SH "SEE ALSO"',
  '.BR zfs (8),',
  '.BR zfs\\-send (8),',
  '.BR zfs\\-receive (8),',
  '.BR ssh (1),',
  '.BR sshd (8),',
  '.BR systemd.timer (5),',
  '.BR systemd.time (7),',
  '.BR vzdump (1)',
  '',
);
process.stdout.write(out.join('\n'));
