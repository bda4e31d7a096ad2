/**
 * A run's bookkeeping stays bounded: the seen-set holds 8-byte digests whatever the keys'
 * length, a job's result is stored compact (and one stored as JSON by the version before
 * still reads), and a complete scan drops the sets that only kept a resumed scan from
 * counting twice, while a failed one, which may be resumed, keeps them. A run's own numbered
 * jobs are counted once by one bit each (also when a worker of the version before recorded
 * one by id), a run that follows a job late records its result from the job's hash, and a
 * stopped producer's pending page counts the jobs that were added, once.
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
    await runs.pageDone('J1', { scanned: 2, jobsAdded: 2 });
    // the counted ids go as their page is recorded: a recorded page never counts again
    expect(await redis.exists(scanOnly[0]!)).toBe(0);
    await runs.scanFinished('J1', 'failed', 'listing died');
    // a failed scan may be resumed: where it stood is kept (here: its listing complete)
    expect((await runs.get('J1'))!.listed).toBe(true);
    await runs.reopen('J1');
    await runs.scanFinished('J1', 'complete');
    expect(await redis.exists(...scanOnly)).toBe(0);
    expect((await runs.get('J1'))!.counters).toMatchObject({ scanned: 2, jobsAdded: 2, jobsFailed: 1 });
  });

  it('counts a numbered job once by its bit, not again after an older worker recorded it by id, and gives late followers its result', async () => {
    await runs.create(runInfo('N1'));
    const done = { status: 'done', objects: 20, indexed: 19, skipped: 1, failed: 0, points: 19 } as const;
    const ids = Array.from({ length: 3 }, (_, i) => `N1.c${i}`);
    const jobKey = (j: string): string => `${prefix}:embed:${j}`;
    for (const j of ids) await redis.hset(jobKey(j), 'data', '{}'); // the jobs, in the queue
    expect(await runs.intend('N1', '(first)', ids)).toBe(0);
    expect(await runs.intend('N1', 'page-2', ids.slice(0, 2))).toBe(3); // numbers are never reused
    const own = (n: number, j: string): { number: number; jobKey: string } => ({ number: n, jobKey: jobKey(j) });
    expect(await runs.recordJob('N1', ids[0]!, done, own(0, ids[0]!))).toBe(true);
    expect(await runs.recordJob('N1', ids[0]!, done, own(0, ids[0]!))).toBe(false); // redone: once
    // a worker of the version before recorded this one by its id: not counted again
    await redis.hset(`${prefix}:run:N1:jobs`, ids[1]!, 'd 20 20 0 0 20');
    expect(await runs.recordJob('N1', ids[1]!, done, own(1, ids[1]!))).toBe(false);
    expect(await redis.hexists(`${prefix}:run:N1:jobs`, ids[0]!)).toBe(0);
    expect(await redis.strlen(`${prefix}:run:N1:done`)).toBe(1); // one bit a job
    expect((await runs.get('N1'))!.counters).toMatchObject({ jobsDone: 1, objectsIndexed: 19, objectsSkipped: 1 });

    // a run whose add was deduplicated into N1's jobs follows them: one that ended already is
    // recorded from its hash, one still pending waits, one gone with no result is not followed
    await runs.create(runInfo('F1'));
    const follow = (j: string) => ({ jobId: j, runId: 'N1', jobKey: jobKey(j) });
    expect(await runs.follow('F1', [follow(ids[0]!), follow(ids[2]!), follow('N1.gone')])).toBe(2);
    expect(await runs.follow('F1', [follow(ids[0]!)])).toBe(0);
    expect(await runs.recordJob('F1', ids[0]!, done)).toBe(false); // its worker telling it too: once
    expect((await runs.get('F1'))!.counters).toMatchObject({
      jobsFollowed: 2,
      jobsDone: 1,
      objectsIndexed: 19,
      points: 19,
    });
    expect(await runs.followers(ids[2]!)).toEqual(['F1']);
  });

  it("counts the jobs of a stopped producer's pending page that were added, once, and none of a page counted before", async () => {
    await runs.create(runInfo('P1'));
    const jobKey = (j: string): string => `${prefix}:embed:${j}`;
    const ids = ['P1.a', 'P1.b', 'P1.c'];
    // page 1 recorded; page 2's three jobs pending: a waiting, b done and removed from the
    // queue (only its bit tells), c never added
    await runs.intend('P1', '(first)', ['P1.x']);
    await runs.pageDone('P1', { scanned: 1, jobIds: ['P1.x'], pageToken: '(first)', nextToken: 't2' });
    const first = await runs.intend('P1', 't2', ids);
    await redis.hset(jobKey('P1.a'), 'data', '{}');
    const done = { status: 'done', objects: 1, indexed: 1, skipped: 0, failed: 0, points: 1 } as const;
    await runs.recordJob('P1', 'P1.b', done, { number: first + 1, jobKey: jobKey('P1.b') });
    expect(await runs.settlePending('P1', jobKey)).toBe(2);
    expect(await runs.settlePending('P1', jobKey)).toBe(0); // settled once
    // the page listed again queues a (still waiting) and c; b's objects are indexed
    await runs.intend('P1', 't2', ['P1.a', 'P1.c']);
    expect(await runs.pageDone('P1', { scanned: 3, jobIds: ['P1.a', 'P1.c'], pageToken: 't2' })).toBe(1);
    expect((await runs.get('P1'))!.counters).toMatchObject({ jobsAdded: 4, scanned: 4 });
    // a page counted before, pending again (listed again after the listing's end): nothing
    await runs.intend('P1', '(first)', ['P1.x']);
    await redis.hset(jobKey('P1.x'), 'data', '{}');
    expect(await runs.settlePending('P1', jobKey)).toBe(0);
    expect(await redis.exists(`${prefix}:run:P1:queued`, `${prefix}:run:P1:pending`)).toBe(0);
  });

  it("keeps no record per page: the run's records after 2,000 pages are as large as after 2, and a page listed again counts nothing", async () => {
    await runs.create(runInfo('G1'));
    const size = async (): Promise<number> => {
      let bytes = 0;
      for (const part of ['', ':pages', ':queued', ':pending'])
        bytes += ((await redis.call('MEMORY', 'USAGE', `${prefix}:run:G1${part}`)) as number | null) ?? 0;
      return bytes;
    };
    // page i is listed with token t{i} (the first with none) and names t{i+1} as the next
    const page = async (i: number, next = true): Promise<number> => {
      const token = i === 1 ? '(first)' : `t${String(i).padStart(6, '0')}`;
      await runs.intend('G1', token, [`G1.p${i}`]);
      const nextToken = next ? `t${String(i + 1).padStart(6, '0')}` : undefined;
      return runs.pageDone('G1', {
        scanned: 10,
        jobIds: [`G1.p${i}`],
        pageToken: token,
        ...(nextToken ? { nextToken } : {}),
      });
    };
    for (let i = 1; i <= 2; i++) await page(i);
    const after2 = await size();
    for (let i = 3; i <= 2000; i++) await page(i);
    const after2000 = await size();
    expect(after2000).toBeLessThanOrEqual(after2 + 16);
    // a page listed again (its token is not the one the run goes on from) counts nothing
    expect(await page(1500)).toBe(0);
    expect(await page(2001, false)).toBe(1);
    expect((await runs.get('G1'))!.counters).toMatchObject({ jobsAdded: 2001, scanned: 20010 });
    expect((await runs.get('G1'))!.listed).toBe(true);
    // the compose walk's chunks after the listing: counted by number, once
    const jobKey = (j: string): string => `${prefix}:embed:${j}`;
    const chunk = async (k: number, ids: string[]): Promise<number> => {
      await runs.intend('G1', `compose:${k}`, ids);
      return runs.pageDone('G1', { jobIds: ids, pageToken: `compose:${k}` });
    };
    expect(await chunk(1, ['G1.u1'])).toBe(1);
    expect(await chunk(2, ['G1.u2'])).toBe(1);
    expect(await chunk(1, ['G1.u1', 'G1.v1'])).toBe(0);
    // chunk 3 queued by a producer that stopped before recording it: its added job counts once
    await runs.intend('G1', 'compose:3', ['G1.u3']);
    await redis.hset(jobKey('G1.u3'), 'data', '{}');
    expect(await runs.settlePending('G1', jobKey)).toBe(1);
    expect(await chunk(3, ['G1.u3'])).toBe(0);
    expect(await chunk(4, ['G1.u4'])).toBe(1);
    expect((await runs.get('G1'))!).toMatchObject({ composedChunks: 4, counters: { jobsAdded: 2005 } });
    expect(await redis.exists(`${prefix}:run:G1:pages`)).toBe(0);
  }, 60_000);
});
