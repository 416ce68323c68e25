import { WRITE_FILE_ARGV } from '../backup/metadata.ts';

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
}

/** The hold tag backup-pve uses on the backup server (`zbm-base:pve:<remote>`). */
export const NODE_HOLD_PREFIX = 'zbm-base:pve:';

/**
 * Properties a received stream may never set here: a mountpoint could shadow the server's own
 * directories at the next `zfs mount -a`, and shares would publish the data.
 */
export const FORCED_RECEIVE_EXCLUDES = ['mountpoint', 'canmount', 'sharenfs', 'sharesmb'] as const;

export type Decision =
  | { readonly kind: 'exec'; readonly argv: readonly string[] }
  | { readonly kind: 'write'; readonly path: string }
  | { readonly kind: 'refuse'; readonly reason: string };

const refuse = (reason: string): Decision => ({ kind: 'refuse', reason });
const PROPS = /^[a-z0-9_:.,-]+$/;
const TYPES = new Set(['filesystem', 'volume', 'snapshot', 'bookmark']);

function datasetOf(name: string): string {
  const cut = name.search(/[@#]/);
  return cut < 0 ? name : name.slice(0, cut);
}

export function authorize(argv: readonly string[], policy: ServePolicy): Decision {
  const inside = (name: string) => {
    const ds = datasetOf(name);
    return ds === policy.root || ds.startsWith(`${policy.root}/`);
  };
  const names = (list: readonly string[], what: string): Decision | null => {
    if (list.length === 0) return refuse(`no ${what} given`);
    const outside = list.find((n) => !inside(n));
    return outside === undefined ? null : refuse(`${outside} is outside ${policy.root}`);
  };

  if (argv.length === WRITE_FILE_ARGV.length + 1 && WRITE_FILE_ARGV.every((w, i) => argv[i] === w)) {
    return writeDecision(argv[WRITE_FILE_ARGV.length] ?? '', policy);
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
      if (tag === undefined || !tag.startsWith(NODE_HOLD_PREFIX) || !/^[A-Za-z0-9_:.@-]+$/.test(tag))
        return refuse(`zfs ${sub}: only the node's own base tag (${NODE_HOLD_PREFIX}...) is allowed`);
      if (snaps.some((s) => !s.includes('@'))) return refuse(`zfs ${sub} takes snapshots only`);
      return names(snaps, 'snapshot') ?? exec();
    }
    case 'create': {
      const r = flags(['-p'], {});
      if ('kind' in r) return r;
      if (r.operands.length !== 1) return refuse('zfs create takes one dataset');
      return names(r.operands, 'dataset') ?? exec();
    }
    case 'set': {
      const target = rest.at(-1);
      const assignments = rest.slice(0, -1);
      if (assignments.length === 0 || assignments.some((a) => !/^zbm:[a-z0-9_.:-]+=/.test(a)))
        return refuse("zfs set: only zbm's own properties (zbm:...) may be set");
      return names(target === undefined ? [] : [target], 'dataset') ?? exec();
    }
    case 'receive': {
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
    default:
      return refuse(`zfs ${sub ?? ''} is not allowed (no destroy, rollback, rename, send or other changes)`);
  }
}

function writeDecision(path: string, policy: ServePolicy): Decision {
  if (policy.metadataDir === null)
    return refuse('config writes are not allowed (zbm serve has no --metadata-dir)');
  const prefix = `${policy.metadataDir.replace(/\/+$/, '')}/`;
  const rel = path.startsWith(prefix) ? path.slice(prefix.length) : null;
  if (rel === null || !/^\d{3,9}\/[A-Za-z0-9_.:-]+\.(conf|json)$/.test(rel) || rel.includes('..'))
    return refuse(`${path} is not a guest config or manifest under ${policy.metadataDir}`);
  return { kind: 'write', path };
}
