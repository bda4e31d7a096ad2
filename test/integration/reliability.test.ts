/**
 * The pipeline when things go wrong, as a user would meet it: `mm-ingest index`, `worker`,
 * `status`, `failures`, `retry-failed` and `resume` as real processes against s3rver, the
 * API simulator (with injected faults), real Redis and the Qdrant stand-in (or QDRANT_URL).
 *
 * Every scenario indexes a bucket of its own (500 objects: short texts and small images,
 * qwen3-vl-embedding at 256 dimensions) into a collection of its own, with a queue prefix
 * of its own, and compares the points with those of one clean run of the same content
 * (ids from the scenario's bucket; key, etag, chunk and vector equal).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { EMBED_QUEUE } from '../../src/embed-job.js';
import type { EmbedJobData } from '../../src/embed-job.js';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { DATA_INSPECTION_MARKER, INTERNAL_ERROR_MARKER } from '../../src/simulator/index.js';
import type { SimulatorStats } from '../../src/simulator/index.js';
import { prose, uploadCorpus } from '../support/corpus.js';
import type { CorpusObject } from '../support/corpus.js';
import { jpeg, png } from '../support/media-fixtures.js';
import { runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { startHttpProxy } from '../support/http-proxy.js';
import { startRedisServer } from '../support/redis-server.js';
import type { RedisServerForTest } from '../support/redis-server.js';
import { createBucket, putObject } from '../support/s3.js';
import { allPoints } from '../support/qdrant-points.js';
import type { Point } from '../support/qdrant-points.js';

const MODEL = 'qwen3-vl-embedding';
const DIMENSION = 256;
const TEST_TIMEOUT = 300_000;

// ---------------------------------------------------------------- the bucket's content

const one = (key: string, body: Buffer): CorpusObject => ({ key, body, expect: () => ({ indexed: 1 }) });

/** 480 short texts and 20 small images: 500 objects, one point each, about 44 requests. */
function content(): CorpusObject[] {
  const objects: CorpusObject[] = [];
  for (let i = 0; i < 480; i++)
    objects.push(one(`texts/t-${String(i).padStart(3, '0')}.txt`, Buffer.from(prose(7000 + i, 6 + (i % 30)))));
  for (let i = 0; i < 20; i++) {
    objects.push(
      i % 2 === 0
        ? one(`images/p-${i}.png`, png(20 + i, 16 + i, i * 12))
        : one(`images/j-${i}.jpg`, jpeg(24 + i, 18 + i)),
    );
  }
  return objects;
}

// ---------------------------------------------------------------- points

/** A point as it depends on content only: by "key#chunk", its etag and vector. */
interface Normalized {
  etag: string;
  vector: number[];
}

/** Points by "key#chunk"; every id must be the deterministic id from (bucket, key, chunk). */
function normalize(bucket: string, points: readonly Point[]): { byChunk: Map<string, Normalized>; wrongIds: string[] } {
  const byChunk = new Map<string, Normalized>();
  const wrongIds: string[] = [];
  for (const p of points) {
    const key = String(p.payload.key);
    const chunk = Number(p.payload.chunk);
    if (p.id !== pointId(bucket, key, chunk)) wrongIds.push(`${p.id} (${key}#${chunk})`);
    byChunk.set(`${key}#${chunk}`, { etag: String(p.payload.etag), vector: p.vector });
  }
  return { byChunk, wrongIds };
}

const sameVector = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

// ---------------------------------------------------------------- helpers

const throttled429s = (stats: SimulatorStats): number =>
  Object.entries(stats.refusals).reduce((n, [code, count]) => n + (code.startsWith('Throttling') ? count : 0), 0);
/** The last lines of a process's output, for an assertion's message. */
const tail = (text: string, lines = 15): string => text.trim().split('\n').slice(-lines).join('\n');

async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

describe('the pipeline under failures', () => {
  let env: PipelineEnv;
  let qdrant: QdrantClient;
  const corpus = content();
  /** The clean run's points, by "key#chunk". */
  let baseline: Map<string, Normalized>;
  /** Every process this file started and has not seen exit: killed in afterAll. */
  const processes = new Set<BackgroundCli>();
  const redisServers: RedisServerForTest[] = [];
  const connections: Redis[] = [];

  /**
   * Variables of a scenario's processes: its own queue prefix, fast retries, a short drain.
   * A scenario that needs them adds a short request timeout (hung requests) or short locks
   * (a dead worker's jobs picked up fast); not the others, where a worker's event loop held
   * up by a busy machine would make them fire for nothing (a request timed out after its
   * answer came, a job taken from a live worker) and blur the figures.
   */
  function scenarioEnv(tag: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      ...env.env,
      QUEUE_PREFIX: `${env.prefix}-${tag}`,
      API_BACKOFF_MS: '50',
      DRAIN_TIMEOUT_MS: '5000',
      ...extra,
    };
  }

  /** Runs `mm-ingest ARGS` to its end (killed after `timeoutMs`), stdout and stderr apart. */
  async function cli(args: readonly string[], e: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<CliResult> {
    const p = startCli(args, e);
    processes.add(p);
    let stdout = '';
    let stderr = '';
    p.child.stdout?.on('data', (d: string) => (stdout += d));
    p.child.stderr?.on('data', (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
      p.child.once('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    processes.delete(p);
    return { code, stdout, stderr };
  }

  async function startWorker(e: NodeJS.ProcessEnv, concurrency = 4): Promise<BackgroundCli> {
    const w = startCli(['worker', '--concurrency', String(concurrency)], e);
    processes.add(w);
    await w.waitFor(/worker ready/);
    return w;
  }

  /** Stops a process with `signal` (SIGKILL if it is still there after `timeoutMs`). */
  async function stop(
    p: BackgroundCli,
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = 15_000,
  ): Promise<number | null> {
    const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
    const code = await p.stop(signal);
    clearTimeout(timer);
    processes.delete(p);
    return code;
  }

  async function stopAll(): Promise<void> {
    await Promise.all([...processes].map((p) => stop(p, 'SIGKILL')));
  }

  function indexArgs(bucket: string, collection: string): string[] {
    return [
      'index',
      '--bucket',
      bucket,
      '--collection',
      collection,
      '--model',
      MODEL,
      '--dimension',
      String(DIMENSION),
      '--page-size',
      '100',
    ];
  }

  async function fill(bucket: string, objects: readonly CorpusObject[] = corpus): Promise<void> {
    await createBucket(env.s3client, bucket);
    await uploadCorpus(env.s3client, bucket, objects);
  }

  /** The simulator as a scenario starts: no faults, no latency, no limits, zeroed stats. */
  function cleanSimulator(): void {
    env.sim.configure({
      faults: { seed: 1, error500Rate: 0, error503Rate: 0, burst429Rate: 0, hangRate: 0, dropRate: 0 },
      latency: { fixedMs: 0, perInputMs: 0, jitterMs: 0 },
      rateLimits: 'off',
    });
    env.sim.reset();
  }

  /** The collection's points equal the clean run's: same keys, chunks, etags and vectors, ids from `bucket`. */
  async function expectBaselinePoints(bucket: string, collection: string): Promise<void> {
    const points = await allPoints(qdrant, collection);
    const { byChunk, wrongIds } = normalize(bucket, points);
    expect(wrongIds).toEqual([]);
    expect(points).toHaveLength(baseline.size); // none doubled: one point per id
    expect([...byChunk.keys()].sort()).toEqual([...baseline.keys()].sort()); // none lost
    const differing = [...baseline].filter(([k, want]) => {
      const got = byChunk.get(k);
      return !got || got.etag !== want.etag || !sameVector(got.vector, want.vector);
    });
    expect(differing.map(([k]) => k)).toEqual([]);
  }

  async function report(scenario: string, runs: RunStore, runIds: readonly string[], startedMs: number): Promise<void> {
    let retries = 0;
    let throttled = 0;
    for (const id of runIds) {
      const run = await runs.get(id);
      retries += run?.counters.retries ?? 0;
      throttled += run?.counters.throttled ?? 0;
    }
    const stats = env.sim.stats();
    const line =
      `[figures] ${scenario}: ${stats.requests} requests (${stats.accepted} accepted), ${retries} retries, ` +
      `${throttled} throttled (run counters), ${throttled429s(stats)} 429s seen by the simulator, ` +
      `faults ${JSON.stringify(stats.faults)}, ${((Date.now() - startedMs) / 1000).toFixed(1)} s\n`;
    process.stdout.write(line);
  }

  beforeAll(async () => {
    env = await startPipelineEnv();
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    // the clean run every scenario compares with
    const bucket = 'clean';
    const collection = `clean-${env.prefix}`;
    await fill(bucket);
    cleanSimulator();
    const e = scenarioEnv('clean');
    const worker = await startWorker(e, 4);
    try {
      const r = await cli([...indexArgs(bucket, collection), '--wait'], e);
      expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
        code: 0,
        output: expect.stringContaining('finished'),
      });
    } finally {
      await stop(worker);
    }
    const points = await allPoints(qdrant, collection);
    const { byChunk, wrongIds } = normalize(bucket, points);
    expect(wrongIds).toEqual([]);
    expect(byChunk.size).toBe(corpus.length);
    baseline = byChunk;
  }, 180_000);

  afterAll(async () => {
    await stopAll();
    for (const c of connections) c.disconnect();
    for (const s of redisServers) await s.close();
    if (env) {
      // the scenarios' own prefixes (env.close() removes `${prefix}:*` only)
      let cursor = '0';
      do {
        const [next, keys] = await env.redis.scan(cursor, 'MATCH', `${env.prefix}-*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await env.redis.del(...keys);
      } while (cursor !== '0');
      await env.close();
    }
  });

  it(
    'completes a run through 500s, 503s, 429 bursts and hung requests, with the same points as a clean run',
    async () => {
      const bucket = 'faults';
      const collection = `faults-${env.prefix}`;
      const e = scenarioEnv('faults', { REQUEST_TIMEOUT_MS: '2000' });
      await fill(bucket);
      cleanSimulator();
      // Seed 118's first 30 draws hold every kind of fault (503 . 500 . hang 429x3 . . . 503 . 503 . . 429x3 ...),
      // so this short run meets each of them whatever order the requests arrive in.
      env.sim.configure({
        faults: {
          seed: 118,
          error500Rate: 0.05,
          error503Rate: 0.05,
          burst429Rate: 0.05,
          burst429Length: 3,
          hangRate: 0.01,
          hangMs: 10_000,
        },
      });
      env.sim.reset();
      const runs = new RunStore(env.redis, `${env.prefix}-faults`);
      const started = Date.now();
      try {
        await startWorker(e, 4);
        const r = await cli([...indexArgs(bucket, collection), '--wait'], e);
        expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        const runId = runIdOf(r.stdout);
        await report('faults (10% 500/503, 5% 429 bursts, 1% hangs)', runs, [runId], started);

        const stats = env.sim.stats();
        expect(stats.faults.error500).toBeGreaterThan(0);
        expect(stats.faults.error503).toBeGreaterThan(0);
        expect(stats.faults.burst429).toBeGreaterThan(0);
        expect(stats.faults.hang).toBeGreaterThan(0);
        expect(stats.limitViolations).toBe(0);
        const run = (await runs.get(runId))!;
        expect(run.counters.retries).toBeGreaterThan(0);
        expect(run.counters.throttled).toBeGreaterThan(0);
        expect(run.counters.objectsIndexed).toBe(corpus.length);
        expect(run.counters.objectsFailed).toBe(0);
        expect(run.counters.jobsFailed).toBe(0);
        await expectBaselinePoints(bucket, collection);
      } finally {
        await stopAll();
        cleanSimulator();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'finishes a run whose worker is killed mid-run once a new worker starts, losing and doubling nothing',
    async () => {
      const bucket = 'killed';
      const collection = `killed-${env.prefix}`;
      const prefix = `${env.prefix}-killed`;
      // a gate in front of the simulator, so that the kill finds jobs in flight
      const api = await startHttpProxy(env.sim.url);
      const e = scenarioEnv('killed', { LOCK_DURATION_MS: '3000', DASHSCOPE_BASE_URL: api.url });
      await fill(bucket);
      cleanSimulator();
      const runs = new RunStore(env.redis, prefix);
      const queue = new Queue<EmbedJobData>(EMBED_QUEUE, { connection: env.redis, prefix });
      const started = Date.now();
      try {
        const queued = await cli(indexArgs(bucket, collection), e);
        expect({ code: queued.code, stderr: queued.stderr }).toEqual({ code: 0, stderr: '' });
        const runId = runIdOf(queued.stdout);
        const jobs = (await runs.get(runId))!.counters.jobsAdded;
        expect(jobs).toBeGreaterThan(20);

        // a quarter of the jobs' requests go through, the next wait at the gate
        api.holdAfter(Math.floor(jobs / 4));
        const first = await startWorker(e, 2);
        await waitUntil('a request held at the gate', async () => (api.held() > 0 ? true : undefined));
        await stop(first, 'SIGKILL');
        const atKill = (await runs.get(runId))!;
        expect(atKill.counters.jobsDone).toBeLessThan(jobs);
        expect(await queue.getActiveCount()).toBeGreaterThan(0); // jobs the dead worker held
        // the dead worker's held requests are dropped with their connections, never answered
        await waitUntil('the held requests dropped', async () => (api.held() === 0 ? true : undefined));
        api.release();

        await startWorker(e, 4);
        const r = await cli(['status', '--run', runId, '--wait'], e);
        expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        await report(`worker SIGKILLed after ${atKill.counters.jobsDone}/${jobs} jobs`, runs, [runId], started);

        const run = (await runs.get(runId))!;
        expect(run.counters.jobsDone).toBe(jobs);
        expect(run.counters.jobsFailed).toBe(0);
        expect(run.counters.objectsIndexed).toBe(corpus.length);
        expect(run.counters.points).toBe(baseline.size);
        await expectBaselinePoints(bucket, collection);
      } finally {
        await queue.close();
        await stopAll();
        await api.close();
        cleanSimulator();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'finishes a run across a Redis restart with the append-only file on',
    async () => {
      const bucket = 'restart';
      const collection = `restart-${env.prefix}`;
      const prefix = `${env.prefix}-restart`;
      const redis = await startRedisServer();
      redisServers.push(redis);
      // a gate in front of the simulator, so that Redis goes away with jobs in flight
      const api = await startHttpProxy(env.sim.url);
      const e = scenarioEnv('restart', { REDIS_URL: redis.url, LOCK_DURATION_MS: '3000', DASHSCOPE_BASE_URL: api.url });
      await fill(bucket);
      cleanSimulator();
      const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
      connections.push(connection);
      const runs = new RunStore(connection, prefix);
      const started = Date.now();
      try {
        const queued = await cli(indexArgs(bucket, collection), e);
        expect({ code: queued.code, stderr: queued.stderr }).toEqual({ code: 0, stderr: '' });
        const runId = runIdOf(queued.stdout);
        const jobs = (await runs.get(runId))!.counters.jobsAdded;
        expect(jobs).toBeGreaterThan(20);

        api.holdAfter(Math.floor(jobs / 4));
        const worker = await startWorker(e, 2);
        await waitUntil('a request held at the gate', async () => (api.held() > 0 ? true : undefined));
        const beforeStop = (await runs.get(runId))!;
        await redis.stop();
        expect(beforeStop.counters.jobsDone).toBeLessThan(jobs);
        // the outage: 2 s, then the held requests are answered with Redis back
        await sleep(2000);
        await redis.start();
        api.release();

        const r = await cli(['status', '--run', runId, '--wait'], e);
        expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        // the worker saw Redis go away, and lived through it
        expect(worker.output()).toMatch(/ECONNREFUSED/);
        expect(worker.child.exitCode).toBeNull();
        await report(
          `Redis stopped after ${beforeStop.counters.jobsDone}/${jobs} jobs, restarted 2 s later`,
          runs,
          [runId],
          started,
        );

        const run = (await runs.get(runId))!;
        expect(run.counters.jobsDone).toBe(jobs);
        expect(run.counters.jobsFailed).toBe(0);
        expect(run.counters.objectsIndexed).toBe(corpus.length);
        await expectBaselinePoints(bucket, collection);
      } finally {
        await stopAll();
        await api.close();
        cleanSimulator();
        connection.disconnect();
        await redis.close();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'reports exactly the poison inputs as failed, indexes everything else, and indexes them once replaced and retried',
    async () => {
      const bucket = 'poison';
      const collection = `poison-${env.prefix}`;
      const prefix = `${env.prefix}-poison`;
      // fewer attempts: the always-500 input is retried at every level of the bisection
      const e = scenarioEnv('poison', { API_ATTEMPTS: '3' });
      const poison: Record<string, string> = {
        'texts/t-100-flagged.txt': `${prose(1, 12)} ${DATA_INSPECTION_MARKER} ${prose(2, 6)}`,
        'texts/t-300-flagged.txt': `${DATA_INSPECTION_MARKER} ${prose(3, 9)}`,
        'texts/t-200-internal.txt': `${prose(4, 10)} ${INTERNAL_ERROR_MARKER}`,
      };
      const poisonKeys = Object.keys(poison).sort();
      await fill(bucket, [...corpus, ...Object.entries(poison).map(([key, text]) => one(key, Buffer.from(text)))]);
      cleanSimulator();
      const runs = new RunStore(env.redis, prefix);
      const started = Date.now();
      try {
        await startWorker(e, 4);
        const r = await cli([...indexArgs(bucket, collection), '--wait'], e);
        expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
          code: 1,
          output: expect.stringContaining('finished with 3 failed objects'),
        });
        const runId = runIdOf(r.stdout);

        const f = await cli(['failures', '--run', runId, '--json'], e);
        expect({ code: f.code, stderr: f.stderr }).toEqual({ code: 0, stderr: '' });
        const listed = JSON.parse(f.stdout) as {
          run: string;
          jobs: unknown[];
          items: Record<string, { status: string; code: string }>;
        };
        expect(listed.run).toBe(runId);
        expect(listed.jobs).toEqual([]);
        expect(Object.fromEntries(Object.entries(listed.items).map(([k, o]) => [k, `${o.status} ${o.code}`]))).toEqual({
          'texts/t-100-flagged.txt': 'failed DataInspectionFailed',
          'texts/t-300-flagged.txt': 'failed DataInspectionFailed',
          'texts/t-200-internal.txt': 'failed InternalError',
        });
        const run = (await runs.get(runId))!;
        expect(run.counters.objectsFailed).toBe(3);
        expect(run.counters.objectsIndexed).toBe(corpus.length);
        await expectBaselinePoints(bucket, collection); // everything else, and nothing of the three

        // the morning after: the three files are replaced, their failures retried as a new run
        const fixed: Record<string, string> = {};
        for (const [i, key] of poisonKeys.entries()) {
          fixed[key] = prose(900 + i, 15);
          await putObject(env.s3client, bucket, key, fixed[key]);
        }
        const retry = await cli(['retry-failed', '--run', runId], e);
        expect({ code: retry.code, stderr: retry.stderr }).toEqual({ code: 0, stderr: '' });
        const newId = /run (\S+): retrying 3 failed objects/.exec(retry.stdout)?.[1];
        expect(newId).toBeDefined();
        const s = await cli(['status', '--run', newId!, '--wait'], e);
        expect({ code: s.code, output: tail(s.stdout + s.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        await report('3 poison inputs, then retry-failed', runs, [runId, newId!], started);

        const retried = (await runs.get(newId!))!;
        expect(retried.counters.objectsIndexed).toBe(3);
        expect(retried.counters.objectsFailed).toBe(0);
        const points = await allPoints(qdrant, collection);
        expect(points).toHaveLength(corpus.length + 3);
        for (const key of poisonKeys) {
          const head = await env.s3client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
          const point = points.find((p) => p.id === pointId(bucket, key, 0));
          expect(point?.payload).toMatchObject({
            key,
            chunk: 0,
            etag: (head.ETag ?? '').replace(/"/g, ''),
            run_id: newId,
          });
          expect(point?.vector).toHaveLength(DIMENSION);
        }
        const after = await cli(['failures', '--run', runId, '--json'], e);
        const afterItems = (JSON.parse(after.stdout) as { items: Record<string, unknown> }).items;
        expect(Object.keys(afterItems)).toEqual([]); // marked retried, no longer failed
      } finally {
        await stopAll();
        cleanSimulator();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'pauses on a wrong API key without using any job attempt, and completes after resume with the right key',
    async () => {
      const bucket = 'badkey';
      const collection = `badkey-${env.prefix}`;
      const prefix = `${env.prefix}-badkey`;
      const e = scenarioEnv('badkey');
      await fill(bucket);
      cleanSimulator();
      const runs = new RunStore(env.redis, prefix);
      const queue = new Queue<EmbedJobData>(EMBED_QUEUE, { connection: env.redis, prefix });
      const started = Date.now();
      try {
        const wrong = await startWorker({ ...e, DASHSCOPE_API_KEY: 'sk-wrong-0000000000000000' }, 4);
        const r = await cli([...indexArgs(bucket, collection), '--wait'], e);
        const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('InvalidApiKey'));
        expect({ code: r.code, lines }).toEqual({
          code: 3,
          lines: [expect.stringMatching(/paused.*401 InvalidApiKey.*mm-ingest resume/)],
        });
        const runId = runIdOf(r.stdout);

        await waitUntil(
          'the wrong-key worker to hold no job',
          async () => ((await queue.getActiveCount()) === 0 ? true : undefined),
          30_000,
        );
        expect(await stop(wrong)).toBe(0);
        const run = (await runs.get(runId))!;
        // BullMQ 6 keeps a paused queue's jobs in its wait list: no 'paused' state to ask for
        const left = await queue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'failed']);
        expect(left).toHaveLength(run.counters.jobsAdded); // every job still there, none done or lost
        expect(left.filter((j) => j.attemptsMade > 0).map((j) => `${j.id}: ${j.attemptsMade}`)).toEqual([]);
        expect(await queue.getFailedCount()).toBe(0);
        expect(await queue.isPaused()).toBe(true);
        const refused = env.sim.stats();
        expect(refused.refusals.InvalidApiKey).toBeGreaterThan(0);
        expect(refused.accepted).toBe(0);

        await startWorker(e, 4);
        const resumed = await cli(['resume'], e);
        expect({ code: resumed.code, stdout: resumed.stdout }).toEqual({
          code: 0,
          stdout: expect.stringMatching(/queue resumed \(it was paused: 401 InvalidApiKey/),
        });
        const s = await cli(['status', '--run', runId, '--wait'], e);
        expect({ code: s.code, output: tail(s.stdout + s.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        await report('wrong API key, then resume', runs, [runId], started);

        const done = (await runs.get(runId))!;
        expect(done.counters.objectsIndexed).toBe(corpus.length);
        expect(done.counters.jobsFailed).toBe(0);
        await expectBaselinePoints(bucket, collection);
      } finally {
        await queue.close();
        await stopAll();
        cleanSimulator();
      }
    },
    TEST_TIMEOUT,
  );

  it(
    'keeps two workers together under a requests-per-minute limit, with no 429',
    async () => {
      // R = 20 a minute (and so 1 a second): 24 requests take over a minute, so the minute
      // limit binds (with R = 60, ~40 requests could never break it).
      const R = 20;
      const requests = 24;
      const bucket = 'paced';
      const collection = `paced-${env.prefix}`;
      const prefix = `${env.prefix}-paced`;
      const overrides = JSON.stringify({ [MODEL]: { rpm: R } });
      const e = scenarioEnv('paced', { MODEL_OVERRIDES: overrides, LOG_LEVEL: 'info' });
      const tiny: CorpusObject[] = [];
      for (let i = 0; i < requests * 20; i++)
        tiny.push(one(`tiny/${String(i).padStart(4, '0')}.txt`, Buffer.from(prose(i, 3))));
      await fill(bucket, tiny);
      cleanSimulator();
      env.sim.configure({ rateLimits: { [MODEL]: { rpm: R, tpm: null } } });
      env.sim.reset();
      const runs = new RunStore(env.redis, prefix);
      const started = Date.now();
      try {
        const a = await startWorker(e, 2);
        const b = await startWorker(e, 2);
        const r = await cli([...indexArgs(bucket, collection), '--wait'], e);
        expect({ code: r.code, output: tail(r.stdout + r.stderr) }).toEqual({
          code: 0,
          output: expect.stringContaining('finished'),
        });
        const runId = runIdOf(r.stdout);
        await report(`two workers under ${R} requests a minute`, runs, [runId], started);

        const stats = env.sim.stats();
        expect(stats.requests).toBeGreaterThan(R); // more than one minute's worth
        expect(stats.models[MODEL]?.maxRequestsInAnyMinute).toBeLessThanOrEqual(R);
        expect(Object.keys(stats.refusals).filter((c) => c.startsWith('Throttling'))).toEqual([]);
        // both processes took part
        const jobsOf = (w: BackgroundCli): number => w.output().split('embed job done').length - 1;
        expect(jobsOf(a)).toBeGreaterThan(0);
        expect(jobsOf(b)).toBeGreaterThan(0);
        const points = await allPoints(qdrant, collection);
        expect(points).toHaveLength(tiny.length);
      } finally {
        await stopAll();
        cleanSimulator();
      }
    },
    TEST_TIMEOUT,
  );
});
