/**
 * `--group-images pattern:REGEX` and a reindex job's `groupImages` come from whoever can run
 * the CLI or write to Redis. Fed for real: a pattern that backtracks catastrophically on
 * JavaScript's engine (`^long/(a+)+$` against a key of 40 a's and a `!`: 2^40 steps there) must
 * neither freeze the producer nor the worker that runs a reindex job; patterns the
 * linear-time engine cannot run (backreferences, lookarounds), over the length bound or
 * too costly are refused with the reason, exit code 2 on the command line and a failed
 * job naming `groupImages` from the queue, and the worker goes on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'patterns';
const MODEL = 'tongyi-embedding-vision-plus';
const CATASTROPHIC = 'pattern:^long/(a+)+$';
const LONG_KEY = `long/${'a'.repeat(40)}!.jpg`;

/** The patterns refused, and the reason each must give. */
const REFUSED: readonly [string, RegExp][] = [
  ['pattern:^long/(a)\\1', /invalid regular expression: .*invalid escape sequence: `\\1`/],
  ['pattern:^long/(?=a)(a+)', /invalid regular expression: .*unsupported Perl syntax: `\(\?=`/],
  ['pattern:^long/(?<!b)(a+)', /invalid regular expression: .*invalid named capture/],
  [`pattern:^long/(${'a'.repeat(1100)})`, /the pattern has 1,\d{3} characters: at most 1,000/],
  ['pattern:^long/((.*){100})', /the pattern is too costly to run on every key \(program size \d+, at most 200\)/],
];

function photo(i: number): Promise<Buffer> {
  return sharp({
    create: { width: 32 + i, height: 32, channels: 3, background: { r: i * 40, g: 90, b: 200 - i * 30 } },
  })
    .jpeg()
    .toBuffer();
}

describe('key patterns from users and from the queue', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await putObject(env.s3client, BUCKET, LONG_KEY, await photo(1));
    await putObject(env.s3client, BUCKET, 'long/aaaa', await photo(2)); // not an image key: unsupported
    await putObject(env.s3client, BUCKET, 'views/front/boot.jpg', await photo(3));
    await putObject(env.s3client, BUCKET, 'views/side/boot.jpg', await photo(4));
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('runs a catastrophic pattern from the command line in linear time: the run ends, the key is embedded alone', async () => {
    const worker = startCli(['worker'], env.env);
    const producer = startCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--prefix',
        'long/',
        '--collection',
        `cli-${env.prefix}`,
        '--model',
        MODEL,
        '--dimension',
        '64',
        '--group-images',
        CATASTROPHIC,
        '--wait',
      ],
      env.env,
    );
    try {
      await worker.waitFor(/worker ready/);
      const started = Date.now();
      const code = await producer.exited();
      console.log(
        `index --group-images '${CATASTROPHIC}' over ${LONG_KEY}: exit ${code} after ${Date.now() - started} ms`,
      );
      expect({ code, output: producer.output() }).toEqual({
        code: 0,
        output: expect.stringMatching(/scanned 2 objects \(1 skipped[^\n]*\n[\s\S]*finished/),
      });
    } finally {
      await producer.stop('SIGKILL');
      expect(await worker.stop('SIGTERM')).toBe(0);
    }
  }, 120_000);

  it('groups with a named item group on the linear-time engine as before', async () => {
    const worker = startCli(['worker'], env.env);
    try {
      await worker.waitFor(/worker ready/);
      const res = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--prefix',
          'views/',
          '--collection',
          `views-${env.prefix}`,
          '--model',
          MODEL,
          '--dimension',
          '64',
          '--group-images',
          'pattern:^views/[^/]+/(?<item>\\w+)\\.jpg$',
          '--wait',
        ],
        env.env,
      );
      expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: '' });
      // two images, one item: one job of one unit
      expect(res.stdout).toMatch(/queued 2 in 1 jobs/);
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
    }
  }, 120_000);

  it('refuses patterns it cannot run safely, with the reason, exit 2', async () => {
    const limit = pLimit(3);
    const results = await Promise.all(
      REFUSED.map(([rule, reason]) =>
        limit(async () => ({
          rule,
          reason,
          res: await runCli(
            [
              'index',
              '--bucket',
              BUCKET,
              '--collection',
              `refused-${env.prefix}`,
              '--model',
              MODEL,
              '--group-images',
              rule,
            ],
            env.env,
          ),
        })),
      ),
    );
    for (const { rule, reason, res } of results) {
      expect({ rule: rule.slice(0, 40), code: res.code, stdout: res.stdout, stderr: res.stderr }).toEqual({
        rule: rule.slice(0, 40),
        code: 2,
        stdout: '',
        stderr: expect.stringMatching(
          new RegExp(`^mm-ingest: configuration error: --group-images: ${reason.source}[^\\n]*\\n$`),
        ),
      });
    }
  }, 120_000);

  it('takes the same from a reindex job added with BullMQ: the catastrophic one runs, the others fail naming groupImages, the worker goes on', async () => {
    const connection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const queue = new Queue('reindex', { connection, prefix: env.prefix });
    const worker = startCli(['worker'], env.env);
    const settled = async (job: Job): Promise<Job> => {
      for (let i = 0; i < 900; i++) {
        const state = await queue.getJobState(job.id!);
        if (state === 'completed' || state === 'failed') return (await queue.getJob(job.id!))!;
        await sleep(100);
      }
      throw new Error(`job ${job.id} did not settle: ${worker.output()}`);
    };
    try {
      await worker.waitFor(/worker ready/);
      const base = { bucket: BUCKET, prefix: 'long/', model: MODEL, dimension: 64 };
      const started = Date.now();
      const catastrophic = await settled(
        await queue.add('reindex', { ...base, collection: `job-${env.prefix}`, groupImages: CATASTROPHIC }),
      );
      console.log(
        `reindex job groupImages '${CATASTROPHIC}': ${await catastrophic.getState()} after ${Date.now() - started} ms`,
      );
      expect({ state: await catastrophic.getState(), failedReason: catastrophic.failedReason }).toEqual({
        state: 'completed',
        failedReason: undefined,
      });
      const runId = (catastrophic.returnvalue as { runId: string }).runId;
      const followed = await runCli(['status', '--run', runId, '--wait'], env.env);
      expect({ code: followed.code, stderr: followed.stderr }).toEqual({ code: 0, stderr: '' });

      for (const [rule, reason] of REFUSED) {
        const job = await settled(
          await queue.add('reindex', { ...base, collection: `refused-${env.prefix}`, groupImages: rule }),
        );
        expect({ rule: rule.slice(0, 40), state: await job.getState(), failedReason: job.failedReason }).toEqual({
          rule: rule.slice(0, 40),
          state: 'failed',
          failedReason: expect.stringMatching(new RegExp(`^malformed reindex job: groupImages: ${reason.source}`)),
        });
      }
      // far too long for anyone: refused before it is compiled
      const huge = await settled(
        await queue.add('reindex', {
          ...base,
          collection: `refused-${env.prefix}`,
          groupImages: `pattern:(${'a'.repeat(100_000)})`,
        }),
      );
      expect(huge.failedReason).toMatch(
        /^malformed reindex job: groupImages: the pattern has 100,\d{3} characters: at most 1,000/,
      );

      const good = await settled(
        await queue.add('reindex', {
          ...base,
          prefix: 'views/',
          collection: `good-${env.prefix}`,
          groupImages: 'pattern:^views/[^/]+/(\\w+)\\.jpg$',
        }),
      );
      expect({ state: await good.getState(), failedReason: good.failedReason }).toEqual({
        state: 'completed',
        failedReason: undefined,
      });
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
      await queue.close();
      connection.disconnect();
    }
  }, 180_000);
});
