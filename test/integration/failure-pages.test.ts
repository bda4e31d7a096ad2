/**
 * A run with many failures, read by pages: `failures --limit` lists them a page at a time
 * (each failure on exactly one page), `status` shows the per-code counts kept as items are
 * written (rewritten items move between counts, not add to them), and `retry-failed`
 * queues every failure again exactly once, through the producer's queuing (packed jobs of
 * the new run, its job ids), marking each retried; a second retry finds nothing left.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { jobNumber, jobObjects } from '../../src/embed-job.js';
import type { EmbedJobData, EmbedSettings } from '../../src/embed-job.js';
import { RunStore } from '../../src/runs.js';
import type { ItemOutcome } from '../../src/runs.js';
import { qdrantForTest } from '../support/qdrant.js';
import type { QdrantForTest } from '../support/qdrant.js';
import { runCli, TEST_API_KEY } from '../support/pipeline.js';

const FAILED = 600;
const SKIPPED = 300;
const key = (i: number): string => `pages/doc-${String(i).padStart(5, '0')}.txt`;

describe('failures by pages', () => {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  const prefix = `test-fpages-${randomUUID().slice(0, 8)}`;
  const collection = `fpages-${prefix}`;
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
      bucket: 'pages',
      prefix: 'pages/',
      collection,
      model: settings.model,
      dimension: 256,
      startedAt: new Date().toISOString(),
      settings: JSON.stringify(settings),
    });
    const items = new Map<string, ItemOutcome>();
    for (let i = 0; i < FAILED; i++)
      items.set(key(i), {
        status: 'failed',
        code: i % 3 === 0 ? 'DataInspectionFailed' : 'InternalError',
        reason: `the request of ${key(i)} failed`,
        object: [key(i), `etag${i}`, 100 + i, Date.UTC(2026, 0, 1) + i * 1000, 't'],
      });
    for (let i = FAILED; i < FAILED + SKIPPED; i++)
      items.set(key(i), { status: 'skipped', code: 'too-large', reason: 'over MAX_TEXT_BYTES' });
    await runs.recordItems('R1', items);
    // a page listed twice records its skips again: counted once
    await runs.recordItems('R1', new Map([...items].slice(FAILED, FAILED + 50)));
    await runs.scanFinished('R1', 'complete');
  }, 60_000);

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await qdrant?.close();
  });

  it('lists the failures a page at a time and keeps per-code counts', async () => {
    const counts = Object.fromEntries((await runs.codeCounts('R1')).map((c) => [`${c.status}:${c.code}`, c.count]));
    expect(counts).toEqual({
      'failed:DataInspectionFailed': 200,
      'failed:InternalError': 400,
      'skipped:too-large': 300,
    });

    const seen: string[] = [];
    const pages: number[] = [];
    let cursor: string | null = '0';
    while (cursor !== null) {
      const r = await runCli(['failures', '--run', 'R1', '--limit', '200', '--cursor', cursor, '--json'], env);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      const page = JSON.parse(r.stdout) as {
        failedObjects: number;
        items: Record<string, ItemOutcome>;
        next: string | null;
      };
      expect(page.failedObjects).toBe(FAILED);
      expect(Object.values(page.items).every((o) => o.status === 'failed')).toBe(true);
      pages.push(Object.keys(page.items).length);
      seen.push(...Object.keys(page.items));
      cursor = page.next;
      expect(pages.length).toBeLessThan(50);
    }
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(seen).toHaveLength(FAILED); // each on one page only
    expect(new Set(seen)).toEqual(new Set(Array.from({ length: FAILED }, (_, i) => key(i))));

    const status = await runCli(['status', '--run', 'R1', '--json'], env);
    const shown = JSON.parse(status.stdout) as { itemCounts: unknown[]; items: Record<string, unknown> };
    expect(shown.itemCounts).toHaveLength(3);
    expect(Object.keys(shown.items).length).toBeLessThanOrEqual(20);
  }, 120_000);

  it('retry-failed queues every failure exactly once, as packed jobs of the new run', async () => {
    const retry = await runCli(['retry-failed', '--run', 'R1'], { ...env, MAX_QUEUED_JOBS: '0' });
    expect({ code: retry.code, stderr: retry.stderr }).toEqual({ code: 0, stderr: '' });
    const said = /run (\S+): retrying 600 failed objects of run R1 in (\d+) jobs/.exec(retry.stdout);
    expect(said).not.toBeNull();
    const newId = said![1]!;
    const jobCount = Number(said![2]);
    // 10 objects a retry job, the last of each page of items maybe fewer
    expect(jobCount).toBeGreaterThanOrEqual(60);
    expect(jobCount).toBeLessThan(70);

    const queue = new Queue<EmbedJobData>('embed', { connection: redis, prefix });
    try {
      const jobs = await queue.getWaiting(0, -1);
      expect(jobs).toHaveLength(jobCount);
      const queued = jobs.flatMap((j) => jobObjects(j.data).map((o) => o[0]));
      expect(queued).toHaveLength(FAILED);
      expect(new Set(queued).size).toBe(FAILED);
      for (const j of jobs) {
        expect(j.id?.startsWith(`${newId}.`)).toBe(true);
        // (n: the job's number in its run, by which its result counts once)
        expect(Object.keys(j.data).sort()).toEqual(['n', 'o', 'runId', 'v']);
        expect(Number.isSafeInteger(jobNumber(j.data))).toBe(true);
        expect(jobObjects(j.data).length).toBeLessThanOrEqual(10);
      }
    } finally {
      await queue.close();
    }
    const counts = Object.fromEntries((await runs.codeCounts('R1')).map((c) => [`${c.status}:${c.code}`, c.count]));
    expect(counts).toEqual({
      'retried:DataInspectionFailed': 200,
      'retried:InternalError': 400,
      'skipped:too-large': 300,
    });
    const run = (await runs.get(newId))!;
    expect(run.counters).toMatchObject({ scanned: FAILED, queuedObjects: FAILED, jobsAdded: jobCount });
    expect(run.scanStatus).toBe('complete');

    const again = await runCli(['retry-failed', '--run', 'R1'], env);
    expect(again.stdout).toContain('run R1: no failed objects to retry');
  }, 120_000);
});
