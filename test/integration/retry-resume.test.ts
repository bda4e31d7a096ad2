/**
 * A `retry-failed` killed (SIGKILL) while it queues leaves its new run scanning: `status`
 * says the run was interrupted and how to finish it, `index --run-id` of it is refused with
 * the same advice, and running `retry-failed` again (the latest run is then the interrupted
 * one) finishes that run instead of starting another: every failure of the old run ends up
 * queued exactly once, also those of the page whose jobs were added but not yet recorded,
 * and the run counts every job it queued.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { jobObjects } from '../../src/embed-job.js';
import type { EmbedJobData, EmbedSettings } from '../../src/embed-job.js';
import { RunStore } from '../../src/runs.js';
import type { ItemOutcome } from '../../src/runs.js';
import { qdrantForTest } from '../support/qdrant.js';
import type { QdrantForTest } from '../support/qdrant.js';
import { startRedisHoldProxy } from '../support/redis-hold-proxy.js';
import { runCli, startCli, TEST_API_KEY } from '../support/pipeline.js';

/** 1,500 items, every fifth a failure: about 100 failures (10 jobs) on each page of 500 items. */
const ITEMS = 1500;
const key = (i: number): string => `retry/doc-${String(i).padStart(5, '0')}.txt`;
const failed = (i: number): boolean => i % 5 === 0;

describe('an interrupted retry-failed', () => {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const prefix = `test-rresume-${randomUUID().slice(0, 8)}`;
  const collection = `rresume-${prefix}`;
  const runs = new RunStore(redis, prefix);
  let qdrant: QdrantForTest;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    qdrant = await qdrantForTest();
    await new QdrantClient({ url: qdrant.url, ...(qdrant.apiKey ? { apiKey: qdrant.apiKey } : {}) }).createCollection(
      collection,
      { vectors: { size: 256, distance: 'Cosine' } },
    );
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DASHSCOPE_API_KEY: TEST_API_KEY,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: prefix,
      QDRANT_URL: qdrant.url,
      ...(qdrant.apiKey ? { QDRANT_API_KEY: qdrant.apiKey } : {}),
      LOG_LEVEL: 'warn',
      MAX_QUEUED_JOBS: '0',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const settings: EmbedSettings = {
      collection,
      model: 'qwen3-vl-embedding',
      dimension: 256,
      chunkOverlap: 0,
      imageMode: 'inline',
      maxBodyBytes: 6 * 1024 * 1024,
    };
    await runs.create({
      id: 'R1',
      bucket: 'retry',
      prefix: 'retry/',
      collection,
      model: settings.model,
      dimension: 256,
      startedAt: new Date(Date.now() - 60_000).toISOString(),
      settings: JSON.stringify(settings),
    });
    const items = new Map<string, ItemOutcome>();
    for (let i = 0; i < ITEMS; i++)
      items.set(
        key(i),
        failed(i)
          ? {
              status: 'failed',
              code: 'InternalError',
              reason: `the request of ${key(i)} failed`,
              object: [key(i), `etag${i}`, 100 + i, Date.UTC(2026, 0, 1) + i * 1000, 't'],
            }
          : { status: 'skipped', code: 'too-large', reason: 'over MAX_TEXT_BYTES' },
      );
    await runs.recordItems('R1', items);
    await runs.scanFinished('R1', 'complete');
  }, 60_000);

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await qdrant?.close();
  });

  it('is reported interrupted, and retry-failed run again finishes its run: every failure queued once, every job counted', async () => {
    const failures = Array.from({ length: ITEMS }, (_, i) => i)
      .filter(failed)
      .map(key);
    const hold = await startRedisHoldProxy(env.REDIS_URL!);
    let newId: string;
    try {
      // held before the second page is recorded (PAGE_DONE's script), its jobs added
      hold.holdAt("'listed', '1'", 2);
      const retry = startCli(['retry-failed', '--run', 'R1'], { ...env, REDIS_URL: hold.url });
      for (let i = 0; i < 300 && !hold.holding(); i++) await sleep(100);
      expect(hold.holding()).toBe(true);
      await retry.stop('SIGKILL');
      newId = (await runs.latest(1))[0]!;
      expect(newId).not.toBe('R1');
      expect((await runs.get(newId))!).toMatchObject({ scanStatus: 'scanning', retryOf: 'R1', pages: 1 });
    } finally {
      await hold.close();
    }

    const status = await runCli(['status', '--run', newId], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`interrupted: the retry-failed of run R1 that queued this run stopped`);
    expect(status.stdout).toContain('mm-ingest retry-failed --run R1');
    // (a store that answers every request: the refusal comes before anything is listed)
    const store = createServer((_, res) => res.writeHead(200).end());
    await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
    const storeEnv = {
      S3_ENDPOINT: `http://127.0.0.1:${(store.address() as AddressInfo).port}`,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test-secret',
    };
    const resumed = await runCli(
      ['index', '--bucket', 'retry', '--collection', collection, '--model', 'qwen3-vl-embedding', '--run-id', newId],
      { ...env, ...storeEnv },
    ).finally(() => store.close());
    expect(resumed.code).not.toBe(0);
    expect(resumed.stderr).toContain('mm-ingest retry-failed --run R1');

    // retry-failed again, of the latest run (the interrupted one): it finishes that run
    const again = await runCli(['retry-failed'], env);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toContain(`run ${newId}: `);
    const all = await runs.latest(10);
    expect(all.sort()).toEqual(['R1', newId].sort());
    const run = (await runs.get(newId))!;
    expect(run.scanStatus).toBe('complete');

    const queue = new Queue<EmbedJobData>('embed', { connection: redis, prefix });
    try {
      const jobs = await queue.getWaiting(0, -1);
      const queued = jobs.flatMap((j) => jobObjects(j.data).map((o) => o[0]));
      // every failure once: none lost, none bought twice
      expect(queued.sort()).toEqual(failures.sort());
      expect(jobs.every((j) => j.id?.startsWith(`${newId}.`))).toBe(true);
      expect(run.counters.jobsAdded).toBe(jobs.length);
      expect(run.counters.queuedObjects).toBe(failures.length);
    } finally {
      await queue.close();
    }
    const counts = Object.fromEntries((await runs.codeCounts('R1')).map((c) => [`${c.status}:${c.code}`, c.count]));
    expect(counts).toEqual({ 'retried:InternalError': failures.length, 'skipped:too-large': ITEMS - failures.length });
    const after = await runCli(['status', '--run', newId], env);
    expect(after.stdout).not.toContain('interrupted');
  }, 120_000);
});
