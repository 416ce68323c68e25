/**
 * Test helpers for the real-ZFS lab VM (lab/vm.sh). The tests run on the host; every command runs
 * inside the VM through one ssh master connection. Inside the VM, `ssh pve1|zbm-dest|zbm-replica`
 * reach the three "hosts", and zbm is installed as /usr/local/bin/zbm, so zbm runs there exactly as
 * an administrator would run it.
 */
import { spawn } from 'node:child_process';
import { shellJoin } from '../../src/host/quote.ts';

export type LabHost = 'pve1' | 'zbm-dest' | 'zbm-replica';

export interface Result {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

function env(name: string): string {
  const v = process.env[name];
  if (!v)
    throw new Error(
      `${name} is not set: run the integration tests through \`npm test\` (lab/vm.sh with ...)`,
    );
  return v;
}

export function labAvailable(): boolean {
  return Boolean(process.env.LAB_SSH_PORT && process.env.LAB_STATE);
}

function sshArgs(): string[] {
  const state = env('LAB_STATE');
  return [
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'Ciphers=aes128-gcm@openssh.com',
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${state}/ssh.sock`,
    '-o',
    'ControlPersist=300',
    '-i',
    env('LAB_SSH_KEY'),
    '-p',
    env('LAB_SSH_PORT'),
    'root@127.0.0.1',
  ];
}

/**
 * Runs a shell command line on a lab host (as root). pve1 and zbm-dest are the main VM itself;
 * zbm-replica is a second VM (so that it can have its own pool `main`, as in the original design),
 * reached through the main VM's ssh alias. Never throws on exit codes.
 */
export function vm(command: string, input?: string, host: LabHost = 'zbm-dest'): Promise<Result> {
  if (host === 'zbm-replica') return direct(shellJoin(['ssh', 'zbm-replica', command]), input);
  return direct(command, input);
}

function direct(command: string, input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', [...sshArgs(), '--', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.stdin.end(input ?? '');
    child.on('close', (code) =>
      resolve({
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        code: code ?? -1,
      }),
    );
  });
}

/** Like vm(), but a non-zero exit is an error carrying the output. */
export async function sh(command: string, host: LabHost = 'zbm-dest', input?: string): Promise<string> {
  const r = await vm(command, input, host);
  if (r.code !== 0) throw new Error(`lab command failed (${r.code}): ${command}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Runs argv on one of the lab's hosts, through ssh inside the VM as zbm would reach it. */
export function on(host: LabHost, argv: readonly string[], input?: string): Promise<Result> {
  return direct(shellJoin(['ssh', host, shellJoin(argv)]), input);
}

/** Runs zbm with args on a lab host, exactly as an admin would type it there. */
export function zbm(host: LabHost, args: readonly string[]): Promise<Result> {
  return on(host, ['zbm', ...args]);
}

/** Fresh pools and Proxmox fixtures on every lab host; `empty` leaves the pools without guests. */
export async function reset(opts: { empty?: boolean } = {}): Promise<void> {
  // The metadata directory of the original design's commands lives outside the pools.
  const wipe = 'rm -rf /root/backups_metadata && ';
  // udev can lag behind zvol creation when the machine is loaded; once more after a settle.
  const again = ' || { udevadm trigger --subsystem-match=block && udevadm settle --timeout=120 && ';
  const main = opts.empty ? 'lab-reset --empty' : 'lab-reset';
  await Promise.all([
    sh(`${wipe}${main}${again}${main}; }`),
    sh(`${wipe}lab-reset --empty${again}lab-reset --empty; }`, 'zbm-replica'),
  ]);
}

/** The whole `zfs list -t all` tree under root: names, sorted, as zfs_autobackup's tests assert it. */
export async function tree(root: string, host: LabHost = 'zbm-dest'): Promise<string[]> {
  const r = await vm(
    shellJoin(['zfs', 'list', '-H', '-t', 'all', '-r', '-o', 'name', '-s', 'name', root]),
    undefined,
    host,
  );
  if (r.code !== 0) return [];
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** Every hold under root as `snapshot\ttag`, sorted. */
export async function holds(root: string, host: LabHost = 'zbm-dest'): Promise<string[]> {
  const snaps = await vm(
    shellJoin(['zfs', 'list', '-H', '-t', 'snapshot', '-r', '-o', 'name', root]),
    undefined,
    host,
  );
  const names = snaps.stdout.trim().split('\n').filter(Boolean);
  if (names.length === 0) return [];
  const out = await sh(shellJoin(['zfs', 'holds', '-H', ...names]), host);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [snap, tag] = l.split('\t');
      return `${snap}\t${tag}`;
    })
    .sort();
}

export async function prop(name: string, property: string, host: LabHost = 'zbm-dest'): Promise<string> {
  return (await sh(shellJoin(['zfs', 'get', '-H', '-p', '-o', 'value', property, name]), host)).trim();
}

/** sha256 of a zvol's whole content. */
export async function zvolHash(dataset: string, host: LabHost = 'zbm-dest'): Promise<string> {
  return (await sh(`sha256sum < ${shellJoin([`/dev/zvol/${dataset}`])}`, host)).split(' ')[0] ?? '';
}

/** Writes size bytes of random data into a zvol at offset (MiB). */
export async function writeZvol(dataset: string, mib: number, offsetMib = 0): Promise<void> {
  await sh(
    `dd if=/dev/urandom of=${shellJoin([`/dev/zvol/${dataset}`])} bs=1M count=${mib} seek=${offsetMib} conv=notrunc,fsync status=none`,
  );
}

/** The qm fake's call log: `<epoch.ns> <vmid> <subcommand> <result>` lines. */
export async function qmLog(): Promise<string[]> {
  const r = await vm('cat /var/log/lab/qm.log 2>/dev/null');
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** Runs zbm on a lab host and sends it SIGTERM two seconds into the receive of target. */
export function killMidStream(
  args: readonly string[],
  target: string,
  host: LabHost = 'pve1',
): Promise<Result> {
  const script = `zbm "$@" & pid=$!
for i in $(seq 300); do pgrep -f "zfs receive -s -u $T" >/dev/null && break; sleep 0.1; done
sleep 2; kill -TERM $pid; wait $pid`;
  return on(host, ['env', `T=${target}`, 'sh', '-c', script, 'zbm-kill', ...args]);
}

/** Waits until no `zfs receive` runs on host: a receive cut off mid-stream saves its state last. */
export async function receivesDone(host: LabHost): Promise<void> {
  await sh(
    'for i in $(seq 300); do pgrep -f "[z]fs receive" >/dev/null || exit 0; sleep 0.1; done; exit 1',
    host,
  );
}

/**
 * Puts script in front of the lab's zfs wrapper on the main VM (it ends with
 * `exec /usr/local/sbin/zfs.lab "$@"`), for a test that injects a fault into some zfs calls.
 */
export async function wrapZfs(script: string): Promise<void> {
  await sh(
    'mv /usr/local/sbin/zfs /usr/local/sbin/zfs.lab && cat > /usr/local/sbin/zfs && chmod 755 /usr/local/sbin/zfs',
    'zbm-dest',
    script,
  );
}

/** Undoes wrapZfs. */
export async function unwrapZfs(): Promise<void> {
  await sh('mv /usr/local/sbin/zfs.lab /usr/local/sbin/zfs');
}
