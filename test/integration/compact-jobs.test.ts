/**
 * Compact jobs: a queued embed job holds its run id and its objects packed, never the
 * run's settings (a 2,000-character instruct is stored once, in the run record), and a
 * worker of this version still runs a job queued by the version before (format 1, settings
 * inside), and refuses one of an unknown format with the reason, going on with the others.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { EMBED_JOB_OPTIONS, jobNumber, jobObjects, toTuple } from '../../src/embed-job.js';
import type { EmbedJobData, EmbedSettings } from '../../src/embed-job.js';
import { RunStore, isFinished } from '../../src/runs.js';
import { classify } from '../../src/scanner.js';
import { resolveModel } from '../../src/models.js';
import { createBucket, putObject } from '../support/s3.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'compact-jobs';
const INSTRUCT =
  `Represent the archive note for retrieval by harbor, vessel and date. ${'Keep names exact. '.repeat(105)}`.slice(
    0,
    2000,
  );

describe('compact embed jobs', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        putObject(
          env.s3client,
          BUCKET,
          `archive/harbor-logs/1931/entry-${String(i).padStart(4, '0')}.txt`,
          `log entry ${i}: the steamer arrived at dawn`,
        ),
      ),
    );
    await Promise.all(
      Array.from({ length: 3 }, (_, i) =>
        putObject(env.s3client, BUCKET, `old/entry-${i}.txt`, `an entry queued by the old version, number ${i}`),
      ),
    );
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('queue the run id and packed objects only, and a new worker runs old-format jobs and refuses unknown ones', async () => {
    const collection = `compact-${env.prefix}`;
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue<EmbedJobData>('embed', { connection: env.redis, prefix: env.prefix });
    try {
      // 1. a run with a 2,000-character instruct, no worker: its one job of 20 objects
      const indexed = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--prefix',
          'archive/',
          '--collection',
          collection,
          '--model',
          'qwen3-vl-embedding',
          '--dimension',
          '256',
          '--instruct',
          INSTRUCT,
        ],
        env.env,
      );
      expect(indexed.code).toBe(0);
      const runId = /run (\S+): scanning/.exec(indexed.stdout)![1]!;
      const [job, ...others] = await queue.getJobs(['waiting']);
      expect(others).toEqual([]);
      const raw = await env.redis.hget(`${env.prefix}:embed:${job!.id!}`, 'data');
      // (n: the job's number in its run, by which its result counts once)
      expect(Object.keys(JSON.parse(raw!) as object).sort()).toEqual(['n', 'o', 'runId', 'v']);
      expect(Number.isSafeInteger(jobNumber(JSON.parse(raw!)))).toBe(true);
      expect(raw).not.toContain('instruct');
      expect(raw).not.toContain('Keep names exact');
      expect(raw).not.toContain(collection);
      // size: about 40 bytes an object (these keys are 44 characters long)
      expect(raw!.length).toBeLessThanOrEqual(20 * 45 + 60);
      const hashBytes = Number(await env.redis.memory('USAGE', `${env.prefix}:embed:${job!.id!}`, 'SAMPLES', '0'));
      expect(hashBytes).toBeLessThan(2048);
      // the instruct is in the run record, once
      expect((JSON.parse((await runs.get(runId))!.settings!) as EmbedSettings).instruct).toBe(INSTRUCT);
      // lossless: the job's objects are exactly what the listing said
      const listed = await env.s3client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'archive/' }));
      const model = resolveModel('qwen3-vl-embedding');
      const expected = (listed.Contents ?? []).map((c) =>
        classify(
          {
            bucket: BUCKET,
            key: c.Key!,
            etag: c.ETag!.replace(/"/g, ''),
            size: c.Size!,
            lastModified: new Date(Math.floor(c.LastModified!.getTime() / 1000) * 1000).toISOString(),
          },
          model,
        ),
      );
      // (the store lists times in whole seconds, as s3-store.ts reads them)
      expect(jobObjects(job!.data)).toEqual(expected.map((o) => toTuple(o as Parameters<typeof toTuple>[0])));

      // 2. what the version before queued (format 1: bucket and settings in the job) for a run of its own
      const oldRun = 'OLDFORMAT1';
      const oldSettings: EmbedSettings = {
        collection,
        model: 'qwen3-vl-embedding',
        dimension: 256,
        chunkOverlap: 0,
        imageMode: 'inline',
        maxBodyBytes: 6_291_456,
      };
      await runs.create({
        id: oldRun,
        bucket: BUCKET,
        prefix: 'old/',
        collection,
        model: 'qwen3-vl-embedding',
        dimension: 256,
        startedAt: new Date().toISOString(),
        settings: JSON.stringify(oldSettings),
      });
      const oldObjects = await env.s3client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'old/' }));
      const tuples = (oldObjects.Contents ?? []).map(
        (c) =>
          [c.Key!, c.ETag!.replace(/"/g, ''), c.Size!, c.LastModified!.getTime(), 't'] as [
            string,
            string,
            number,
            number,
            't',
          ],
      );
      const oldJobId = `${oldRun}.0123456789abcdef0123456789abcdef`;
      await queue.add(
        'embed',
        { v: 1, runId: oldRun, bucket: BUCKET, settings: oldSettings, objects: tuples },
        { ...EMBED_JOB_OPTIONS, jobId: oldJobId },
      );
      await runs.newJobs(oldRun, [oldJobId]);
      await runs.pageDone(oldRun, { scanned: 3, queuedObjects: 3, jobsAdded: 1 });
      await runs.scanFinished(oldRun, 'complete');
      // 3. and a job of a format this version does not know
      const future = await queue.add('embed', { v: 3, runId: 'FUTURE', packed: 'x' } as unknown as EmbedJobData, {
        ...EMBED_JOB_OPTIONS,
        jobId: 'FUTURE.1',
      });

      const worker = startCli(['worker'], env.env);
      try {
        for (let i = 0; i < 600; i++) {
          const [a, b] = [await runs.get(runId), await runs.get(oldRun)];
          if (a && b && isFinished(a) && isFinished(b) && (await future.getState()) === 'failed') break;
          await sleep(100);
        }
      } finally {
        expect(await worker.stop('SIGTERM')).toBe(0);
      }
      expect((await runs.get(runId))?.counters).toMatchObject({ objectsIndexed: 20, objectsFailed: 0, jobsDone: 1 });
      expect((await runs.get(oldRun))?.counters).toMatchObject({ objectsIndexed: 3, objectsFailed: 0, jobsDone: 1 });
      const failed = await queue.getJob('FUTURE.1');
      expect(failed?.failedReason).toContain('embed job of format 3: this worker runs formats 1 and 2');
      expect(failed?.attemptsMade).toBe(1);
      const qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
      expect((await qdrant.count(collection, { exact: true })).count).toBe(23);
    } finally {
      await queue.close();
    }
  }, 180_000);
});
