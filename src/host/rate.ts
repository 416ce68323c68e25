import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A token bucket shared by every transfer of a run, so that `--bwlimit` bounds the whole run.
 * The bucket holds at most half a second of bytes: enough to absorb scheduling jitter without
 * letting an idle pause turn into a burst.
 */
export class RateLimiter {
  #tokens: number;
  #last: number;
  readonly #capacity: number;

  constructor(
    readonly bytesPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(bytesPerSecond > 0)) throw new Error(`rate must be positive, got ${bytesPerSecond}`);
    this.#capacity = bytesPerSecond / 2;
    this.#tokens = this.#capacity;
    this.#last = this.now();
  }

  /** Milliseconds the caller must wait before sending n more bytes. */
  reserve(n: number): number {
    const t = this.now();
    this.#tokens = Math.min(this.#capacity, this.#tokens + ((t - this.#last) / 1000) * this.bytesPerSecond);
    this.#last = t;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : (-this.#tokens / this.bytesPerSecond) * 1000;
  }

  async take(n: number): Promise<void> {
    const wait = this.reserve(n);
    if (wait > 0) await sleep(wait);
  }
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses a byte size such as `50M`, `1.5G`, `800K` (binary units) or `4096B`. A bare number counts
 * in bareUnit bytes: 1024 for rates, where Proxmox's bwlimit is KiB/s.
 */
export function parseByteSize(value: string, bareUnit = 1): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?|(B))?$/i.exec(value.trim());
  if (!m) return null;
  const unit = m[2] ? UNITS[m[2].toUpperCase()] : m[3] ? 1 : bareUnit;
  const n = Number(m[1]) * (unit ?? Number.NaN);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : null;
}
