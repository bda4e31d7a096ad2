/**
 * The listing thread (list-thread.ts) seen from outside, through `mm-ingest index` against
 * MinIO behind a counting proxy:
 * - a producer paused by backpressure holds one page; the thread lists LIST_AHEAD_PAGES
 *   pages past it and then no more (the store sees no further listing request);
 * - a listing refused part-way (AccessDenied on the third page) and a missing bucket reach
 *   the command's output as the named S3 problem, and the pages listed before the refusal
 *   are queued and recorded, the failed one not.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { waitingJobs } from '../../src/backpressure.js';
import { RunStore } from '../../src/runs.js';
import { createBucket, putObject } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import type { S3Proxy } from '../support/s3-proxy.js';
import { runCli, runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'lister';
const OBJECTS = 80;
/** 10 short texts a page: one job a page. */
const PAGE = 10;
const text = (i: number): string => `reading ${i} of the weir's water gauge`;

describe('the listing thread', () => {
  let env: PipelineEnv;
  let proxy: S3Proxy;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await Promise.all(
      Array.from({ length: OBJECTS }, (_, i) =>
        putObject(env.s3client, BUCKET, `gauge/${String(i).padStart(3, '0')}.txt`, text(i)),
      ),
    );
    proxy = await startS3Proxy(env.s3.endpoint);
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    await env?.close();
  });

  const args = (collection: string, bucket = BUCKET): string[] => [
    'index',
    '--bucket',
    bucket,
    '--collection',
    collection,
    '--model',
    'qwen3-vl-embedding',
    '--dimension',
    '256',
    '--page-size',
    String(PAGE),
  ];

  it('lists LIST_AHEAD_PAGES pages past the page a paused producer holds, and no further', async () => {
    const bound = 1;
    const ahead = 3;
    const runs = new RunStore(env.redis, env.prefix);
    const queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
    const before = proxy.lists();
    const producer = startCli(args(`ahead-${env.prefix}`), {
      ...env.env,
      S3_ENDPOINT: proxy.endpoint,
      MAX_QUEUED_JOBS: String(bound),
      LIST_AHEAD_PAGES: String(ahead),
    });
    try {
      await producer.waitFor(/listing paused: the queue holds 1 jobs waiting \(MAX_QUEUED_JOBS 1\)/, 60_000);
      const runId = runIdOf(producer.output());
      // time enough for a thread that ignored its bound to list the whole bucket
      await sleep(1500);
      // the recorded page, the page held while the producer waits, and `ahead` pages listed past it
      expect(proxy.listKeyCounts().slice(before)).toEqual(Array.from({ length: bound + 1 + ahead }, () => PAGE));
      const paused = await runs.get(runId);
      expect(paused?.scanStatus).toBe('scanning');
      expect(paused?.pages).toBe(bound);
      expect(await waitingJobs(queue)).toBe(bound);
    } finally {
      await producer.stop('SIGKILL');
      await queue.close();
    }
  }, 120_000);

  it('reports a listing refused part-way and a missing bucket by their S3 codes; the pages before the refusal are queued and recorded', async () => {
    const runs = new RunStore(env.redis, env.prefix);
    const before = proxy.lists();
    // the third listing request of this run is refused, as S3 refuses it
    proxy.respond = (method, path, query) =>
      method === 'GET' &&
      (path === `/${BUCKET}` || path === `/${BUCKET}/`) &&
      query.includes('list-type=2') &&
      proxy.lists() >= before + 2
        ? {
            status: 403,
            body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><Resource>/${BUCKET}/</Resource><RequestId>LISTER0001</RequestId></Error>`,
          }
        : undefined;
    let refused;
    try {
      refused = await runCli(args(`refused-${env.prefix}`), { ...env.env, S3_ENDPOINT: proxy.endpoint });
    } finally {
      proxy.respond = () => undefined;
    }
    expect(refused.code).toBe(1);
    expect(proxy.responded()).toBe(1);
    const line = refused.stderr.trim().split('\n').pop() ?? '';
    expect(line).toContain(`ListObjectsV2 s3://${BUCKET}/ failed: AccessDenied 403: Access Denied`);
    const run = await runs.get(runIdOf(refused.stdout));
    expect(run?.scanStatus).toBe('failed');
    expect(run?.pages).toBe(2);
    expect(run?.counters.scanned).toBe(2 * PAGE);
    expect(run?.counters.jobsAdded).toBe(2);

    const missing = await runCli(args(`missing-${env.prefix}`, 'no-such-lister'), env.env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('ListObjectsV2 s3://no-such-lister/ failed: NoSuchBucket 404');
  }, 120_000);
});
