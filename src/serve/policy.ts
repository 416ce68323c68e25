import { legacyLockFileName, lockFileName, receiveLockName } from '../lock/lock.ts';
import { LOCK_ARGV0 } from '../lock/remote.ts';
import { listMetadataArgv, tarMetadataArgv } from '../metadata/copy.ts';
import { dumpManifestsArgv, readConfigArgv } from '../metadata/manifest.ts';
import { METADATA_DIR_PROPERTY, METADATA_FILE, METADATA_FILE_LIMIT } from '../metadata/store.ts';
import { WRITE_FILE_ARGV, WRITE_FILES_ARGV } from '../metadata/write.ts';
import { creationArgv, holdArgv, releaseArgv } from '../zfs/argv.ts';
import { countedSendArgv, isCountedSend } from '../zfs/counted-send.ts';
import { isMoveHold, MOVE_HOLD_ARGV0, moveHoldArgv, splitMoveHold } from '../zfs/move-hold.ts';
import { poolOf } from '../zfs/names.ts';
import { BATCH_SCRIPT } from '../zfs/program.ts';

/**
 * What `zbm serve` lets a Proxmox node do on the backup server: everything backup-pve needs inside
 * its root (list, receive, resume, abort a stale receive, create the root, record serve's own
 * metadata directory, hold and release its one tag, write new guest configs) and nothing else — no
 * destroy, no rollback, no `receive -F`, no property of the client's choosing, no name outside the
 * root, no shell. What a receive brings is checked by serve when the stream arrives (stream.ts).
 * A compromised node can add backups, never remove or damage them. Pure: argv in, decision out.
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
  /** The one hold tag this client may hold and release; absent: none. */
  readonly tag?: string;
}

export type Decision =
  | {
      readonly kind: 'exec';
      readonly argv: readonly string[];
      /** What the command reads on stdin, from serve's own code: the client's stdin is not read. */
      readonly input?: string;
      /** A `zfs send -t`: the snapshot its token names must be inside the root (checked by serve). */
      readonly resumeToken?: string;
    }
  | {
      /**
       * A `zfs receive` into target: serve reads the stream's first record, checks it
       * (stream.ts refuseIncoming) and only then hands the stream to zfs, with its forced `-x`.
       */
      readonly kind: 'receive';
      readonly target: string;
      /** The client's `-s`, `-u`, `-x <property>` and `-o origin=` flags, in its order. */
      readonly flags: readonly string[];
      /** A new chain's origin snapshot, inside the root (`-o origin=`): checked against the stream. */
      readonly origin?: string;
      /** The name the stream's snapshot gets (`zfs receive <target>@<as>`), instead of its own. */
      readonly as?: string;
      /** Under the target dataset's lock (lock.ts), as the client asked. */
      readonly lock?: { readonly dataset: string; readonly waitSeconds: number; readonly holder: string };
    }
  | {
      readonly kind: 'write';
      /**
       * New files to write from stdin, in order, all or none; bytes null: the whole of stdin (at
       * most METADATA_FILE_LIMIT). Each is of a snapshot that must already exist under the root.
       */
      readonly files: readonly {
        readonly path: string;
        readonly snapshot: string;
        readonly bytes: number | null;
      }[];
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
  if (isCountedSend(argv)) {
    // zbm's counted send: the send inside is judged alone, and serve runs it in its own script,
    // never the client's text.
    const inner = authorize(argv.slice(4), policy);
    if (inner.kind !== 'exec' || inner.argv[0] !== 'zfs' || inner.argv[1] !== 'send')
      return inner.kind === 'refuse' ? inner : refuse('zbm-send runs zfs send only');
    return { ...inner, argv: countedSendArgv(inner.argv) };
  }
  if (isMoveHold(argv)) {
    // zbm's hold moved in one command: the hold and the release are judged each alone, and serve
    // runs its own copy of the script.
    const move = splitMoveHold(argv);
    if (!move)
      return refuse(
        `${MOVE_HOLD_ARGV0} takes a tag, how many snapshots to hold, then the snapshots to hold and to release`,
      );
    for (const inner of [holdArgv(move.tag, move.hold), releaseArgv(move.tag, move.release)]) {
      const d = authorize(inner, policy);
      if (d.kind !== 'exec')
        return d.kind === 'refuse' ? d : refuse(`${MOVE_HOLD_ARGV0} runs zfs hold and release only`);
    }
    return { kind: 'exec', argv: moveHoldArgv(move.tag, move.hold, move.release) };
  }
  const metadataRead = readDecision(argv, policy);
  if (metadataRead) return metadataRead;
  // verify --pve on a node checks the health of the pool its backups are on, and the age of that
  // pool if it was never scrubbed (its root dataset's creation): read only, nothing else of it.
  const pool = poolOf(policy.root);
  if (argv[0] === 'zpool') {
    return argv.length === 3 && argv[1] === 'status' && argv[2] === pool
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only zpool status ${pool} is served`);
  }
  const creation = creationArgv(pool);
  if (argv.length === creation.length && creation.every((w, i) => argv[i] === w))
    return { kind: 'exec', argv: [...argv] };
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
      if (tag === undefined || snaps.length === 0) return refuse(`zfs ${sub} takes a tag and snapshots`);
      // Exactly the tag of this key: a node's base, or a pulling replica's; never a tag of another
      // client or of this server's own replication (whose name may share any prefix).
      if (policy.tag === undefined)
        return refuse(
          `zfs ${sub}: this key may hold no tag; if ${tag} is the tag of this client, add --tag ${tag} to its forced command (/usr/share/doc/zbm/docs/serve.md)`,
        );
      if (tag !== policy.tag) return refuse(`zfs ${sub}: only the tag ${policy.tag} is allowed`);
      if (snaps.some((s) => !s.includes('@'))) return refuse(`zfs ${sub} takes snapshots only`);
      return names(snaps, 'snapshot') ?? exec();
    }
    case 'send': {
      if (!sendOnly) return refuse('zfs send is not allowed (only with zbm serve --send-only)');
      if (rest[0] === '-t' || (rest[0] === '-n' && rest.includes('-t'))) {
        // zfs uses the last -t it is given: one token, the one serve checks.
        if (rest.filter((w) => w === '-t').length !== 1) return refuse('zfs send takes one -t');
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
      // A base in another dataset: the origin of the clone being sent (a disk's later chain), which
      // zfs itself checks. It must lie inside the root like the snapshot.
      if (base !== undefined && datasetOf(base) !== datasetOf(snap) && !inside(base))
        return refuse(`zfs send: ${base} is outside ${policy.root}`);
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
    case 'program': {
      // Only zbm's own batch of bookmarks (zfs/program.ts): a pulling replica bookmarks every
      // dataset it copied in one call instead of one ssh call each. The script is serve's copy,
      // never the client's text; the client chooses only the operands, each checked as a single
      // `zfs bookmark` would be.
      if (!sendOnly)
        return refuse("zfs program is not allowed (zbm's bookmark batch: only with zbm serve --send-only)");
      const [j, target, dash, ...words] = rest;
      if (j !== '-j' || target !== pool || dash !== '-' || words.length === 0 || words.length % 3 !== 0)
        return refuse(
          `zfs program: only zbm's bookmark batch (zfs program -j ${pool} - bookmark <snapshot> <bookmark>...)`,
        );
      for (let i = 0; i < words.length; i += 3) {
        const [op, snap = '', mark = ''] = words.slice(i, i + 3);
        if (op !== 'bookmark' || !snap.includes('@') || !mark.includes('#'))
          return refuse('zfs program: each operation is bookmark <snapshot> <bookmark>');
        if (datasetOf(snap) !== datasetOf(mark))
          return refuse('zfs program: a bookmark must be of the same dataset as its snapshot');
        const outside = names([snap], 'snapshot');
        if (outside) return outside;
      }
      return { kind: 'exec', argv: [...argv], input: BATCH_SCRIPT };
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
      // Commands on this server find the guest configs through this property: it may only ever
      // name the directory this key writes to, never one a client chose.
      const wanted = `${METADATA_DIR_PROPERTY}=${policy.metadataDir ?? ''}`;
      if (rest.length !== 2 || policy.metadataDir === null || rest[0] !== wanted)
        return refuse(
          policy.metadataDir === null
            ? 'zfs set: nothing may be set (zbm serve has no --metadata-dir)'
            : `zfs set: only ${METADATA_DIR_PROPERTY}=${policy.metadataDir}, the --metadata-dir of zbm serve`,
        );
      return names(rest.slice(1), 'dataset') ?? exec();
    }
    case 'receive': {
      const no = writes('zfs receive');
      if (no) return no;
      if (rest[0] === '-A')
        return rest.length === 2
          ? (names(rest.slice(1), 'dataset') ?? exec())
          : refuse('zfs receive -A takes one dataset');
      // -o origin=: a disk's later chain starts as a clone of a snapshot of its family (plan/chain.ts);
      // serve checks the stream against that snapshot when it arrives.
      const r = flags(['-s', '-u'], {
        '-x': (v) => PROPS.test(v),
        '-o': (v) => v.startsWith('origin=') && v.includes('@') && inside(v.slice('origin='.length)),
      });
      if ('kind' in r) return r;
      const origins = rest.filter((_, i) => rest[i - 1] === '-o').map((v) => v.slice('origin='.length));
      if (origins.length > 1) return refuse('zfs receive takes one -o origin=');
      if (r.operands.length !== 1) return refuse('zfs receive takes one target');
      // `<dataset>@<name>`: the one snapshot of the stream gets that name (a template's @__base__
      // kept under zbm's name); serve checks the name as it checks a stream's own.
      const [target = '', as, ...more] = (r.operands[0] as string).split('@');
      if (target.includes('#') || more.length > 0 || (as !== undefined && !/^[A-Za-z0-9_.:-]+$/.test(as)))
        return refuse('zfs receive into a dataset, or into one new snapshot of it');
      // The root itself holds no backup (backup-pve sends into <root>/<volume>): its properties,
      // zbm:metadata-dir among them, stay what was set on it.
      if (target === policy.root)
        return refuse(`zfs receive into ${policy.root} itself: only into datasets below it`);
      return (
        names([target], 'dataset') ?? {
          kind: 'receive',
          target,
          flags: rest.slice(0, rest.length - 1),
          ...(origins[0] === undefined ? {} : { origin: origins[0] }),
          ...(as === undefined ? {} : { as }),
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
  if (inner.kind === 'refuse') return inner;
  if (inner.kind !== 'receive') return refuse('only a zfs receive runs under a lock');
  const { target } = inner;
  // serve takes the lock under its own name whatever the client calls it; the name only has to be
  // the target's, in this version's encoding or in the one of a node not upgraded yet.
  const name = receiveLockName(target);
  if (file !== lockFileName(name) && file !== legacyLockFileName(name))
    return refuse(`the lock ${file} is not the lock of ${target}`);
  if (!/^\d{1,5}$/.test(wait)) return refuse(`lock wait ${wait}: not a number of seconds`);
  // The holder is shown by whoever finds the lock taken (prune on this server): zbm's own text only.
  if (!/^[A-Za-z0-9 ._:/@+()-]{1,1000}$/.test(holder))
    return refuse('the lock holder may only hold letters, digits, spaces and ._:/@+()-');
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
  // What a restore reads, with the readers it runs (restore/points.ts): only regular files in guest
  // folders, never through a symlink, each cut at METADATA_FILE_LIMIT.
  if (argv[0] === 'sh' && argv[3] === 'zbm-manifests') {
    if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
    const vmid = argv[5] ?? '';
    return /^([1-9]\d{2,8}|\[1-9\]\*)$/.test(vmid) &&
      same(argv, dumpManifestsArgv(dir, vmid === '[1-9]*' ? undefined : Number(vmid)))
      ? { kind: 'exec', argv: [...argv] }
      : refuse(`only the manifests under ${dir} are read`);
  }
  if (argv[0] === 'sh' && argv[3] === 'zbm-config') {
    if (policy.sendOnly !== true || dir === null) return refuse('reading configs is not allowed here');
    const [vmid = '', snapshot = ''] = argv.slice(5);
    return /^[1-9]\d{2,8}$/.test(vmid) &&
      /^[A-Za-z0-9_.:-]+$/.test(snapshot) &&
      same(argv, readConfigArgv(dir, Number(vmid), snapshot))
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

/** The largest batch: backup-pve's 200 files per command are about a megabyte. */
export const METADATA_BATCH_LIMIT = 16 * 1024 * 1024;

/** `<vmid>/<snapshot>.conf|json`: a VMID as PVE gives them (no leading zero), a snapshot name. */
const METADATA_PATH = /^([1-9]\d{2,8})\/([A-Za-z0-9_.:-]+)\.(?:conf|json)$/;

function writeDecision(files: readonly [string, number | null][], policy: ServePolicy): Decision {
  if (policy.metadataDir === null)
    return refuse('config writes are not allowed (zbm serve has no --metadata-dir)');
  const prefix = `${policy.metadataDir.replace(/\/+$/, '')}/`;
  const out: { path: string; snapshot: string; bytes: number | null }[] = [];
  for (const [path, bytes] of files) {
    const rel = path.startsWith(prefix) ? path.slice(prefix.length) : null;
    const m = rel === null ? null : METADATA_PATH.exec(rel);
    if (!m || rel?.includes('..') || rel?.includes('.tmp.'))
      return refuse(`${path} is not a guest config or manifest under ${policy.metadataDir}`);
    if (bytes !== null && bytes > METADATA_FILE_LIMIT)
      return refuse(
        `${path}: ${bytes} bytes, more than a config or manifest may have (${METADATA_FILE_LIMIT})`,
      );
    out.push({ path, snapshot: m[2] as string, bytes });
  }
  return { kind: 'write', files: out };
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
  if (Number(total) > METADATA_BATCH_LIMIT)
    return refuse(`${total} bytes of configs in one command, more than ${METADATA_BATCH_LIMIT}`);
  if (new Set(files.map(([p]) => p)).size !== files.length) return refuse('a file is named twice');
  return writeDecision(files, policy);
}
