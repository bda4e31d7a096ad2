import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { SharedRateLimiter } from '../../src/rate-limit.js';

/** Largest number of times in any window of `windowMs` (closed on the right, as the simulator counts). */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe('the shared rate limiter in Redis', () => {
  let redis: Redis;
  const prefix = `test-rl-${randomUUID().slice(0, 8)}`;

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('lets no more than RPM/60 requests through in any second, across limiters sharing the Redis', async () => {
    // two limiters stand for two worker processes
    const a = new SharedRateLimiter(redis, prefix);
    const b = new SharedRateLimiter(redis, prefix);
    const times: number[] = [];
    const take = async (l: SharedRateLimiter): Promise<void> => {
      for (let i = 0; i < 15; i++) {
        await l.acquire('m-rps', { rpm: 600, tpm: null }, 1);
        times.push(Date.now());
      }
    };
    await Promise.all([take(a), take(b), take(a)]);
    expect(times).toHaveLength(45);
    expect(maxInWindow(times, 1000)).toBeLessThanOrEqual(10);
  }, 30_000);

  it('keeps the tokens of the last minute under TPM', async () => {
    const l = new SharedRateLimiter(redis, prefix);
    await expect(l.acquire('m-tpm', { rpm: null, tpm: 1000 }, 600)).resolves.toEqual({ waitedMs: 0, ticket: expect.stringMatching(/^[0-9a-f-]{36}:600$/) });
    // 600 + 600 > 1000: the second must wait for the first to leave the window (about a minute)
    const waited = l.acquire('m-tpm', { rpm: null, tpm: 1000 }, 600);
    const raced = await Promise.race([waited.then(() => 'admitted'), new Promise((r) => setTimeout(() => r('waiting'), 1500))]);
    expect(raced).toBe('waiting');
    // let it go: clear the window so the pending acquire resolves
    await redis.del(`${prefix}:rl:m-tpm`);
    await expect(waited).resolves.toMatchObject({ waitedMs: expect.any(Number) });
  }, 90_000);

  it('holds every limiter back after a 429 penalty', async () => {
    const a = new SharedRateLimiter(redis, prefix);
    const b = new SharedRateLimiter(redis, prefix);
    await a.penalize('m-hold', 800);
    const t0 = Date.now();
    const { waitedMs } = await b.acquire('m-hold', { rpm: 6000, tpm: null }, 1);
    expect(waitedMs).toBeGreaterThanOrEqual(500);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
  });
});
