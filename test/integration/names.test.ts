/**
 * Names from users that are inherited property names of every JavaScript object
 * (`constructor`, `__proto__`, `toString`, `hasOwnProperty`), fed for real: as model names
 * on the command line, in MODEL_OVERRIDES, in reindex jobs added with BullMQ, and as S3
 * keys and extensions in a bucket. Each is an ordinary unknown name: a configuration error
 * naming it (and listing the known models), a malformed job naming the field, or an object
 * skipped as unsupported like any other.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import type { Job } from 'bullmq';
import { Redis } from 'ioredis';
import pLimit from 'p-limit';
import { MODEL_NAMES } from '../../src/models.js';
import { RunStore } from '../../src/runs.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'names';
const INHERITED = ['constructor', '__proto__', 'toString', 'hasOwnProperty'] as const;
const KNOWN = `(known: ${MODEL_NAMES.join(', ')})`;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('inherited property names as user input', () => {
  let env: PipelineEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    // keys and extensions that are property names of Object.prototype
    await putObject(env.s3client, BUCKET, '__proto__', 'a key that is __proto__');
    await putObject(env.s3client, BUCKET, 'constructor', 'a key that is constructor');
    await putObject(env.s3client, BUCKET, 'photo.constructor', 'not a photo');
    await putObject(env.s3client, BUCKET, 'photo.__proto__', 'not a photo either');
    await putObject(env.s3client, BUCKET, 'notes.hasOwnProperty', 'nor this');
    await putObject(env.s3client, BUCKET, 'toString.txt', 'A text whose name is toString.');
    await putObject(env.s3client, BUCKET, '__proto__.txt', 'A text whose name is __proto__.');
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  it('refuses them as model names on every command that takes one, naming the model and the known ones (exit 2)', async () => {
    const cases: string[][] = [
      ...INHERITED.map((m) => ['index', '--bucket', BUCKET, '--collection', 'names', '--model', m]),
      ['estimate', '--bucket', BUCKET, '--model', 'constructor'],
      ['reindex', '--bucket', BUCKET, '--collection', 'names', '--model', '__proto__'],
      [
        'schedule',
        'add',
        '--name',
        'n',
        '--cron',
        '0 2 * * *',
        '--bucket',
        BUCKET,
        '--collection',
        'names',
        '--model',
        'toString',
      ],
      ['search', 'hello', '--collection', 'names', '--model', 'hasOwnProperty', '--dimension', '256'],
      ['doctor', '--bucket', BUCKET, '--collection', 'names', '--model', 'constructor', '--no-api'],
    ];
    const limit = pLimit(3);
    const results = await Promise.all(
      cases.map((args) => limit(async () => ({ args, res: await runCli(args, env.env) }))),
    );
    for (const { args, res } of results) {
      const model = args[args.indexOf('--model') + 1]!;
      expect({ command: args.join(' '), code: res.code, stdout: res.stdout, stderr: res.stderr }).toEqual({
        command: args.join(' '),
        code: 2,
        stdout: '',
        stderr: `mm-ingest: configuration error: model: "${model}" is not a known model ${KNOWN}\n`,
      });
    }
    // nothing was queued by the refused reindex and schedule
    const queue = new Queue('reindex', { connection: env.redis, prefix: env.prefix });
    try {
      expect(await queue.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 0, delayed: 0 });
      expect(await queue.getJobSchedulers()).toEqual([]);
    } finally {
      await queue.close();
    }
  }, 180_000);

  it('refuses them as model names in MODEL_OVERRIDES, from the flag and the variable', async () => {
    const limit = pLimit(3);
    const results = await Promise.all(
      INHERITED.map((m) =>
        limit(async () => {
          const json = `{"${m}":{"rpm":10}}`;
          return {
            m,
            flag: await runCli(['models', '--model-overrides', `{"${m}":{"rpm":10}}`], env.env),
            variable: await runCli(['status'], { ...env.env, MODEL_OVERRIDES: json }),
          };
        }),
      ),
    );
    for (const { m, flag, variable } of results) {
      expect({ code: flag.code, stdout: flag.stdout, stderr: flag.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `mm-ingest: configuration error: --model-overrides: names unknown model "${m}" ${KNOWN}\n`,
      });
      expect({ code: variable.code, stdout: variable.stdout, stderr: variable.stderr }).toEqual({
        code: 2,
        stdout: '',
        stderr: `mm-ingest: configuration error: MODEL_OVERRIDES: names unknown model "${m}" ${KNOWN}\n`,
      });
    }
    // and as fields of a known model
    const field = await runCli(
      ['models', '--model-overrides', '{"qwen3-vl-embedding":{"__proto__":{"rpm":1}}}'],
      env.env,
    );
    expect({ code: field.code, stderr: field.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(
        /^mm-ingest: configuration error: --model-overrides: qwen3-vl-embedding: Unrecognized key: "__proto__"\n$/,
      ),
    });
  }, 180_000);

  it('fails reindex jobs that name them, naming the field, and the worker goes on', async () => {
    const connection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    const queue = new Queue('reindex', { connection, prefix: env.prefix });
    const worker: BackgroundCli = startCli(['worker'], env.env);
    const settled = async (job: Job): Promise<Job> => {
      for (let i = 0; i < 600; i++) {
        const state = await queue.getJobState(job.id!);
        if (state === 'completed' || state === 'failed') return (await queue.getJob(job.id!))!;
        await sleep(100);
      }
      throw new Error(`job ${job.id} did not settle: ${worker.output()}`);
    };
    try {
      await worker.waitFor(/worker ready/);
      const base = { bucket: BUCKET, collection: `names-${env.prefix}` };
      const bad: [Record<string, unknown>, RegExp][] = [
        ...INHERITED.map((m): [Record<string, unknown>, RegExp] => [
          { ...base, model: m },
          new RegExp(`^reindex job refused: model: "${escape(m)}" is not a known model ${escape(KNOWN)}$`),
        ]),
        [{ ...base, model: 'qwen3-vl-embedding', mode: 'constructor' }, /^malformed reindex job: mode: /],
        [
          { ...base, model: 'qwen3-vl-embedding', fuseSidecar: '.txt', fuseUnpaired: 'toString' },
          /^malformed reindex job: fuseUnpaired: /,
        ],
      ];
      for (const [data, reason] of bad) {
        const job = await settled(await queue.add('reindex', data));
        expect({ data, state: await job.getState(), failedReason: job.failedReason }).toEqual({
          data,
          state: 'failed',
          failedReason: expect.stringMatching(reason),
        });
      }
      // a good job after them is served
      const good = await settled(await queue.add('reindex', { ...base, model: 'qwen3-vl-embedding', dimension: 256 }));
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

  it('skips keys and extensions that are such names as unsupported, and records every one of them', async () => {
    const collection = `keys-${env.prefix}`;
    const worker = startCli(['worker'], env.env);
    try {
      await worker.waitFor(/worker ready/);
      const res = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--collection',
          collection,
          '--model',
          'qwen3-vl-embedding',
          '--dimension',
          '256',
          '--wait',
        ],
        env.env,
      );
      expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: '' });
      const runId = /run (\S+): scanning/.exec(res.stdout)![1]!;
      const items = await new RunStore(env.redis, env.prefix).items(runId);
      const statuses = Object.fromEntries([...items].map(([k, o]) => [k, `${o.status} ${o.code}`]));
      expect(statuses).toEqual({
        ['__proto__']: 'skipped unsupported-type',
        constructor: 'skipped unsupported-type',
        'photo.constructor': 'skipped unsupported-type',
        'photo.__proto__': 'skipped unsupported-type',
        'notes.hasOwnProperty': 'skipped unsupported-type',
      });
      const run = await runCli(['runs', 'show', runId, '--json'], env.env);
      const report = JSON.parse(run.stdout) as { indexed: number; skippedByReason: Record<string, number> };
      expect({ indexed: report.indexed, skippedByReason: report.skippedByReason }).toEqual({
        indexed: 2,
        skippedByReason: { 'unsupported-type': 5 },
      });
    } finally {
      expect(await worker.stop('SIGTERM')).toBe(0);
    }
  }, 180_000);
});
