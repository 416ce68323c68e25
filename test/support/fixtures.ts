/** The captured outputs under test/fixtures/, read once per call, for parser tests. */
import { readFileSync } from 'node:fs';

function reader(folder: 'pve' | 'zfs' | 'files'): (name: string) => string {
  return (name) => readFileSync(new URL(`../fixtures/${folder}/${name}`, import.meta.url), 'utf8');
}

/** A file of Proxmox VE's (`/etc/pve/...`, `pvesh` output) captured in test/fixtures/pve/. */
export const pveFixture = reader('pve');

/** `zfs` output captured on OpenZFS in test/fixtures/zfs/ (see capture.sh there). */
export const zfsFixture = reader('zfs');

/** File system listings (7-Zip, find) captured in test/fixtures/files/. */
export const filesFixture = reader('files');
