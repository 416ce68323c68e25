/** Builders and a stdout capture for the tests of zbm drill. */
import { mock } from 'node:test';
import type { ManifestDisk } from '../../src/metadata/manifest.ts';

/** A disk of a manifest as backup-pve writes it: volume on local-zfs, backup dataset under root. */
export function manifestDisk(
  root: string,
  key: string,
  volname: string,
  guid: string,
  bytes = 2048,
): ManifestDisk {
  return {
    key,
    volume: `local-zfs:${volname}`,
    source: `rpool/data/${volname}`,
    target: `${root}/${volname}`,
    guid,
    referenced: bytes,
    bytesSent: bytes,
    mode: 'full',
  };
}

/**
 * What run printed on stdout (zbm writes text). The test runner's own reports, which it may write
 * meanwhile, are bytes: they go through.
 */
export async function captureStdout<T>(run: () => T | Promise<T>): Promise<{ result: T; stdout: string }> {
  const out: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  const write = mock.method(process.stdout, 'write', (s: string | Uint8Array) => {
    if (typeof s !== 'string') return original(s);
    out.push(s);
    return true;
  });
  try {
    return { result: await run(), stdout: out.join('') };
  } finally {
    write.mock.restore();
  }
}
