/**
 * A run's bookkeeping stays bounded: the seen-set holds 8-byte digests whatever the keys'
 * length, a job's result is stored compact (and one stored as JSON by the version before
 * still reads), and a complete scan drops the sets that only kept a resumed scan from
 * counting twice, while a failed one, which may be resumed, keeps them.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RunStore } from '../../src/runs.js';
import { runInfo } from '../support/run-records.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
const prefix = `test-books-${randomUUID().slice(0, 8)}`;
const runs = new RunStore(redis, prefix);

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

describe('run bookkeeping', () => {
  it('keeps 8-byte digests of the seen keys and answers for listed and unlisted keys', async () => {
    await runs.create(runInfo('S1'));
    const long = Array.from({ length: 300 }, (_, i) => `deep/${'folder/'.repeat(20)}object-${i}.txt`);
    await runs.markSeen('S1', long);
    await runs.markSeen('S1', long.slice(0, 10)); // a page listed again
    expect(await runs.seenCount('S1')).toBe(300);
    const members = await redis.smembersBuffer(`${prefix}:run:S1:seenh`);
    expect(members.every((m) => m.length === 8)).toBe(true);
    expect(await runs.seen('S1', [long[0]!, long[299]!, 'deep/not-listed.txt'])).toEqual([true, true, false]);
    await runs.dropSeen('S1');
    expect(await redis.exists(`${prefix}:run:S1:seenh`)).toBe(0);
  });

  it('stores job results compact, reads old JSON ones, and drops scan-only sets once the scan is complete', async () => {
    await runs.create(runInfo('J1'));
    const failed = {
      status: 'failed',
      objects: 3,
      indexed: 1,
      skipped: 0,
      failed: 2,
      points: 4,
      error: 'a b  c',
    } as const;
    expect(await runs.recordJob('J1', 'J1.a', failed)).toBe(true);
    expect(await runs.recordJob('J1', 'J1.a', failed)).toBe(false); // once
    expect(await runs.jobResult('J1', 'J1.a')).toEqual(failed);
    expect((await redis.hget(`${prefix}:run:J1:jobs`, 'J1.a'))!.length).toBeLessThan(30);
    const old = { status: 'done', objects: 20, indexed: 20, skipped: 0, failed: 0, points: 20 };
    await redis.hset(`${prefix}:run:J1:jobs`, 'J1.old', JSON.stringify(old));
    expect(await runs.jobResult('J1', 'J1.old')).toEqual(old);

    const scanOnly = [':queued', ':pages'].map((p) => `${prefix}:run:J1${p}`);
    await runs.newJobs('J1', ['J1.a', 'J1.b']);
    await runs.pageDone('J1', { scanned: 2, jobsAdded: 2, pageToken: 't1' });
    await runs.scanFinished('J1', 'failed', 'listing died');
    expect(await redis.exists(...scanOnly)).toBe(2); // a failed scan may be resumed
    await runs.reopen('J1');
    await runs.scanFinished('J1', 'complete');
    expect(await redis.exists(...scanOnly)).toBe(0);
    expect((await runs.get('J1'))!.counters).toMatchObject({ scanned: 2, jobsAdded: 2, jobsFailed: 1 });
  });
});
