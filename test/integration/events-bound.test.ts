/**
 * The embed queue's events stream is bounded at EMBED_EVENTS_MAX_LEN (connections.ts), not
 * BullMQ's default 10,000: queued jobs past the bound leave the stream at about the bound
 * (Redis trims whole stream nodes, so up to about 100 entries more).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config.js';
import { EMBED_EVENTS_MAX_LEN, embedQueue } from '../../src/connections.js';
import type { EmbedJobData } from '../../src/embed-job.js';

describe('the embed queue events stream', () => {
  const prefix = `test-events-${randomUUID().slice(0, 8)}`;
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('keeps about EMBED_EVENTS_MAX_LEN entries however many jobs are queued', async () => {
    const config = loadConfig({ QUEUE_PREFIX: prefix, DASHSCOPE_API_KEY: 'sk-test-events-0123456789' });
    const queue = embedQueue(config, redis);
    try {
      await queue.waitUntilReady();
      const jobs = 3 * EMBED_EVENTS_MAX_LEN;
      for (let i = 0; i < jobs; i += 500)
        await queue.addBulk(
          Array.from({ length: 500 }, (_, k) => ({
            name: 'embed',
            data: { v: 2, runId: 'r', o: `${i + k}` } as unknown as EmbedJobData,
            opts: { jobId: `r.${i + k}` },
          })),
        );
      expect(await queue.count()).toBe(jobs);
      // two events a job (added, waiting): 6,000 written, about 1,000 kept
      const kept = await redis.xlen(`${prefix}:embed:events`);
      expect(kept).toBeGreaterThanOrEqual(EMBED_EVENTS_MAX_LEN);
      expect(kept).toBeLessThanOrEqual(EMBED_EVENTS_MAX_LEN + 200);
      expect(await redis.hget(`${prefix}:embed:meta`, 'opts.maxLenEvents')).toBe(String(EMBED_EVENTS_MAX_LEN));
    } finally {
      await queue.close();
    }
  });
});
