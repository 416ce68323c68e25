/**
 * Test helpers for the real-ZFS lab VMs (lab/vm.sh). The tests run on the host; every command runs
 * inside a VM through one ssh master connection per VM: the main VM is the Proxmox node `pve1` and
 * the backup server `zbm-dest`, the replica VM is `zbm-replica`. zbm is installed in both as
 * /usr/local/bin/zbm and runs there exactly as an administrator would run it.
 *
 * Every call is bounded (ssh time-outs and a limit per call), so a wedged VM fails the test that
 * waits on it, naming the command, instead of hanging the run. With $ZBM_TEST_REPORT_DIR set (by
 * scripts/lab-tests.sh), each call's duration is appended to calls.jsonl there, from which
 * scripts/test-report.mjs breaks the run's time down.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describe, it as nodeIt } from 'node:test';
import { shellJoin } from '../../src/host/quote.ts';

export type LabHost = 'pve1' | 'zbm-dest' | 'zbm-replica';

export interface Result {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

interface Lab {
  readonly state: string;
  readonly key: string;
  readonly mainPort: string;
  readonly replicaPort: string;
}

/**
 * The lab this run was started with, or an error saying how to start one: an integration test
 * run without the lab must fail, never pass by skipping.
 */
function labFromEnv(): Lab {
  const { LAB_STATE: state, LAB_SSH_KEY: key, LAB_SSH_PORT: mainPort } = process.env;
  if (!state || !key || !mainPort)
    throw new Error(
      'the real-ZFS lab is not running: run the integration tests through `npm test`, or start a lab ' +
        'and run one file in it: bash lab/vm.sh with /tmp/zbm-lab-XXXX bash scripts/run-tests.sh <file>',
    );
  let replicaPort = '';
  try {
    replicaPort = /^LAB_SSH_PORT=(\d+)$/m.exec(readFileSync(`${state}/replica/env`, 'utf8'))?.[1] ?? '';
  } catch {}
  if (!replicaPort) throw new Error(`the lab in ${state} has no replica VM (${state}/replica/env)`);
  return { state, key, mainPort, replicaPort };
}

const lab = labFromEnv();

/** No single lab call may take longer than this (the slowest, a throttled transfer, takes ~2 min). */
const CALL_LIMIT_MS = 10 * 60_000;

function sshArgs(vm: 'main' | 'replica'): string[] {
  const [port, sock] = vm === 'main' ? [lab.mainPort, 'ssh.sock'] : [lab.replicaPort, 'replica/ssh.sock'];
  return [
    ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR'],
    ...['-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'Ciphers=aes128-gcm@openssh.com'],
    ...['-o', 'ConnectTimeout=20', '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4'],
    ...['-o', 'ControlMaster=auto', '-o', `ControlPath=${lab.state}/${sock}`, '-o', 'ControlPersist=600'],
    ...['-i', lab.key, '-p', port, 'root@127.0.0.1'],
  ];
}

const testFile = basename(process.argv[1] ?? '?');

function record(call: { target: string; ms: number; command: string }): void {
  const dir = process.env.ZBM_TEST_REPORT_DIR;
  if (dir)
    appendFileSync(
      `${dir}/calls.jsonl`,
      `${JSON.stringify({ lab: process.env.ZBM_LAB_ID ?? '1', file: testFile, ...call })}\n`,
    );
}

const minutes = (m: number) => m * 60_000;

/**
 * A file's tests, bounded as a whole: past `limit` minutes the file fails naming the test that was
 * running. node:test gives no test a default time limit of its own, hence `it` below.
 */
export function suite(name: string, limit: number, body: () => void): void {
  describe(name, { timeout: minutes(limit) }, body);
}

/** The lab calls under way, so that a test that runs out of time can say what it waited for. */
const inFlight = new Set<string>();

/**
 * A lab test, failing after `limit` minutes (default 8) instead of waiting for a wedged VM, with
 * the lab commands it was waiting for in its error.
 */
export function it(name: string, body: () => Promise<void>, limit = 8): void {
  nodeIt(name, { timeout: minutes(limit) + 30_000 }, async () => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const waiting = [...inFlight].map((c) => `\n  ${c}`).join('') || ' nothing';
        reject(new Error(`still running after ${limit} min; lab calls under way:${waiting}`));
      }, minutes(limit));
    });
    try {
      await Promise.race([body(), late]);
    } finally {
      clearTimeout(timer);
    }
  });
}

/**
 * Runs a shell command line on a lab host (as root). pve1 and zbm-dest are the main VM itself;
 * zbm-replica is a second VM (so that it can have its own pool `main`, as in the original design).
 * Never throws on exit codes; throws if the call outlives its limit.
 */
export function vm(command: string, input?: string, host: LabHost = 'zbm-dest'): Promise<Result> {
  return direct(host === 'zbm-replica' ? 'replica' : 'main', command, input);
}

function direct(target: 'main' | 'replica', command: string, input?: string): Promise<Result> {
  const started = Date.now();
  const label = `${target} VM: ${command.slice(0, 500)}`;
  inFlight.add(label);
  return new Promise<Result>((resolve, reject) => {
    const child = spawn('ssh', [...sshArgs(target), '--', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const limit = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`lab command on ${target} VM still running after ${CALL_LIMIT_MS / 1000} s: ${command}`),
      );
    }, CALL_LIMIT_MS);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    // ssh can close its stdin before node writes to it (the command ended without reading it, or
    // ssh failed at once): EPIPE says nothing the exit code and stderr below do not say better.
    // Unhandled, it failed a test (restore.test, 2026-11-30) with no word of the command.
    child.stdin.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') reject(e);
    });
    child.stdin.end(input ?? '');
    child.on('close', (code) => {
      clearTimeout(limit);
      inFlight.delete(label);
      record({ target, ms: Date.now() - started, command: command.slice(0, 300) });
      resolve({
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        code: code ?? -1,
      });
    });
  });
}

/** Like vm(), but a non-zero exit is an error carrying the output. */
export async function sh(command: string, host: LabHost = 'zbm-dest', input?: string): Promise<string> {
  const r = await vm(command, input, host);
  if (r.code !== 0) throw new Error(`lab command failed (${r.code}): ${command}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Runs argv as root on one of the lab's hosts, in a login environment as ssh gives it. */
export function on(host: LabHost, argv: readonly string[], input?: string): Promise<Result> {
  return vm(shellJoin(argv), input, host);
}

/** Runs zbm with args on a lab host, exactly as an admin would type it there. */
export function zbm(host: LabHost, args: readonly string[]): Promise<Result> {
  return on(host, ['zbm', ...args]);
}

/**
 * zbm as zbm() runs it, with what its main thread read (/proc/<pid>/task/<pid>/io, sampled every
 * 0.1 s until it exits): where node reads a child's output, so a stream relayed through node shows
 * there in full. Its children's reads are not in it.
 */
export async function zbmReads(host: LabHost, args: readonly string[]): Promise<Result & { reads: number }> {
  const script = `f=$(mktemp); "$@" & pid=$!
while kill -0 $pid 2>/dev/null; do cat /proc/$pid/task/$pid/io > "$f.now" 2>/dev/null && mv "$f.now" "$f"; sleep 0.1; done
wait $pid; rc=$?
echo "zbm-reads: $(sed -n 's/^rchar: //p' "$f")" >&2; rm -f "$f" "$f.now"; exit $rc`;
  const r = await on(host, ['sh', '-c', script, 'zbm-reads', 'zbm', ...args]);
  const m = /zbm-reads: (\d+)\n$/.exec(r.stderr);
  if (!m) throw new Error(`no reading of zbm's reads on ${host}: ${r.stderr}`);
  return { ...r, stderr: r.stderr.slice(0, m.index), reads: Number(m[1]) };
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
  if (r.code === 1 && /dataset does not exist/.test(r.stderr)) return [];
  if (r.code !== 0) throw new Error(`zfs list of ${root} on ${host} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** The snapshots (full names) of the tree under ds on host, in tree's order. */
export async function snapsOf(ds: string, host: LabHost = 'zbm-dest'): Promise<string[]> {
  return (await tree(ds, host)).filter((n) => n.includes('@'));
}

/** Whether a dataset (or snapshot, or bookmark) exists on host; any other failure is an error. */
export async function exists(name: string, host: LabHost = 'zbm-dest'): Promise<boolean> {
  return (await tree(name, host)).length > 0;
}

/** Every hold under root as `snapshot\ttag`, sorted. */
export async function holds(root: string, host: LabHost = 'zbm-dest'): Promise<string[]> {
  const snaps = await sh(shellJoin(['zfs', 'list', '-H', '-t', 'snapshot', '-r', '-o', 'name', root]), host);
  const names = snaps.trim().split('\n').filter(Boolean);
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
  // lab-reset leaves the log absent until qm first runs.
  return (await sh('cat /var/log/lab/qm.log 2>/dev/null || true')).trim().split('\n').filter(Boolean);
}

/**
 * A shell condition that holds once `bytes` of the stream into target have passed on the host it
 * is evaluated on: read by `zfs receive` into target there, or written by a `zfs send` of the
 * dataset of the same name there (replicate's source; a receive on another host is out of sight,
 * and an ssh multiplexed over a master hands its stream to the master). A cut made then lands
 * inside the transfer, whatever the machine's speed.
 */
export function streamed(target: string, bytes = 1024 * 1024): string {
  // Evaluated again and again in one shell loop, on a VM that may get little CPU: the pids are
  // looked up until found (pgrep reads every process's command line), and then kept while they
  // live; the counters are read with builtins. A poll then costs a few reads, and a cut lands close
  // to `bytes`. Only zfs itself matches: the shell or ssh around it names the target too.
  const most = (pids: string, pattern: string, counter: string) =>
    `{ [ -n "$${pids}" ] && kill -0 $${pids} 2>/dev/null; } || ${pids}=$(pgrep -f ${shellJoin([pattern])} | tr '\\n' ' '); ` +
    `for p in $${pids}; do while read -r k c; do [ "$k" = ${counter}: ] && [ "$c" -gt "$n" ] && n=$c; done 2>/dev/null </proc/$p/io; done;`;
  return `n=0; ${most('ZBM_RECV_PIDS', `^([^ ]*/)?zfs receive .*${target}$`, 'rchar')} ${most('ZBM_SEND_PIDS', `^([^ ]*/)?zfs send .*${target}@[^ ]*$`, 'wchar')} [ "$n" -ge ${bytes} ]`;
}

/**
 * Runs zbm on a lab host and sends it `signal` once `bytes` of the stream into target have been
 * received (see streamed); gives up waiting if zbm ends first.
 */
export function killMidStream(
  args: readonly string[],
  target: string,
  opts: { host?: LabHost; signal?: 'TERM' | 'INT' | 'HUP' | 'KILL'; bytes?: number } = {},
): Promise<Result> {
  const script = `zbm "$@" & pid=$!
for i in $(seq 1200); do eval "$C" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -$S $pid; wait $pid`;
  const env = [`C=${streamed(target, opts.bytes)}`, `S=${opts.signal ?? 'TERM'}`];
  return on(opts.host ?? 'pve1', ['env', ...env, 'sh', '-c', script, 'zbm-kill', ...args]);
}

/** Waits until no `zfs receive` runs on host: a receive cut off mid-stream saves its state last. */
export async function receivesDone(host: LabHost): Promise<void> {
  await sh(
    'for i in $(seq 300); do pgrep -f "[z]fs receive" >/dev/null || exit 0; sleep 0.1; done; exit 1',
    host,
  );
}

/**
 * Holds every `zfs <subcommand>` on host at its start until openGate: a transfer or a step then
 * waits at a known point for as long as a test needs (lab/guest/usr/local/sbin/zfs).
 */
export async function closeGate(subcommand: string, host: LabHost = 'zbm-dest'): Promise<void> {
  await sh(`rm -f /run/lab/gated-${subcommand} && touch /etc/lab/zfs-gate-${subcommand}`, host);
}

/** Waits until a `zfs <subcommand>` is held at the gate on host. */
export async function gateReached(subcommand: string, host: LabHost = 'zbm-dest'): Promise<void> {
  await sh(
    `for i in $(seq 1200); do [ -e /run/lab/gated-${subcommand} ] && exit 0; sleep 0.1; done; echo "no zfs ${subcommand} reached the gate" >&2; exit 1`,
    host,
  );
}

export async function openGate(subcommand: string, host: LabHost = 'zbm-dest'): Promise<void> {
  await sh(`rm -f /etc/lab/zfs-gate-${subcommand}`, host);
}

/** Ends every fault injected into the zfs wrapper on host (a test's `after`). */
export async function clearFaults(host: LabHost = 'zbm-dest'): Promise<void> {
  await sh('rm -f /etc/lab/zfs-slow /etc/lab/zfs-gate-* /etc/lab/zfs-fail-* /etc/lab/zfs-sleep-*', host);
}
