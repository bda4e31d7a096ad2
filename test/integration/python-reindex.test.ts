/**
 * Reindex requests from another language: BullMQ's Python client (`bullmq`, pinned in
 * test/python/requirements.txt, installed by scripts/setup.sh into test/python/.venv) adds
 * jobs to the reindex queue, exactly as the README shows, and a real `mm-ingest worker`
 * process runs them against MinIO, the API simulator and the Qdrant stand-in (or QDRANT_URL).
 * No venv is a failure, not a skip: the cross-language contract is what this file checks.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { isFinished, RunStore } from '../../src/runs.js';
import type { RunState } from '../../src/runs.js';
import { allPoints, putMany, until } from '../support/incremental.js';
import { png } from '../support/media-fixtures.js';
import { startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket } from '../support/s3.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PYTHON = `${ROOT}test/python/.venv/bin/python`;
const README_SCRIPT = `${ROOT}test/python/add_reindex_job.py`;
const RAW_SCRIPT = `${ROOT}test/python/add_job.py`;
const BUCKET = 'py-reindex';
const run = promisify(execFile);

const OBJECTS = new Map<string, string | Buffer>([
  ['notes/alpha.txt', 'alpha: the first note, about rivers and bridges'],
  ['notes/beta.txt', 'beta: a second note, about mountains'],
  ['notes/gamma.md', '# gamma\n\nA third note in Markdown, about the sea.'],
  ['notes/delta.txt', 'delta: 第四个笔记，关于森林'],
  ['images/red.png', png(64, 48, 10)],
  ['images/blue.png', png(40, 40, 200)],
]);

/** The README's Python block under "Reindex from a queue". */
async function readmeExample(): Promise<string> {
  const readme = await readFile(`${ROOT}README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('## Reindex from a queue'));
  const block = /```python\n([\s\S]*?)```/.exec(section);
  if (!block?.[1]) throw new Error('README.md has no ```python block in "Reindex from a queue"');
  return block[1];
}

/** The script without its leading comment lines. */
const body = (script: string): string => script.replace(/^(#[^\n]*\n)+/, '');

describe("reindex requests from Python (BullMQ's Python client)", () => {
  let env: PipelineEnv;
  let worker: BackgroundCli | undefined;
  let queue: Queue;
  let connection: Redis;
  let qdrant: QdrantClient;
  let runs: RunStore;
  const collection = (): string => `py-${env.prefix}`;

  const python = async (script: string, args: readonly string[] = []): Promise<string> => {
    const vars = {
      ...process.env,
      REDIS_URL: env.env.REDIS_URL,
      QUEUE_PREFIX: env.prefix,
      BUCKET,
      COLLECTION: collection(),
    };
    const { stdout } = await run(PYTHON, [script, ...args], { env: vars, timeout: 30_000 });
    return stdout.trim();
  };
  /** The job once it is completed or failed. */
  const finished = (id: string) =>
    until(
      `reindex job ${id} to finish`,
      async () => {
        const state = await queue.getJobState(id);
        // read once finished: a job read before it completed has no return value yet
        const job = state === 'completed' || state === 'failed' ? await queue.getJob(id) : undefined;
        return job ? { job, state } : undefined;
      },
      60_000,
      100,
    );
  const runEnd = (runId: string): Promise<RunState> =>
    until(
      `run ${runId} to finish`,
      async () => {
        const r = await runs.get(runId);
        return r && isFinished(r) ? r : undefined;
      },
      60_000,
      100,
    );

  beforeAll(async () => {
    // fail (not skip) without the venv: every test below reports this
    if (!existsSync(PYTHON))
      throw new Error(
        `${PYTHON} is missing: run \`bash scripts/setup.sh\` (it creates the venv from test/python/requirements.txt)`,
      );
    env = await startPipelineEnv();
    connection = new Redis(env.env.REDIS_URL!, { maxRetriesPerRequest: null });
    queue = new Queue('reindex', { connection, prefix: env.prefix });
    qdrant = new QdrantClient({
      url: env.qdrantUrl,
      ...(process.env.QDRANT_API_KEY ? { apiKey: process.env.QDRANT_API_KEY } : {}),
      checkCompatibility: false,
    });
    runs = new RunStore(env.redis, env.prefix);
    await createBucket(env.s3client, BUCKET);
    await putMany(env.s3client, BUCKET, OBJECTS);
    worker = startCli(['worker', '--concurrency', '2'], { ...env.env, RATE_LIMIT: 'off' });
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    if (worker) await worker.stop();
    await queue?.close();
    await connection?.quit();
    if (env && (await qdrant.collectionExists(collection())).exists) await qdrant.deleteCollection(collection());
    await env?.close();
  });

  it("has the venv with BullMQ's Python client, and the README's example is the script it runs", async () => {
    expect(existsSync(PYTHON)).toBe(true);
    const { stdout } = await run(PYTHON, ['-c', 'from importlib.metadata import version; print(version("bullmq"))']);
    const pinned = /^bullmq==(\S+)$/m.exec(await readFile(`${ROOT}test/python/requirements.txt`, 'utf8'))?.[1];
    expect(stdout.trim()).toBe(pinned);
    expect(await readmeExample()).toBe(body(await readFile(README_SCRIPT, 'utf8')));
  });

  it("runs the job the README's Python example adds: the run completes and every object has its point", async () => {
    const id = await python(README_SCRIPT);
    expect(id).toMatch(/^\d+$/);
    const { job, state } = await finished(id);
    expect({ state, failedReason: job.failedReason }).toEqual({ state: 'completed', failedReason: undefined });
    const result = job.returnvalue as { runId: string; target: string; scanned: number; queuedObjects: number };
    // the job as Python added it, and the run id the worker wrote into it once the run existed
    expect(job.data).toEqual({
      bucket: BUCKET,
      collection: collection(),
      model: 'qwen3-vl-embedding',
      runId: result.runId,
    });
    expect(result).toMatchObject({ target: collection(), scanned: OBJECTS.size, queuedObjects: OBJECTS.size });

    const end = await runEnd(result.runId);
    expect(end.counters).toMatchObject({
      objectsIndexed: OBJECTS.size,
      objectsFailed: 0,
      objectsSkipped: 0,
      points: OBJECTS.size,
    });
    const points = await allPoints(qdrant, collection());
    expect(points.map((p) => p.payload.key).sort()).toEqual([...OBJECTS.keys()].sort());
    expect(new Set(points.map((p) => p.payload.run_id))).toEqual(new Set([result.runId]));
    expect(points.map((p) => p.vector.length)).toEqual(points.map(() => 2560)); // the model's default dimension
    expect((await qdrant.count(collection(), { exact: true })).count).toBe(OBJECTS.size);
  }, 90_000);

  it('fails a malformed job from Python at once, naming the field, and goes on with the next one', async () => {
    const missing = await python(RAW_SCRIPT, [JSON.stringify({ bucket: BUCKET, model: 'qwen3-vl-embedding' })]);
    const wrongType = await python(RAW_SCRIPT, [
      JSON.stringify({ bucket: BUCKET, collection: collection(), model: 'qwen3-vl-embedding', dimension: '256' }),
    ]);
    const a = await finished(missing);
    const b = await finished(wrongType);
    expect([a.state, a.job.failedReason, a.job.attemptsMade]).toEqual([
      'failed',
      expect.stringMatching(/^malformed reindex job: collection: /),
      1,
    ]);
    expect([b.state, b.job.failedReason, b.job.attemptsMade]).toEqual([
      'failed',
      expect.stringMatching(/^malformed reindex job: dimension: .*number/),
      1,
    ]);

    // the worker is still serving: the README's job again completes (nothing changed since)
    const again = await python(README_SCRIPT);
    const { job, state } = await finished(again);
    expect(state).toBe('completed');
    const result = job.returnvalue as { runId: string; scanned: number; unchanged: number; queuedObjects: number };
    expect(result).toMatchObject({ scanned: OBJECTS.size, unchanged: OBJECTS.size, queuedObjects: 0 });
    expect((await runEnd(result.runId)).counters.unchanged).toBe(OBJECTS.size);
    expect((await qdrant.count(collection(), { exact: true })).count).toBe(OBJECTS.size);
    expect(worker?.child.exitCode).toBeNull();
  }, 90_000);
});
