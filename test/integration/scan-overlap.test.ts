/**
 * The overlapped scan (producer.ts): the next page is listed, looked up and grouped while
 * the page before is still being queued and recorded. A producer killed (SIGKILL) in that
 * window, with a page's jobs added but the page not recorded and the next page prepared,
 * resumes after the last recorded page, and every object is embedded exactly once.
 * Every job a killed producer added is counted once in its run, also one a worker finished
 * before the resume (its page, listed again, then queues nothing for its objects).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { waitingJobs } from '../../src/backpressure.js';
import { DEFAULT_LIST_AHEAD } from '../../src/list-thread.js';
import { isFinished, RunStore } from '../../src/runs.js';
import { until } from '../support/incremental.js';
import { createBucket, putObject } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import { startRedisHoldProxy } from '../support/redis-hold-proxy.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'overlap';
const OBJECTS = 120;
/** 10 short texts: one job a page. */
const PAGE = 10;
/** The page whose jobs are added when the producer's Redis traffic is held. */
const HELD_PAGE = 4;
const text = (i: number): string => `entry ${i} of the lighthouse keeper's log`;

describe('the overlapped scan', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv({ captureRequests: 1000 });
    await createBucket(env.s3client, BUCKET);
    await Promise.all(
      Array.from({ length: OBJECTS }, (_, i) =>
        putObject(env.s3client, BUCKET, `log/${String(i).padStart(4, '0')}.txt`, text(i)),
      ),
    );
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  /** `index` of the bucket into `collection`, PAGE objects a page. */
  /** Every text of the bucket reached the API exactly once among the requests after the first `from`. */
  const expectEveryTextSentOnce = (from: number): void => {
    const sent = env.sim
      .requests()
      .slice(from)
      .flatMap((r) =>
        ((r.body as { input?: { contents?: unknown[] } } | undefined)?.input?.contents ?? []).map((c) =>
          typeof c === 'string' ? c : JSON.stringify(c),
        ),
      );
    expect(sent.length).toBe(OBJECTS);
    expect(new Set(sent)).toEqual(new Set(Array.from({ length: OBJECTS }, (_, i) => text(i))));
  };
  const indexArgs = (collection: string): string[] => [
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
  ];

  it('prepares the next page while one is queued; killed between queuing a page and recording it, resumes and embeds every object once', async () => {
    const collection = `overlap-${env.prefix}`;
    const args = indexArgs(collection);
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const requestsBefore = env.sim.requests().length;
    const s3 = await startS3Proxy(env.s3.endpoint);
    const redis = await startRedisHoldProxy(env.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    let runId: string | undefined;
    try {
      // 1. the producer's Redis traffic stops right after page 4's jobs are added (the
      // pipeline that carries the jobs' data): page 4 is queued, not recorded
      redis.holdAfter('"v":2,"runId":"', HELD_PAGE);
      const producer = startCli(args, { ...env.env, REDIS_URL: redis.url, S3_ENDPOINT: s3.endpoint });
      await producer.waitFor(/run \S+: scanning/, 60_000);
      runId = /run (\S+): scanning/.exec(producer.output())![1]!;
      for (let i = 0; i < 300 && !redis.holding(); i++) await sleep(100);
      expect(redis.holding()).toBe(true);
      // meanwhile page 5 is taken (listed ahead while page 4 was prepared), looked up in
      // Qdrant and grouped, and the LIST_AHEAD_PAGES after it listed ahead; nothing beyond
      const listed = HELD_PAGE + 1 + DEFAULT_LIST_AHEAD;
      for (let i = 0; i < 100 && s3.lists() < listed; i++) await sleep(50);
      await sleep(700);
      expect(s3.listKeyCounts()).toEqual(Array.from({ length: listed }, () => PAGE));
      const held = await runs.get(runId);
      expect(held?.pages).toBe(HELD_PAGE - 1);
      expect(held?.counters.jobsAdded).toBe(HELD_PAGE - 1);
      expect(held?.lastToken).toBeDefined();
      expect(await waitingJobs(queue)).toBe(HELD_PAGE);

      // 2. killed there: the run resumes at page 4, whose job is still waiting (added
      // again under the same id: one job, counted once); then a worker drains the queue
      await producer.stop('SIGKILL');
      const resumed = await runCli([...args, '--run-id', runId], { ...env.env, S3_ENDPOINT: s3.endpoint });
      expect(resumed.code).toBe(0);
      // the resumed scan listed page 4 and the rest, once each (and a last, empty page, if
      // the store said the full last page was truncated)
      const resumedLists = s3.listKeyCounts().slice(listed);
      const remaining = OBJECTS / PAGE - (HELD_PAGE - 1);
      expect(resumedLists.slice(0, remaining)).toEqual(Array.from({ length: remaining }, () => PAGE));
      expect(resumedLists.slice(remaining).every((n) => n === 0)).toBe(true);
      expect(await waitingJobs(queue)).toBe(OBJECTS / PAGE);
      const worker = startCli(['worker'], env.env);
      try {
        await worker.waitFor(/worker ready/);
        const waited = await runCli(['status', '--run', runId, '--wait'], env.env);
        expect(waited.code).toBe(0);
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
    } finally {
      await redis.close();
      await s3.close();
      await queue.close();
    }
    const run = await runs.get(runId ?? '');
    expect(run?.scanStatus).toBe('complete');
    expect(run?.counters.scanned).toBe(OBJECTS);
    expect(run?.counters.queuedObjects).toBe(OBJECTS);
    expect(run?.counters.jobsAdded).toBe(OBJECTS / PAGE);
    expect(run?.counters.jobsDone).toBe(OBJECTS / PAGE);
    expect(run?.counters.objectsIndexed).toBe(OBJECTS);
    // every object's text reached the API exactly once
    expectEveryTextSentOnce(requestsBefore);
    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    expect((await qdrant.count(collection, { exact: true })).count).toBe(OBJECTS);
  }, 180_000);

  it('killed right after recording a page, resumes after it: the jobs of the page counted once, the run ends when they are all done', async () => {
    const collection = `overlap-rec-${env.prefix}`;
    const args = indexArgs(collection);
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const requestsBefore = env.sim.requests().length;
    const redis = await startRedisHoldProxy(env.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    let runId: string | undefined;
    try {
      // the producer's traffic stops right after the 4th page's command naming the run's
      // set of queued jobs (one more names it as the scan starts, settling a stopped
      // attempt's jobs): where a page's jobs are remembered (recording the page counts them
      // in the same step, so remembered jobs are never left on an uncounted page)
      redis.holdAfter(':queued', HELD_PAGE + 1);
      const producer = startCli(args, { ...env.env, REDIS_URL: redis.url });
      await producer.waitFor(/run \S+: scanning/, 60_000);
      runId = /run (\S+): scanning/.exec(producer.output())![1]!;
      for (let i = 0; i < 300 && !redis.holding(); i++) await sleep(100);
      expect(redis.holding()).toBe(true);
      await sleep(300);
      await producer.stop('SIGKILL');
      expect(await waitingJobs(queue)).toBe(HELD_PAGE);
      // resumed (nothing draining yet, so page 4's job, if listed again, is still waiting)
      const resumed = await runCli([...args, '--run-id', runId], env.env);
      expect(resumed.code).toBe(0);
      const scanned = await runs.get(runId);
      expect(scanned?.scanStatus).toBe('complete');
      expect(scanned?.counters.jobsAdded).toBe(OBJECTS / PAGE);
      expect(await waitingJobs(queue)).toBe(OBJECTS / PAGE);
      const worker = startCli(['worker'], env.env);
      try {
        await worker.waitFor(/worker ready/);
        const waited = await runCli(['status', '--run', runId, '--wait'], env.env);
        expect(waited.code).toBe(0);
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
    } finally {
      await redis.close();
      await queue.close();
    }
    const run = await runs.get(runId ?? '');
    expect(run?.counters.scanned).toBe(OBJECTS);
    expect(run?.counters.jobsAdded).toBe(OBJECTS / PAGE);
    expect(run?.counters.jobsDone).toBe(OBJECTS / PAGE);
    expect(run?.counters.objectsIndexed).toBe(OBJECTS);
    expect(run?.finishedAt).toBeDefined();
    expectEveryTextSentOnce(requestsBefore);
  }, 180_000);

  it('killed after adding a page whose job a worker then finishes: the resumed run counts that job once and ends only with every job done', async () => {
    const args = indexArgs(`overlap-done-${env.prefix}`);
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const requestsBefore = env.sim.requests().length;
    const redis = await startRedisHoldProxy(env.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    let runId: string | undefined;
    const drain = async (): Promise<void> => {
      const worker = startCli(['worker'], env.env);
      try {
        await worker.waitFor(/worker ready/);
        await until('the queue drained', async () =>
          (await waitingJobs(queue)) === 0 && (await queue.getActiveCount()) === 0 ? true : undefined,
        );
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
    };
    try {
      // killed right after page 4's jobs are added, before the page is recorded
      redis.holdAfter('"v":2,"runId":"', HELD_PAGE);
      const producer = startCli(args, { ...env.env, REDIS_URL: redis.url });
      await producer.waitFor(/run \S+: scanning/, 60_000);
      runId = /run (\S+): scanning/.exec(producer.output())![1]!;
      for (let i = 0; i < 300 && !redis.holding(); i++) await sleep(100);
      expect(redis.holding()).toBe(true);
      await producer.stop('SIGKILL');
      expect(await waitingJobs(queue)).toBe(HELD_PAGE);
      // a worker finishes the 4 jobs, page 4's among them, before the producer is back
      await drain();
      expect((await runs.get(runId))?.counters.jobsDone).toBe(HELD_PAGE);
      // resumed: page 4 is listed again and its objects found indexed (nothing queued for
      // them); its job, added by the killed producer, counts all the same
      const resumed = await runCli([...args, '--run-id', runId], env.env);
      expect(resumed.code).toBe(0);
      const scanned = (await runs.get(runId))!;
      expect(scanned.scanStatus).toBe('complete');
      expect(scanned.counters.jobsAdded).toBe(OBJECTS / PAGE);
      expect(await waitingJobs(queue)).toBe(OBJECTS / PAGE - HELD_PAGE);
      expect(isFinished(scanned)).toBe(false);
      await drain();
    } finally {
      await redis.close();
      await queue.close();
    }
    const run = await runs.get(runId ?? '');
    expect(run?.counters.jobsAdded).toBe(OBJECTS / PAGE);
    expect(run?.counters.jobsDone).toBe(OBJECTS / PAGE);
    expect(run?.counters.objectsIndexed).toBe(OBJECTS);
    expect(run?.finishedAt).toBeDefined();
    expectEveryTextSentOnce(requestsBefore);
  }, 180_000);
});
