/**
 * Backpressure (MAX_QUEUED_JOBS): a producer with no worker to take its jobs stops listing
 * once the queue holds its bound, says so, and stays resumable: killed (SIGKILL) while it
 * waits and started again with the same run while a worker drains the queue, it queues
 * the rest, and every object is embedded exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { waitingJobs } from '../../src/backpressure.js';
import { DEFAULT_LIST_AHEAD } from '../../src/list-thread.js';
import { RunStore } from '../../src/runs.js';
import { createBucket, putObject } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'backpressure';
const OBJECTS = 240;
/** One job per page: a page of 20 short texts is one request. */
const PAGE = 20;
const BOUND = 3;
const text = (i: number): string => `note ${i} on the tides of the northern harbor`;

describe('backpressure', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv({ captureRequests: 1000 });
    await createBucket(env.s3client, BUCKET);
    for (let i = 0; i < OBJECTS; i += 40) {
      await Promise.all(
        Array.from({ length: 40 }, (_, k) =>
          putObject(env.s3client, BUCKET, `notes/${String(i + k).padStart(4, '0')}.txt`, text(i + k)),
        ),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('pauses the listing at MAX_QUEUED_JOBS, survives a SIGKILL while paused, and embeds every object once', async () => {
    const collection = `bp-${env.prefix}`;
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
    ];
    const bounded = { ...env.env, MAX_QUEUED_JOBS: String(BOUND) };
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const proxy = await startS3Proxy(env.s3.endpoint);
    try {
      // 1. no worker: the producer queues BOUND pages' jobs, then waits, listing nothing more
      const producer = startCli(args, { ...bounded, S3_ENDPOINT: proxy.endpoint });
      await producer.waitFor(/listing paused: the queue holds 3 jobs waiting \(MAX_QUEUED_JOBS 3\)/, 60_000);
      const runId = /run (\S+): scanning/.exec(producer.output())![1]!;
      await sleep(1500);
      const paused = await runs.get(runId);
      expect(paused?.scanStatus).toBe('scanning');
      expect(paused?.scanWaiting).toMatchObject({ waiting: BOUND, bound: BOUND });
      expect(paused?.pages).toBe(BOUND);
      expect(paused?.counters.jobsAdded).toBe(BOUND);
      expect(await waitingJobs(queue)).toBe(BOUND);
      // the pages it recorded, the one it holds while it waits and the LIST_AHEAD_PAGES its
      // listing thread listed ahead meanwhile: nothing beyond
      expect(proxy.listKeyCounts()).toEqual(Array.from({ length: BOUND + 1 + DEFAULT_LIST_AHEAD }, () => PAGE));
      const status = await runCli(['status', '--run', runId], env.env);
      expect(status.stdout).toContain('scanning (paused: 3 jobs waiting, bound 3)');

      // 2. killed while it waits: the run stays resumable after its last recorded page
      await producer.stop('SIGKILL');
      const killed = await runs.get(runId);
      expect(killed?.lastToken).toBeDefined();
      expect(killed?.pages).toBe(BOUND);

      // 3. a worker drains the queue and the same run goes on, still bounded, to its end
      const worker = startCli(['worker'], env.env);
      try {
        await worker.waitFor(/worker ready/);
        const resumed = await runCli([...args, '--run-id', runId, '--wait'], bounded);
        expect(resumed.code).toBe(0);
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
    } finally {
      await proxy.close();
      await queue.close();
    }
    const runId = (await runs.latest(1))[0]!;
    const run = await runs.get(runId);
    expect(run?.scanStatus).toBe('complete');
    expect(run?.scanWaiting).toBeUndefined();
    expect(run?.counters.scanned).toBe(OBJECTS);
    expect(run?.counters.queuedObjects).toBe(OBJECTS);
    expect(run?.counters.jobsAdded).toBe(OBJECTS / PAGE);
    expect(run?.counters.jobsDone).toBe(OBJECTS / PAGE);
    expect(run?.counters.objectsIndexed).toBe(OBJECTS);
    expect(run?.counters.scanWaits).toBeGreaterThanOrEqual(1);
    // every object's text reached the API exactly once
    const sent = env.sim
      .requests()
      .flatMap((r) =>
        ((r.body as { input?: { contents?: unknown[] } } | undefined)?.input?.contents ?? []).map((c) =>
          typeof c === 'string' ? c : JSON.stringify(c),
        ),
      );
    expect(sent.length).toBe(OBJECTS);
    expect(new Set(sent).size).toBe(OBJECTS);
    expect(new Set(sent)).toEqual(new Set(Array.from({ length: OBJECTS }, (_, i) => text(i))));
    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    expect((await qdrant.count(collection, { exact: true })).count).toBe(OBJECTS);
  }, 240_000);
});
