import { WRITE_FILE_ARGV, WRITE_FILES_ARGV } from '../backup/metadata.ts';
import { lockFileName, receiveLockName } from '../lock/lock.ts';
import { LOCK_ARGV0 } from '../lock/remote.ts';
import { listMetadataArgv, METADATA_FILE, tarMetadataArgv } from '../replicate/metadata.ts';
import { configReadArgv, manifestDumpArgv } from '../restore/points.ts';

/**
 * What `zbm serve` lets a Proxmox node do on the backup server: everything backup-pve needs inside
 * its root (list, receive, resume, abort a stale receive, create the root, set zbm's properties,
 * hold and release the node's own base, write new guest configs) and nothing else — no destroy, no
 * rollback, no `receive -F`, no property that could mount a dataset over the server's files, no
 * name outside the root, no shell. A compromised node can add backups, never remove or damage them.
 * Pure: argv in, decision out.
 */
export interface ServePolicy {
  /** The node's subtree, e.g. main/bak-zbm/pve1. */
  readonly root: string;
  /** Where its guest configs go; null: no config writes. */
  readonly metadataDir: string | null;
  /**
   * `--send-only`: the client is a replica pulling from this server (`zbm replicate --pull`). It may
   * list, send, read the guest configs, bookmark and hold its own base; it may not receive, create,
   * set or write anything.
   */
  readonly sendOnly?: boolean;
}

/** The hold tag backup-pve uses on the backup server (`zbm-base:pve:<remote>`). */
export const HOLD_PREFIX = 'zbm-base:';
export const NODE_HOLD_PREFIX = `${HOLD_PREFIX}pve:`;

/**
 * Properties a received stream may never set here: a mountpoint could shadow the server's own
 * directories at the next `zfs mount -a`, and shares would publish the data.
 */
export const FORCED_RECEIVE_EXCLUDES = ['mountpoint', 'canmount', 'sharenfs', 'sharesmb'] as const;

export type Decision =
  | {
      readonly kind: 'exec';
      readonly argv: readonly string[];
      /** A receive that runs under the target dataset's lock (lock.ts), as the client asked. */
      readonly lock?: { readonly dataset: string; readonly waitSeconds: number; readonly holder: string };
      /** A `zfs send -t`: the snapshot its token names must be inside the root (checked by serve). */
      readonly resumeToken?: string;
    }
  | {
      readonly kind: 'write';
      /** New files to write from stdin, in order; bytes null: the whole of stdin. */
      readonly files: readonly { readonly path: string; readonly bytes: number | null }[];
    }
  | { readonly kind: 'refuse'; readonly reason: string };

const refuse = (reason: string): Decision => ({ kind: 'refuse', reason });
const PROPS = /^[a-z0-9_:.,-]+$/;
const TYPES = new Set(['filesystem', 'volume', 'snapshot', 'bookmark']);

function datasetOf(name: string): string {
  const cut = name.search(/[@#]/);
  return cut < 0 ? name : name.slice(0, cut);
}

/** Whether a dataset, snapshot or bookmark name lies in root's subtree. */
export function insideRoot(name: string, root: string): boolean {
  const ds = datasetOf(name);
  return ds === root || ds.startsWith(`${root}/`);
}

export function authorize(argv: readonly string[], policy: ServePolicy): Decision {
  const inside = (name: string) => insideRoot(name, policy.root);
  const names = (list: readonly string[], what: string): Decision | null => {
    if (list.length === 0) return refuse(`no ${what} given`);
    const outside = list.find((n) => !inside(n));
    return outside === undefined ? null : refuse(`${outside} is outside ${policy.root}`);
  };

  const sendOnly = policy.sendOnly === true;
  const writes = (what: string): Decision | null =>
    sendOnly
      ? refuse(`${what}: zbm serve --send-only serves a pulling replica, which writes nothing here`)
      : null;
  if (argv.length === WRITE_FILE_ARGV.length + 1 && WRITE_FILE_ARGV.every((w, i) => argv[i] === w)) {
    return writes('config writes') ?? writeDecision([[argv[WRITE_FILE_ARGV.length] ?? '', null]], policy);
  }
  if (argv.length > WRITE_FILES_ARGV.length + 1 && WRITE_FILES_ARGV.every((w, i) => argv[i] === w)) {
    return writes('config writes') ?? writeManyDecision(argv.slice(WRITE_FILES_ARGV.length), policy);
  }
  if (argv[0] === 'sh' && argv[1] === '-c' && argv[3] === LOCK_ARGV0)
    return writes('zfs receive') ?? lockedReceive(argv, policy);
  const metadataRead = readDecision(argv, policy);
  if (metadataRead) return metadataRead;
  // verify --pve on a node checks the health of the pool its backups are on: read only.
  if (argv[0] === 'zpool') {
    const pool = policy.root.split('/')[0];
    return argv.length === 3 && argv[1] === 'status' && argv[2] === pool
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only zpool status ${pool} is served`);
  }
  if (argv[0] !== 'zfs')
    return refuse(`only zfs commands and config writes are served, not ${argv[0] ?? 'nothing'}`);
  const sub = argv[1];
  const rest = argv.slice(2);

  /** Leading flags from the allowed set; flags with a value are checked by `valued`. */
  const flags = (
    simple: readonly string[],
    valued: Readonly<Record<string, (v: string) => boolean>>,
  ): { operands: string[] } | Decision => {
    let i = 0;
    while (i < rest.length && (rest[i] ?? '').startsWith('-')) {
      const f = rest[i] as string;
      if (simple.includes(f)) {
        i += 1;
      } else if (valued[f]) {
        const value = rest[i + 1];
        if (value === undefined || !valued[f](value))
          return refuse(`zfs ${sub} ${f} ${value ?? ''}: value not allowed`);
        i += 2;
      } else {
        return refuse(`zfs ${sub} ${f} is not allowed`);
      }
    }
    return { operands: rest.slice(i) };
  };
  const exec = (): Decision => ({ kind: 'exec', argv: [...argv] });

  switch (sub) {
    case 'list': {
      const r = flags(['-H', '-p', '-r'], {
        '-d': (v) => /^\d+$/.test(v),
        '-t': (v) => v.split(',').every((t) => TYPES.has(t)),
        '-o': (v) => PROPS.test(v),
        '-s': (v) => PROPS.test(v),
      });
      if ('kind' in r) return r;
      return names(r.operands, 'dataset') ?? exec();
    }
    case 'get': {
      const r = flags(['-H', '-p', '-r'], {
        '-o': (v) => PROPS.test(v),
        '-t': (v) => v.split(',').every((t) => TYPES.has(t)),
      });
      if ('kind' in r) return r;
      const [props, ...list] = r.operands;
      if (props === undefined || !PROPS.test(props)) return refuse('zfs get needs a property list');
      return names(list, 'dataset') ?? exec();
    }
    case 'holds': {
      const r = flags(['-H', '-p', '-r'], {});
      if ('kind' in r) return r;
      return names(r.operands, 'snapshot') ?? exec();
    }
    case 'hold':
    case 'release': {
      const [tag, ...snaps] = rest;
      // A replica holds its own base (`zbm-base:<this server>:<replica>`), never the nodes' one.
      const node = tag?.startsWith(NODE_HOLD_PREFIX) === true;
      const allowed = sendOnly ? tag?.startsWith(HOLD_PREFIX) === true && !node : node;
      if (tag === undefined || !allowed || !/^[A-Za-z0-9_:.@-]+$/.test(tag))
        return refuse(
          sendOnly
            ? `zfs ${sub}: only a replica's base tag (${HOLD_PREFIX}<server>:<replica>) is allowed`
            : `zfs ${sub}: only the node's own base tag (${NODE_HOLD_PREFIX}...) is allowed`,
        );
      if (snaps.some((s) => !s.includes('@'))) return refuse(`zfs ${sub} takes snapshots only`);
      return names(snaps, 'snapshot') ?? exec();
    }
    case 'send': {
      if (!sendOnly) return refuse('zfs send is not allowed (only with zbm serve --send-only)');
      if (rest[0] === '-t' || (rest[0] === '-n' && rest.includes('-t'))) {
        const r = flags(['-n', '-v', '-P'], {
          '-t': (v) => /^[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$/.test(v),
        });
        if ('kind' in r) return r;
        if (r.operands.length > 0) return refuse('zfs send -t takes the token only');
        // The token names the snapshot it resumes: zbm serve checks it is inside the root.
        return { kind: 'exec', argv: [...argv], resumeToken: rest[rest.indexOf('-t') + 1] ?? '' };
      }
      const from = (v: string) => v.includes('@') || v.includes('#');
      const r = flags(['-L', '-e', '-c', '-w', '-p', '-n', '-v', '-P'], { '-i': from, '-I': from });
      if ('kind' in r) return r;
      const [snap] = r.operands;
      if (r.operands.length !== 1 || snap === undefined || !snap.includes('@'))
        return refuse('zfs send takes one snapshot');
      const base = rest.find((_, i) => rest[i - 1] === '-i' || rest[i - 1] === '-I');
      if (base !== undefined && datasetOf(base) !== datasetOf(snap))
        return refuse(`zfs send: ${base} is not of ${datasetOf(snap)}`);
      return names(r.operands, 'snapshot') ?? exec();
    }
    case 'bookmark': {
      if (!sendOnly) return refuse('zfs bookmark is not allowed (only with zbm serve --send-only)');
      const [snap, mark] = rest;
      if (
        rest.length !== 2 ||
        snap === undefined ||
        mark === undefined ||
        !snap.includes('@') ||
        !mark.includes('#')
      )
        return refuse('zfs bookmark takes one snapshot and one bookmark');
      if (datasetOf(snap) !== datasetOf(mark))
        return refuse('zfs bookmark: the bookmark must be of the same dataset');
      return names([snap], 'snapshot') ?? exec();
    }
    case 'create': {
      const no = writes('zfs create');
      if (no) return no;
      const r = flags(['-p'], {});
      if ('kind' in r) return r;
      if (r.operands.length !== 1) return refuse('zfs create takes one dataset');
      return names(r.operands, 'dataset') ?? exec();
    }
    case 'set': {
      const no = writes('zfs set');
      if (no) return no;
      const target = rest.at(-1);
      const assignments = rest.slice(0, -1);
      if (assignments.length === 0 || assignments.some((a) => !/^zbm:[a-z0-9_.:-]+=/.test(a)))
        return refuse("zfs set: only zbm's own properties (zbm:...) may be set");
      return names(target === undefined ? [] : [target], 'dataset') ?? exec();
    }
    case 'receive': {
      const no = writes('zfs receive');
      if (no) return no;
      if (rest[0] === '-A')
        return rest.length === 2
          ? (names(rest.slice(1), 'dataset') ?? exec())
          : refuse('zfs receive -A takes one dataset');
      const r = flags(['-s', '-u'], { '-x': (v) => PROPS.test(v) });
      if ('kind' in r) return r;
      if (r.operands.length !== 1) return refuse('zfs receive takes one target');
      const target = r.operands[0] as string;
      if (target.includes('@') || target.includes('#')) return refuse('zfs receive into a dataset only');
      return (
        names(r.operands, 'dataset') ?? {
          kind: 'exec',
          argv: [...argv.slice(0, -1), ...FORCED_RECEIVE_EXCLUDES.flatMap((p) => ['-x', p]), target],
        }
      );
    }
    case 'destroy': {
      // Only a replica's own superseded bookmark: a bookmark holds no data, and no node's chain
      // starts from a bookmark on this server.
      const mark = rest.length === 1 ? rest[0] : undefined;
      if (sendOnly && mark?.includes('#') && !mark.includes('@')) return names([mark], 'bookmark') ?? exec();
      return refuse('zfs destroy is not allowed (no destroy, rollback, rename, send or other changes)');
    }
    default:
      return refuse(`zfs ${sub ?? ''} is not allowed (no destroy, rollback, rename, send or other changes)`);
  }
}

/**
 * A receive wrapped in zbm's lock script (lock/remote.ts): the script itself never runs here;
 * serve takes the same lock with lock.ts and runs the receive, if the receive alone is allowed.
 */
function lockedReceive(argv: readonly string[], policy: ServePolicy): Decision {
  const [file = '', wait = '', holder = ''] = argv.slice(4, 7);
  const inner = authorize(argv.slice(7), policy);
  if (inner.kind !== 'exec') return inner;
  const target = inner.argv.at(-1) ?? '';
  if (inner.argv[1] !== 'receive' || inner.argv[2] === '-A')
    return refuse('only a zfs receive runs under a lock');
  if (file !== lockFileName(receiveLockName(target)))
    return refuse(`the lock ${file} is not the lock of ${target}`);
  if (!/^\d{1,5}$/.test(wait)) return refuse(`lock wait ${wait}: not a number of seconds`);
  return { ...inner, lock: { dataset: target, waitSeconds: Number(wait), holder } };
}

/**
 * The guest configs a pulling replica copies (the listing and the tar of named files) and what a
 * restore reads (the manifests, one config): read only.
 */
function readDecision(argv: readonly string[], policy: ServePolicy): Decision | null {
  const dir = policy.metadataDir;
  const same = (a: readonly string[], b: readonly string[]) =>
    a.length === b.length && a.every((w, i) => w === b[i]);
  if (argv[0] === 'sh' && argv[3] === 'zbm-list') {
    if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
    return same(argv, listMetadataArgv(dir))
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only ${dir} is listed`);
  }
  if (argv[0] === 'sh' && argv[3] === 'zbm-manifests') {
    if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
    const vmid = argv[5] ?? '';
    return /^(\d{3,9}|\[0-9\]\*)$/.test(vmid) &&
      same(argv, manifestDumpArgv(dir, vmid === '[0-9]*' ? undefined : Number(vmid)))
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only the manifests under ${dir} are read`);
  }
  if (argv[0] === 'cat') {
    if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
    const m = /^(\d{3,9})\/([A-Za-z0-9_.:-]+)\.conf$/.exec(argv[2]?.slice(dir.length + 1) ?? '');
    return m && argv[2]?.startsWith(`${dir}/`) && same(argv, configReadArgv(dir, Number(m[1]), m[2] ?? ''))
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only a guest config under ${dir} is read`);
  }
  if (argv[0] !== 'tar') return null;
  if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
  const files = argv.slice(6);
  if (!same(argv, tarMetadataArgv(dir, files)) || files.length === 0)
    return refuse(`only guest configs and manifests under ${dir} are read`);
  const bad = files.find((f) => !METADATA_FILE.test(f) || f.includes('..') || !/^[A-Za-z0-9_.:/-]+$/.test(f));
  return bad === undefined
    ? { kind: 'exec', argv: [...argv] }
    : refuse(`${bad} is not a guest config or manifest`);
}

function writeDecision(files: readonly [string, number | null][], policy: ServePolicy): Decision {
  if (policy.metadataDir === null)
    return refuse('config writes are not allowed (zbm serve has no --metadata-dir)');
  const prefix = `${policy.metadataDir.replace(/\/+$/, '')}/`;
  for (const [path] of files) {
    const rel = path.startsWith(prefix) ? path.slice(prefix.length) : null;
    if (rel === null || !/^\d{3,9}\/[A-Za-z0-9_.:-]+\.(conf|json)$/.test(rel) || rel.includes('..'))
      return refuse(`${path} is not a guest config or manifest under ${policy.metadataDir}`);
  }
  return { kind: 'write', files: files.map(([path, bytes]) => ({ path, bytes })) };
}

/** backup-pve's batch of configs: `<total bytes> <bytes>:<path>...`, the contents in order on stdin. */
function writeManyDecision(args: readonly string[], policy: ServePolicy): Decision {
  const [total = '', ...specs] = args;
  const files: [string, number][] = [];
  for (const spec of specs) {
    const m = /^(\d{1,9}):(.+)$/.exec(spec);
    if (!m) return refuse(`${spec}: not <bytes>:<path>`);
    files.push([m[2] as string, Number(m[1])]);
  }
  if (!/^\d{1,10}$/.test(total) || files.reduce((n, [, b]) => n + b, 0) !== Number(total))
    return refuse(`the sizes of the files do not add up to ${total}`);
  if (new Set(files.map(([p]) => p)).size !== files.length) return refuse('a file is named twice');
  return writeDecision(files, policy);
}
