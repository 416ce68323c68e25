/**
 * A resume token (`zfs send -t`) names the snapshot to send by its name and its guid, and zfs
 * sends the snapshot with that guid that it finds first, searching from the named dataset through
 * ever larger parts of the pool (libzfs guid_to_name). The client writes the token, so neither
 * field can be taken on trust: serve sends only when the named snapshot is under its root and has
 * the token's guid itself, which makes it the one zfs finds first. Pure.
 */
import { nameProblem } from '../zfs/names.ts';
import { insideRoot } from './policy.ts';

export interface TokenContents {
  readonly toname: string;
  /** Decimal. */
  readonly toguid: string;
}

/**
 * The fields of `zfs send -n -v -t <token>`'s "resume token contents" (nvlist_print: one tab, key,
 * ` = `, value). The token's strings are printed raw, so a name could carry a line of its own: a
 * field present twice, or a toname that is not a valid snapshot name, is refused.
 */
export function parseTokenContents(text: string): TokenContents | { readonly error: string } {
  const start = text.indexOf('resume token contents:\n');
  if (start < 0) return { error: 'zfs printed no resume token contents' };
  const fields = new Map<string, string[]>();
  for (const line of text.slice(start).split('\n').slice(1)) {
    const m = /^\t([a-z_]+) = (.*)$/.exec(line);
    if (!m) continue;
    const [, key = '', value = ''] = m;
    fields.set(key, [...(fields.get(key) ?? []), value]);
  }
  const one = (key: string): string | null => {
    const values = fields.get(key) ?? [];
    return values.length === 1 ? (values[0] as string) : null;
  };
  const toname = one('toname');
  const toguid = one('toguid');
  if (toname === null || toguid === null)
    return { error: 'the token does not name exactly one snapshot and guid' };
  if (nameProblem(toname, 'snapshot'))
    return { error: `the token names ${JSON.stringify(toname)}, not a snapshot` };
  if (!/^0x[0-9a-f]{1,16}$/.test(toguid))
    return { error: `the token's guid ${JSON.stringify(toguid)} is not a guid` };
  return { toname, toguid: BigInt(toguid).toString() };
}

/** Why a token may not be sent from this root, given the guid its named snapshot has here (null: no such snapshot). */
export function refuseToken(token: TokenContents, root: string, guidHere: string | null): string | null {
  if (!insideRoot(token.toname, root))
    return `its token resumes ${token.toname}, not a snapshot under ${root}`;
  if (guidHere === null) return `its token resumes ${token.toname}, which does not exist`;
  if (guidHere !== token.toguid)
    return `its token resumes guid ${token.toguid}, but ${token.toname} has guid ${guidHere}: zfs would send another snapshot, found by that guid elsewhere in the pool`;
  return null;
}
