/**
 * A refusal of the whole request for a reason no input causes, fed for real: the pipeline
 * is told (MODEL_OVERRIDES, on its side only) that qwen3-vl-embedding takes 3072 dimensions;
 * the simulator, which keeps the documented list, answers every request with
 * `400 InvalidParameter` "dimension 3072 is not supported ...". `mm-ingest index --wait` and a
 * worker run as processes against MinIO, the simulator, real Redis and the Qdrant stand-in.
 *
 * Bisecting that refusal as if an input caused it sends 2n-1 requests for a request of n
 * inputs (39 for 20); it must be recognized after at most a few.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { RunStore } from '../../src/runs.js';
import { prose } from '../support/corpus.js';
import { figures, runCli, runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const BUCKET = 'refusals';
const TEXTS = 20;
const expectExit = (result: CliResult, code: number): void =>
  expect({ code: result.code, stderr: result.stderr.slice(-2000), stdout: result.stdout.slice(-2000) }).toMatchObject({
    code,
  });

describe('a request refused as a whole', () => {
  let env: PipelineEnv;
  let worker: BackgroundCli | undefined;
  let cliEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    env = await startPipelineEnv();
    cliEnv = {
      ...env.env,
      RATE_LIMIT: 'off',
      API_BACKOFF_MS: '10',
      MODEL_OVERRIDES: JSON.stringify({ [MODEL]: { dimensions: [2560, 2048, 1536, 1024, 768, 512, 256, 3072] } }),
    };
    await createBucket(env.s3client, BUCKET);
    for (let i = 0; i < TEXTS; i++)
      await putObject(env.s3client, BUCKET, `t/${String(i).padStart(2, '0')}.txt`, prose(500 + i, 15));
    worker = startCli(['worker', '--concurrency', '2'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    if (worker) {
      const timer = setTimeout(() => worker?.child.kill('SIGKILL'), 15_000);
      await worker.stop('SIGTERM');
      clearTimeout(timer);
    }
    await env?.close();
  });

  it('fails the inputs of a request refused for a bad dimension after at most 3 requests, not 2n-1', async () => {
    env.sim.reset();
    const started = Date.now();
    const result = await runCli(
      [
        'index',
        '--bucket',
        BUCKET,
        '--collection',
        `refused-${env.prefix}`,
        '--model',
        MODEL,
        '--dimension',
        '3072',
        '--wait',
      ],
      cliEnv,
    );
    const seconds = (Date.now() - started) / 1000;
    expectExit(result, 1);
    const stats = env.sim.stats();
    // the 20 texts are one job of one request
    expect(stats.refusals).toEqual({ InvalidParameter: stats.requests });
    expect(stats.requests).toBeLessThanOrEqual(3);
    expect(stats.accepted).toBe(0);

    const runId = runIdOf(result.stdout);
    const items = [...(await new RunStore(env.redis, env.prefix).items(runId))];
    expect(items).toHaveLength(TEXTS);
    for (const [, o] of items) {
      expect(o).toMatchObject({ status: 'failed', code: 'InvalidParameter' });
      expect(o.reason).toMatch(/dimension 3072 is not supported by qwen3-vl-embedding/);
      expect(o.reason).toMatch(/refused the whole request/);
    }
    const failures = await runCli(['failures', '--run', runId], cliEnv);
    const line = failures.stdout.split('\n').find((l) => l.includes('t/00.txt')) ?? '';
    figures(
      `bad dimension: index --wait exit ${result.code} in ${seconds.toFixed(1)} s, ${stats.requests} requests for ${TEXTS} inputs; failures prints: ${line.trim()}`,
    );
  }, 180_000);
});
