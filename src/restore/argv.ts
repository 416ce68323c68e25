/** What only restore needs on a node besides zfs calls (names are validated by the plan before they get here). */

/**
 * What PVE sets when it allocates a CT volume (a send stream without -p carries none of them):
 * POSIX ACLs, xattrs in the dnode, and the size as refquota.
 */
export function subvolProperties(refquota: string | null): Record<string, string> {
  return { acltype: 'posixacl', xattr: 'sa', ...(refquota ? { refquota } : {}) };
}

/**
 * Waits (up to about 30 s) until udev caught up with the renames: the link of each restored zvol
 * exists, its temporary name's link is gone, and the link of what it replaced exists under the
 * aside name. Only then does `/dev/zvol/<target>` surely lead to the restored data, for a guest
 * started right away. Arguments are `target temp aside` triples (aside '' when nothing was replaced).
 */
export function waitForZvolsArgv(
  disks: readonly { target: string; temp: string; aside: string | null }[],
): string[] {
  const script =
    'while [ $# -ge 3 ]; do i=0; ' +
    'until [ -e "/dev/zvol/$1" ] && [ ! -e "/dev/zvol/$2" ] && { [ -z "$3" ] || [ -e "/dev/zvol/$3" ]; }; do ' +
    'i=$((i+1)); [ $i -gt 150 ] && { echo "/dev/zvol/$1 did not appear in time" >&2; exit 1; }; sleep 0.2; done; shift 3; done';
  return ['sh', '-c', script, 'zbm-wait-zvols', ...disks.flatMap((d) => [d.target, d.temp, d.aside ?? ''])];
}
