/**
 * A producer killed in the middle of its scan, then started again with the same run:
 * the scan continues after the last queued page instead of starting over, and nothing
 * is lost or queued twice.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { RunStore } from '../../src/runs.js';
import { createBucket, putObject } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'resume';
const OBJECTS = 600;
const PAGE = 10;

describe('resuming an interrupted scan', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    for (let i = 0; i < OBJECTS; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, k) =>
          putObject(
            env.s3client,
            BUCKET,
            `docs/${String(i + k).padStart(4, '0')}.txt`,
            `document number ${i + k} about harbors and engines`,
          ),
        ),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('continues from the last queued page and queues every object exactly once', async () => {
    const collection = `resume-${env.prefix}`;
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
    const runs = new RunStore(env.redis, env.prefix);

    // 1. start the producer and kill it once a few pages are queued
    const producer = startCli(args, env.env);
    await producer.waitFor(/run \S+: scanning/);
    const runId = /run (\S+): scanning/.exec(producer.output())![1]!;
    for (let i = 0; i < 400; i++) {
      const run = await runs.get(runId);
      if ((run?.pages ?? 0) >= 3) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await producer.stop('SIGKILL');
    const interrupted = await runs.get(runId);
    expect(interrupted?.scanStatus).toBe('scanning');
    expect(interrupted?.pages).toBeGreaterThanOrEqual(3);
    expect(interrupted?.pages).toBeLessThan(OBJECTS / PAGE);
    expect(interrupted?.lastToken).toBeDefined();

    // 2. the same run again: only the remaining pages are listed, counted by a proxy that
    // only the resumed producer uses (a listing the killed one left in flight is not its)
    const proxy = await startS3Proxy(env.s3.endpoint);
    const remaining = OBJECTS / PAGE - interrupted!.pages;
    let counts: number[];
    try {
      const resumed = await runCli([...args, '--run-id', runId], { ...env.env, S3_ENDPOINT: proxy.endpoint });
      expect(resumed.code).toBe(0);
      counts = proxy.listKeyCounts();
    } finally {
      await proxy.close();
    }
    // every remaining page once; a store may answer the exact end with one more, empty page
    // (MinIO says IsTruncated on a last page that is full, and the next listing is empty)
    const emptyTail = counts.length > remaining ? 1 : 0;
    expect(counts).toEqual([...Array.from({ length: remaining }, () => PAGE), ...(emptyTail ? [0] : [])]);

    const run = await runs.get(runId);
    expect(run?.scanStatus).toBe('complete');
    expect(run?.counters.scanned).toBe(OBJECTS);
    expect(run?.counters.queuedObjects).toBe(OBJECTS);
    expect(run?.pages).toBe(OBJECTS / PAGE + emptyTail);

    // 3. a worker indexes them all: every object once
    const worker = startCli(['worker'], env.env);
    try {
      const waited = await runCli(['status', '--run', runId, '--wait'], env.env);
      expect(waited.code).toBe(0);
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
    }
    const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    expect((await qdrant.count(collection, { exact: true })).count).toBe(OBJECTS);
    const done = await runs.get(runId);
    expect(done?.counters.objectsIndexed).toBe(OBJECTS);
    expect(done?.counters.jobsDone).toBe(done?.counters.jobsAdded);
  }, 300_000);
});
