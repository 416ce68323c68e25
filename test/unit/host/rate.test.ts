import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseByteSize, RateLimiter } from '../../../src/host/rate.ts';

describe('rate limiter', () => {
  it('lets a long transfer average exactly the configured rate', () => {
    let now = 0;
    const limiter = new RateLimiter(1000, () => now);
    // Send 100 chunks of 100 bytes, advancing the clock by each wait the limiter asks for.
    for (let i = 0; i < 100; i++) now += limiter.reserve(100);
    // 10 000 bytes at 1000 B/s: 10 s, less the half-second bucket that starts full.
    assert.ok(Math.abs(now - 9500) < 1, `took ${now} ms`);
  });

  it('does not turn an idle pause into a burst beyond half a second of bytes', () => {
    let now = 0;
    const limiter = new RateLimiter(1000, () => now);
    now = 60_000;
    assert.equal(limiter.reserve(500), 0);
    assert.ok(limiter.reserve(100) > 0);
  });
});

describe('byte sizes', () => {
  it('parses the units admins write', () => {
    assert.equal(parseByteSize('50M'), 50 * 1024 * 1024);
    assert.equal(parseByteSize('800k'), 800 * 1024);
    assert.equal(parseByteSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseByteSize('4096'), 4096);
    assert.equal(parseByteSize('10MiB'), 10 * 1024 * 1024);
    assert.equal(parseByteSize('4096B'), 4096);
    for (const bad of ['', 'fast', '-5M', '0', '5X', '1e9', '5BB'])
      assert.equal(parseByteSize(bad), null, bad);
  });

  it('counts a bare number in the unit asked for: KiB for rates, as Proxmox bwlimit', () => {
    assert.equal(parseByteSize('50000', 1024), 50_000 * 1024);
    assert.equal(parseByteSize('50M', 1024), 50 * 1024 * 1024);
    assert.equal(parseByteSize('512B', 1024), 512);
  });
});
