/**
 * A worker stopped while its jobs wait at the rate limiter (real processes, s3rver, the
 * simulator, the Qdrant stand-in): once the drain timeout passes, its jobs send no further
 * request and go back to the queue without using an attempt; another worker finishes the
 * run, and every text is paid for exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { EMBED_QUEUE } from '../../src/embed-job.js';
import { RunStore } from '../../src/runs.js';
import { prose } from '../support/corpus.js';
import { putMany, runIdOf, until } from '../support/incremental.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';
import { createBucket } from '../support/s3.js';

const BUCKET = 'drain';
const TEXTS = 200; // 10 jobs of 20 short texts: one request each

describe('stopping a worker whose jobs wait at the rate limiter', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await putMany(
      env.s3client,
      BUCKET,
      new Map(Array.from({ length: TEXTS }, (_, i) => [`t/${String(i).padStart(3, '0')}.txt`, prose(i, 8)])),
    );
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('gives its jobs back after the drain timeout, sends nothing more, and nothing is paid twice', async () => {
    const collection = `drain-${env.prefix}`;
    const queue = new Queue(EMBED_QUEUE, { connection: env.redis, prefix: env.prefix });
    // 12 requests a minute: the shared limiter lets one request through every second or so
    const slow = {
      ...env.env,
      MODEL_OVERRIDES: '{"qwen3-vl-embedding":{"rpm":12}}',
      DRAIN_TIMEOUT_MS: '1000',
      WORKER_CONCURRENCY: '4',
    };
    const index = await runCli(
      ['index', '--bucket', BUCKET, '--collection', collection, '--model', 'qwen3-vl-embedding', '--dimension', '256'],
      env.env,
    );
    expect(index.code).toBe(0);
    const runId = runIdOf(index.stdout);
    const runs = new RunStore(env.redis, env.prefix);
    expect((await runs.get(runId))?.counters.jobsAdded).toBe(10);

    const first = startCli(['worker'], slow);
    await first.waitFor(/worker ready/);
    await until('two requests', async () => (env.sim.stats().accepted >= 2 ? true : undefined), 60_000);
    expect(await first.stop('SIGTERM')).toBe(0);
    const sentByFirst = env.sim.stats().requests;
    expect(first.output()).toMatch(/drain timed out/);
    expect(first.output()).toMatch(/job given back: the worker is stopping/);

    // nothing failed, nothing is left active, and the given-back jobs used no attempt
    const counts = await queue.getJobCounts('active', 'failed', 'waiting', 'delayed', 'completed');
    expect(counts.failed).toBe(0);
    expect(counts.active).toBe(0);
    expect(counts.completed).toBe(sentByFirst);
    const pending = [...(await queue.getJobs(['waiting', 'delayed']))];
    expect(pending.length).toBe(10 - sentByFirst);
    expect(pending.every((j) => j.attemptsMade === 0)).toBe(true);
    // the stopped worker sent no request after it exited
    await new Promise((r) => setTimeout(r, 1500));
    expect(env.sim.stats().requests).toBe(sentByFirst);

    const second = startCli(['worker'], env.env);
    try {
      await second.waitFor(/worker ready/);
      const status = await runCli(['status', '--run', runId, '--wait'], env.env);
      expect(status.code).toBe(0);
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0);
    }
    const stats = env.sim.stats();
    expect(stats.requests).toBe(10);
    expect(stats.inputs).toBe(TEXTS);
    expect((await runs.get(runId))?.counters).toMatchObject({ objectsIndexed: TEXTS, objectsFailed: 0, jobsDone: 10 });
    await queue.close();
  }, 240_000);

  it('a job given back after its first request buys only the requests it had not made', async () => {
    // 900 digits are 900 tokens but look like 300 to the producer's estimate: three in one
    // job, which tongyi's 1,024-token requests split into three requests
    const digits = (seed: number): string =>
      Array.from({ length: 900 }, (_, i) => String((i * 7 + seed) % 10)).join('');
    await putMany(env.s3client, BUCKET, new Map([0, 1, 2].map((i) => [`digits/d${i}.txt`, digits(i)])));
    env.sim.reset();
    const collection = `drain-digits-${env.prefix}`;
    const args = [
      'index',
      '--bucket',
      BUCKET,
      '--prefix',
      'digits/',
      '--collection',
      collection,
      '--model',
      'tongyi-embedding-vision-plus',
      '--dimension',
      '64',
    ];
    const index = await runCli(args, env.env);
    expect(index.code).toBe(0);
    const runId = runIdOf(index.stdout);
    const runs = new RunStore(env.redis, env.prefix);
    expect((await runs.get(runId))?.counters.jobsAdded).toBe(1);

    // 1,000 tokens a minute: after the first request the job waits at the limiter
    const first = startCli(['worker'], {
      ...env.env,
      MODEL_OVERRIDES: '{"tongyi-embedding-vision-plus":{"tpm":1000}}',
      DRAIN_TIMEOUT_MS: '1000',
    });
    await first.waitFor(/worker ready/);
    await until('the first request', async () => (env.sim.stats().accepted >= 1 ? true : undefined), 60_000);
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(first.output()).toMatch(/job given back/);
    expect(env.sim.stats().requests).toBe(1);

    const second = startCli(['worker'], env.env);
    try {
      await second.waitFor(/worker ready/);
      expect((await runCli(['status', '--run', runId, '--wait'], env.env)).code).toBe(0);
    } finally {
      expect(await second.stop('SIGTERM')).toBe(0);
    }
    // three texts, three requests in all: the redone job skipped the text already written
    expect(env.sim.stats()).toMatchObject({ requests: 3, inputs: 3 });
    expect((await runs.get(runId))?.counters).toMatchObject({ objectsIndexed: 3, points: 3 });
  }, 240_000);
});
