/**
 * RUN_RETENTION_DAYS: a finished run's records expire after the retention (they were kept
 * for ever), a resumed run's expiry is lifted, and the runs index forgets expired runs.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RunStore } from '../../src/runs.js';
import { runInfo } from '../support/run-records.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
const prefix = `test-retention-${randomUUID().slice(0, 8)}`;
const DAY = 24 * 3600 * 1000;

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

describe('run retention', () => {
  it('expires a finished run after the retention, lifts it on reopen, and lists only live runs', async () => {
    const runs = new RunStore(redis, prefix, 2 * DAY);
    await runs.create(runInfo('R1'));
    await runs.recordItems('R1', new Map([['a.txt', { status: 'failed' as const, code: 'X', reason: 'r' }]]));
    await runs.recordJob('R1', 'R1.j', { status: 'done', objects: 1, indexed: 1, skipped: 0, failed: 0, points: 1 });
    expect(await redis.pttl(`${prefix}:run:R1`)).toBe(-1);
    await runs.markFinished('R1');
    for (const k of [`${prefix}:run:R1`, `${prefix}:run:R1:items`, `${prefix}:run:R1:jobs`]) {
      const ttl = await redis.pttl(k);
      expect(ttl).toBeGreaterThan(2 * DAY - 60_000);
      expect(ttl).toBeLessThanOrEqual(2 * DAY);
    }
    await runs.reopen('R1');
    expect(await redis.pttl(`${prefix}:run:R1`)).toBe(-1);
    expect(await redis.pttl(`${prefix}:run:R1:items`)).toBe(-1);

    // a run whose records are gone is not listed; one started past the retention leaves the index
    await runs.create(runInfo('R2'));
    await redis.del(`${prefix}:run:R2`);
    expect(await runs.latest()).toEqual(['R1']);
    await runs.create(runInfo('R3', new Date(Date.now() + 4 * DAY).toISOString()));
    expect(await redis.zrange(`${prefix}:runs`, '0', '-1')).toEqual(['R3']);
  });
});
