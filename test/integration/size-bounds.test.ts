/**
 * Objects too large for one worker, fed for real: `mm-ingest index --wait` and `worker` as
 * processes against MinIO, the simulator, real Redis and the Qdrant stand-in.
 *
 * - The reproduction: a 120 MB text (over the default MAX_TEXT_BYTES of 16 MiB),
 *   an image over MAX_IMAGE_BYTES and a video over the model's byte limit are skipped at
 *   scan with `too-large` and the bound named, never downloaded, and the rest is indexed.
 * - A 15 MB text under the bound is chunked beside a small text on a worker of concurrency
 *   2 with 15-second locks (the old code held the event loop about 22 s on such a text,
 *   longer on a loaded machine; these locks are renewed every 7.5 s): the small job completes and no job is reported stalled (the
 *   chunking yields to the event loop between slices, so locks are renewed).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { EMBED_QUEUE, jobObjects } from '../../src/embed-job.js';
import type { EmbedJobData } from '../../src/embed-job.js';
import { RunStore } from '../../src/runs.js';
import { prose } from '../support/corpus.js';
import { startHttpProxy } from '../support/http-proxy.js';
import { mp4, png } from '../support/media-fixtures.js';
import { allPoints } from '../support/qdrant-points.js';
import { figures, runCli, runIdOf, startCli, startPipelineEnv, stopCli } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const MB = 1_000_000;

const expectExit = (result: CliResult, code: number): void =>
  expect({ code: result.code, stderr: result.stderr.slice(-2000), stdout: result.stdout.slice(-2000) }).toMatchObject({
    code,
  });

/** A text of exactly `bytes` bytes of prose (ASCII), built from one repeated block. */
function bigText(bytes: number, seed: number): Buffer {
  const block = Buffer.from(`${prose(seed, 140_000)}\n`);
  const out = Buffer.alloc(bytes);
  for (let at = 0; at < bytes; at += block.length) block.copy(out, at, 0, Math.min(block.length, bytes - at));
  return out;
}

describe('objects over the size bounds, and a large text beside a small one', () => {
  let env: PipelineEnv;
  let qdrant: QdrantClient;
  const workers: BackgroundCli[] = [];

  beforeAll(async () => {
    env = await startPipelineEnv();
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) await stopCli(w);
    await env?.close();
  });

  it('skips a 120 MB text, an image over MAX_IMAGE_BYTES and a video over the model limit at scan, naming the bound, and indexes the rest', async () => {
    const bucket = 'bounds';
    await createBucket(env.s3client, bucket);
    const small = Array.from({ length: 5 }, (_, i) => `docs/note-${i}.txt`);
    for (const [i, key] of small.entries()) await putObject(env.s3client, bucket, key, prose(100 + i, 40));
    await putObject(env.s3client, bucket, 'images/ok.png', png(40, 30, 90));
    await putObject(env.s3client, bucket, 'books/huge.txt', bigText(120 * MB, 1));
    // a PNG header, then 3 MB the scan never reads
    await putObject(env.s3client, bucket, 'images/poster.png', Buffer.concat([png(20, 20), randomBytes(3 * MB)]));
    await putObject(env.s3client, bucket, 'videos/long.mp4', mp4(3, 51 * MB));

    const e = { ...env.env, QUEUE_PREFIX: `${env.prefix}-a`, RATE_LIMIT: 'off', MAX_IMAGE_BYTES: String(2 * MB) };
    const worker = startCli(['worker', '--concurrency', '2'], e);
    workers.push(worker);
    await worker.waitFor(/worker ready/);
    const getsBefore = (await env.s3.requestCount()).get;
    const started = Date.now();
    const result = await runCli(
      [
        'index',
        '--bucket',
        bucket,
        '--collection',
        `bounds-${env.prefix}`,
        '--model',
        MODEL,
        '--dimension',
        '256',
        '--wait',
      ],
      e,
    );
    const seconds = (Date.now() - started) / 1000;
    expectExit(result, 0);
    const gets = (await env.s3.requestCount()).get - getsBefore;

    const items = await new RunStore(env.redis, `${env.prefix}-a`).items(runIdOf(result.stdout));
    const skipped = Object.fromEntries(
      [...items].filter(([, o]) => o.status === 'skipped').map(([k, o]) => [k, `${o.code}: ${o.reason}`]),
    );
    expect(skipped).toEqual({
      'books/huge.txt': `too-large: text of ${120 * MB} bytes is over MAX_TEXT_BYTES (${16 * 1024 * 1024} bytes): not read; split it, or raise MAX_TEXT_BYTES`,
      'images/poster.png': `too-large: image of ${png(20, 20).length + 3 * MB} bytes is over MAX_IMAGE_BYTES (${2 * MB} bytes): not read; shrink it, or raise MAX_IMAGE_BYTES`,
      'videos/long.mp4': `too-large: video of ${mp4(3, 51 * MB).length} bytes is over ${MODEL}'s limit of 50000000 bytes`,
    });
    const points = await allPoints(qdrant, `bounds-${env.prefix}`);
    expect(points.map((p) => String(p.payload.key)).sort()).toEqual([...small, 'images/ok.png'].sort());
    // nothing over a bound was downloaded: one GET per indexed object
    expect(gets).toBe(small.length + 1);
    figures(
      `too-large at scan: index --wait exit ${result.code} in ${seconds.toFixed(1)} s, ${gets} GETs for ${small.length + 1} indexed objects; skipped: ${JSON.stringify(skipped)}`,
    );
  }, 300_000);

  it('chunks a 15 MB text beside a small one on a worker of concurrency 2 and 15 s locks: both complete, no job stalls', async () => {
    // (names without "lock" or "stall": the worker's lines are searched for those words below)
    const bucket = 'bounds-beside';
    await createBucket(env.s3client, bucket);
    const big = bigText(15 * MB, 2);
    await putObject(env.s3client, bucket, 'a/small.txt', prose(7, 30));
    await putObject(env.s3client, bucket, 'b/big.txt', big);
    const prefix = `${env.prefix}-b`;
    const collection = `beside-${env.prefix}`;
    // a gate in front of the simulator: every request waits there until two are held, so the
    // small job's request is in flight while the big one is chunked (its first request comes after)
    const api = await startHttpProxy(env.sim.url);
    api.holdAfter(0);
    const e = {
      ...env.env,
      QUEUE_PREFIX: prefix,
      RATE_LIMIT: 'off',
      LOCK_DURATION_MS: '15000',
      LOG_LEVEL: 'warn',
      DASHSCOPE_BASE_URL: api.url,
    };

    const connection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const eventsConnection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const events = new QueueEvents(EMBED_QUEUE, { connection: eventsConnection, prefix });
    const queue = new Queue<EmbedJobData>(EMBED_QUEUE, { connection, prefix });
    const stalled: string[] = [];
    let onStall: (id: string) => void = () => undefined;
    events.on('stalled', ({ jobId }) => {
      stalled.push(jobId);
      onStall(jobId);
    });
    await events.waitUntilReady();
    try {
      const worker = startCli(['worker', '--concurrency', '2'], e);
      workers.push(worker);
      await worker.waitFor(/worker ready/);
      const started = Date.now();
      const indexing = runCli(
        ['index', '--bucket', bucket, '--collection', collection, '--model', MODEL, '--dimension', '256', '--wait'],
        e,
      );
      // a stalled job fails the test at once (on a blocked event loop it would stall over and over)
      const firstStall = new Promise<string>((resolve) => (onStall = resolve));
      const gate = (async (): Promise<void> => {
        while (api.held() < 2 && stalled.length === 0) await sleep(50);
        api.release();
      })();
      const outcome = await Promise.race([
        indexing.then((r) => ({ r })),
        firstStall.then((id) => ({ stalledJob: id })),
      ]);
      api.release();
      await gate;
      const seconds = (Date.now() - started) / 1000;
      expect({
        stalled,
        worker: worker
          .output()
          .split('\n')
          .filter((l) => /lock|stall/i.test(l)),
      }).toEqual({ stalled: [], worker: [] });
      const result = (outcome as { r: CliResult }).r;
      expectExit(result, 0);

      const run = await new RunStore(env.redis, prefix).get(runIdOf(result.stdout));
      expect(run?.counters).toMatchObject({ objectsIndexed: 2, objectsFailed: 0, objectsSkipped: 0 });
      const completed = await queue.getJobs(['completed']);
      expect(
        completed
          .map((j) => jobObjects(j.data).map((o) => o[0]))
          .flat()
          .sort(),
      ).toEqual(['a/small.txt', 'b/big.txt']);
      expect(await queue.getJobCounts('failed', 'active', 'wait', 'delayed')).toEqual({
        failed: 0,
        active: 0,
        wait: 0,
        delayed: 0,
      });

      // the big text's chunks cover it end to end, in order, without a gap
      const chunks = (await allPoints(qdrant, collection))
        .filter((p) => p.payload.key === 'b/big.txt')
        .sort((x, y) => Number(x.payload.chunk) - Number(y.payload.chunk));
      expect(chunks.length).toBeGreaterThan(50);
      expect(chunks.every((p, i) => p.payload.chunk === i && p.payload.chunk_count === chunks.length)).toBe(true);
      expect(chunks[0]?.payload.char_start).toBe(0);
      expect(chunks.at(-1)?.payload.char_end).toBe(big.length);
      for (let i = 1; i < chunks.length; i++)
        expect(chunks[i]?.payload.char_start).toBe(chunks[i - 1]?.payload.char_end);
      figures(
        `15 MB text beside a small one, concurrency 2, LOCK_DURATION_MS 15000: exit ${result.code} in ${seconds.toFixed(1)} s, ${chunks.length} chunks, ${stalled.length} stalled`,
      );
    } finally {
      api.release();
      await api.close();
      await events.close();
      await queue.close();
      await connection.quit();
      await eventsConnection.quit();
    }
  }, 300_000);

  it('reads no more than the bound of an object that grew past it after the scan, and an object emptied meanwhile as zero bytes', async () => {
    const bucket = 'bounds-grew';
    await createBucket(env.s3client, bucket);
    await putObject(env.s3client, bucket, 'grew.txt', prose(11, 20));
    await putObject(env.s3client, bucket, 'emptied.txt', prose(12, 20));
    await putObject(env.s3client, bucket, 'grew.png', png(30, 30, 10));
    await putObject(env.s3client, bucket, 'kept.txt', prose(13, 20));
    const prefix = `${env.prefix}-c`;
    const e = {
      ...env.env,
      QUEUE_PREFIX: prefix,
      RATE_LIMIT: 'off',
      MAX_TEXT_BYTES: '100000',
      MAX_IMAGE_BYTES: '100000',
    };
    // scanned and queued with no worker running; then the objects change before a worker reads them
    const queued = await runCli(
      ['index', '--bucket', bucket, '--collection', `grew-${env.prefix}`, '--model', MODEL, '--dimension', '256'],
      e,
    );
    expectExit(queued, 0);
    await putObject(env.s3client, bucket, 'grew.txt', bigText(5 * MB, 3));
    await putObject(env.s3client, bucket, 'emptied.txt', '');
    await putObject(env.s3client, bucket, 'grew.png', Buffer.concat([png(30, 30, 10), randomBytes(MB)]));
    const worker = startCli(['worker', '--concurrency', '2'], e);
    workers.push(worker);
    await worker.waitFor(/worker ready/);
    const runId = runIdOf(queued.stdout);
    const waited = await runCli(['status', '--run', runId, '--wait'], e);
    expectExit(waited, 0);
    const items = await new RunStore(env.redis, prefix).items(runId);
    expect(Object.fromEntries([...items].map(([k, o]) => [k, `${o.code}: ${o.reason}`]))).toEqual({
      'grew.txt':
        'too-large: text grew past MAX_TEXT_BYTES (100000 bytes) after the scan: not read further; raise MAX_TEXT_BYTES to index it',
      'grew.png':
        'too-large: image grew past MAX_IMAGE_BYTES (100000 bytes) after the scan: not read further; raise MAX_IMAGE_BYTES to index it',
      'emptied.txt': 'zero-bytes: zero-byte text',
    });
    const points = await allPoints(qdrant, `grew-${env.prefix}`);
    expect(points.map((p) => p.payload.key)).toEqual(['kept.txt']);
  }, 180_000);
});
