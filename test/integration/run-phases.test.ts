/**
 * A run whose listing is complete but whose scan is not (killed in the phases after the
 * listing: the compose walk, the prune) resumes in those phases: it does not list the
 * bucket again, so no job of a page listed again goes uncounted (a page counted once
 * counts none of its jobs a second time), and the run ends only once every job it
 * queued has a result.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { waitingJobs } from '../../src/backpressure.js';
import { isFinished, RunStore } from '../../src/runs.js';
import { createBucket, putObject } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import { startRedisHoldProxy } from '../support/redis-hold-proxy.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'phases';
/** Three pages of 10, 10 and 5 short texts: one job a page. */
const OBJECTS = 25;
const PAGE = 10;
const PAGES = 3;
const key = (i: number): string => `notes/${String(i).padStart(3, '0')}.txt`;

describe('a run killed after its listing', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await Promise.all(
      Array.from({ length: OBJECTS }, (_, i) => putObject(env.s3client, BUCKET, key(i), `note ${i} of the ledger`)),
    );
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('killed in the prune, resumes there without listing again: every job it queued is counted, and it ends with all of them done', async () => {
    const collection = `phases-${env.prefix}`;
    const args = [
      'index',
      '--bucket',
      BUCKET,
      '--collection',
      collection,
      '--model',
      'qwen3-vl-embedding',
      '--dimension',
      '256',
      '--page-size',
      String(PAGE),
      '--prune',
    ];
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const redis = await startRedisHoldProxy(env.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    const s3 = await startS3Proxy(env.s3.endpoint);
    try {
      // the producer's traffic stops as the prune begins (it counts the seen-set: SCARD),
      // every page of the listing recorded
      redis.holdAfter('\r\nscard\r\n', 1);
      const producer = startCli(args, { ...env.env, REDIS_URL: redis.url });
      await producer.waitFor(/run \S+: scanning/, 60_000);
      const runId = /run (\S+): scanning/.exec(producer.output())![1]!;
      for (let i = 0; i < 300 && !redis.holding(); i++) await sleep(100);
      expect(redis.holding()).toBe(true);
      await producer.stop('SIGKILL');
      const held = (await runs.get(runId))!;
      expect(held).toMatchObject({ scanStatus: 'scanning', pages: PAGES });
      expect(held.counters.jobsAdded).toBe(PAGES);

      // meanwhile an object changes (a listing now would queue a job for its new version)
      await putObject(env.s3client, BUCKET, key(3), 'note 3 of the ledger, amended');
      const resumed = await runCli([...args, '--run-id', runId], { ...env.env, S3_ENDPOINT: s3.endpoint });
      expect({ code: resumed.code, stderr: resumed.stderr }).toEqual({ code: 0, stderr: '' });
      const scanned = (await runs.get(runId))!;
      expect(scanned.scanStatus).toBe('complete');
      // every object listed once, every job of the run in the queue counted in it, once
      expect(scanned.counters.scanned).toBe(OBJECTS);
      expect(scanned.counters.jobsAdded).toBe(await waitingJobs(queue));
      // the listing was complete: nothing is listed again
      expect(s3.lists()).toBe(0);
      expect(isFinished(scanned)).toBe(false);

      const worker = startCli(['worker'], env.env);
      try {
        await worker.waitFor(/worker ready/);
        const waited = await runCli(['status', '--run', runId, '--wait'], env.env);
        expect(waited.code).toBe(0);
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
      expect(await waitingJobs(queue)).toBe(0);
      const run = (await runs.get(runId))!;
      expect(run.counters).toMatchObject({ scanned: OBJECTS, jobsAdded: PAGES, jobsDone: PAGES });
      expect(run.finishedAt).toBeDefined();
    } finally {
      await s3.close();
      await redis.close();
      await queue.close();
    }
  }, 180_000);
});
