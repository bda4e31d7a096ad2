/**
 * The bucket-scale scenario (`npm run bench -- --bucket-scale [--sizes 10000,100000]
 * [--pipeline-sizes 10000] [--profile DIR]`): what a run costs in Redis, memory and CPU as
 * the bucket grows to a million objects.
 *
 * The buckets are generated (bench/gen-s3-child.ts serves `gen-<n>`: short texts made from
 * their number), so a million objects need no fill. At each size:
 * - a bare ListObjectsV2 loop over the bucket;
 * - `mm-ingest index` while a stand-in consumer (bench/drain-child.ts: takes each job and
 *   records it done, no API call) drains the queue at a fixed pace: scan + enqueue rate,
 *   Redis peak, waiting-jobs peak, MEMORY USAGE of queued job hashes, producer peak RSS
 *   and CPU, and the run's counters (every object counted once);
 * - `mm-ingest index` with nothing draining the queue for up to `HOLD_S`: how many jobs
 *   and bytes sit in Redis (a producer that never looks at the queue queues the whole
 *   bucket; one with backpressure pauses at its bound).
 * At the pipeline sizes, the whole pipeline (two `mm-ingest worker` processes, the API
 * simulator at 300 RPM, the Qdrant stand-in) on the generated bucket and on MinIO with the
 * same objects: wall time per object against the rate limit's ceiling, worker peak RSS,
 * CPU per 1,000 objects, and every object indexed exactly once (simulator inputs, points).
 *
 * Writes bench/results-bucket-scale.json and prints a table.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { RUN_PARTS } from '../../src/runs.js';
import { startRedisServer } from '../../test/support/redis-server.js';
import { startMinio } from '../../test/support/minio.js';
import { createBucket, s3Env, testS3Client } from '../../test/support/s3.js';
import { bareListing } from '../lib/bare-listing.js';
import { BENCH_API_KEY, benchBaseEnv, newPrefix, usedMemory } from '../lib/env.js';
import { genBody, genBucket, genKey } from '../lib/gen-store.js';
import { cost, indexArgs, runIndex, startIndex, startWorkers, waitRun } from '../lib/pipeline.js';
import { ProcSampler, ROOT, cliMode, spawnCli, spawnNode, stopChildren } from '../lib/procs.js';
import type { NodeProcess } from '../lib/procs.js';

const MB = 1024 * 1024;
const MODEL = 'qwen3-vl-embedding';
const OVERRIDES = JSON.stringify({ [MODEL]: { rpm: 300, tpm: 150_000 } });
/** The stand-in consumer: 8 jobs at once, 20 ms each (at most 400 jobs/s, 8,000 objects/s). */
const DRAIN = { concurrency: 8, jobMs: 20 };
const HOLD_S = 40;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ProducerPoint {
  objects: number;
  bareListing: { seconds: number; objectsPerS: number };
  index: {
    scanS: number;
    wallS: number;
    objectsPerS: number;
    ratioToBare: number;
    exitCode: number | null;
    /** How often, and how long in all, the producer waited for room in the queue (backpressure). */
    scanWaits: number;
    scanWaitS: number;
  };
  /**
   * The producer alone: `index` with no bound (MAX_QUEUED_JOBS=0) and nothing draining, so
   * that neither the stand-in consumer's pace nor backpressure sets the rate: what the
   * scan and enqueue cost against the bare listing.
   */
  alone: {
    scanS: number;
    objectsPerS: number;
    /** The bare listing again, just before (its ratio's denominator). */
    bareObjectsPerS: number;
    ratioToBare: number;
    peakRssMB: number;
    cpuSPer1000: number;
  };
  /** The machine's 1-minute load average when the indexing run started and when it ended. */
  loadAverage: { before: number; after: number };
  redis: {
    baseline: number;
    peakDelta: number;
    peakWaiting: number;
    jobHashBytes: number;
    jobHashSamples: number;
    /** After the run finished: used_memory over the baseline, the run's own keys (MEMORY USAGE), completed jobs kept. */
    left: { usedMemoryDelta: number; bytesPerObject: number; runRecordBytes: number; completedJobs: number };
  };
  producer: { peakRssMB: number; cpuS: number; cpuSPer1000: number };
  counters: { scanned: number; queuedObjects: number; jobsAdded: number; jobsDone: number; objectsIndexed: number };
  held: { seconds: number; waiting: number; usedMemoryDelta: number; bytesPerQueuedJob: number; exited: boolean };
}

export interface PipelinePoint {
  store: 'generated' | 'minio';
  objects: number;
  wallS: number;
  wallMsPerObject: number;
  ceilingMsPerObject: number;
  producer: { peakRssMB: number; cpuS: number };
  workers: { peakRssMB: number; cpuS: number; startupCpuS: number };
  cpuSPer1000: number;
  cpuSPer1000AfterStartup: number;
  redisPeakDelta: number;
  simulatorInputs: number;
  points: number;
  objectsIndexed: number;
  objectsFailed: number;
}

interface Env {
  redis: Redis;
  redisUrl: string;
  genUrl: string;
  simUrl: string;
  qdrantUrl: string;
  base: NodeJS.ProcessEnv;
  cliEnv(prefix: string, s3: Record<string, string>, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
}

const genS3Env = (url: string): Record<string, string> => ({
  S3_ENDPOINT: url,
  S3_FORCE_PATH_STYLE: 'true',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench-secret',
});

/** Samples Redis while a run goes: used_memory and waiting jobs (peaks), and a few job hashes. */
class RedisWatch {
  peak = 0;
  peakWaiting = 0;
  private readonly hashBytes: number[] = [];
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    let tick = 0;
    while (!this.stopped) {
      this.peak = Math.max(this.peak, await usedMemory(this.redis));
      const wait = `${this.prefix}:embed:wait`;
      this.peakWaiting = Math.max(this.peakWaiting, await this.redis.llen(wait));
      if (tick++ % 8 === 0 && this.hashBytes.length < 200) {
        for (const id of await this.redis.lrange(wait, 0, 4)) {
          const bytes = Number((await this.redis.memory('USAGE', `${this.prefix}:embed:${id}`, 'SAMPLES', '0')) ?? 0);
          if (bytes > 0) this.hashBytes.push(bytes);
        }
      }
      await sleep(250);
    }
  }
  async stop(): Promise<{ peak: number; peakWaiting: number; jobHashBytes: number; samples: number }> {
    this.stopped = true;
    await this.done;
    const n = this.hashBytes.length;
    return {
      peak: this.peak,
      peakWaiting: this.peakWaiting,
      jobHashBytes: n ? this.hashBytes.reduce((a, b) => a + b, 0) / n : 0,
      samples: n,
    };
  }
}

async function producerPoint(
  env: Env,
  sampler: ProcSampler,
  n: number,
  profileDir: string | undefined,
  log: (s: string) => void,
): Promise<ProducerPoint> {
  const bucket = genBucket(n);
  const client = testS3Client({
    endpoint: env.genUrl,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
    kind: 'minio',
  });
  const bare = await bareListing(client, bucket);
  if (bare.keys !== n) throw new Error(`${bucket} listed ${bare.keys} keys`);
  client.destroy();

  const prefix = newPrefix(`bscale${n}`);
  const drain = spawnNode(
    'bench/drain-child.ts',
    [env.redisUrl, prefix, String(DRAIN.concurrency), String(DRAIN.jobMs)],
    env.base,
  );
  await drain.waitFor(/drain ready/);
  const baseline = await usedMemory(env.redis);
  const watch = new RedisWatch(env.redis, prefix);
  const spawned = performance.now();
  const load0 = loadavg()[0] ?? 0;
  const { process: indexProc, runId } = await startIndex(
    indexArgs(bucket, `bscale-${n}`, MODEL),
    env.cliEnv(prefix, genS3Env(env.genUrl)),
    sampler,
    profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/producer-${n}`] : [],
  );
  const exitCode = await indexProc.exited;
  const wallS = (performance.now() - spawned) / 1000;
  sampler.sample();
  const { run } = await waitRun(env.redis, prefix, runId, 3600, 500);
  const r = await watch.stop();
  await drain.stop();
  // what the finished run leaves in Redis: its records, and the completed jobs BullMQ keeps
  const leftDelta = (await usedMemory(env.redis)) - baseline;
  let runRecordBytes = 0;
  // the run's keys, and the seen-set of the versions before its digests
  for (const part of [...RUN_PARTS, ':seen'])
    runRecordBytes += Number((await env.redis.memory('USAGE', `${prefix}:run:${runId}${part}`, 'SAMPLES', '0')) ?? 0);
  const completedJobs = await env.redis.zcard(`${prefix}:embed:completed`);
  const start = indexProc.lineTime(/: scanning s3:/) ?? spawned;
  const end = indexProc.lineTime(/: scanned \d+ objects/) ?? performance.now();
  const scanS = (end - start) / 1000;
  const p = cost(sampler, [indexProc]);
  if (exitCode !== 0) log(indexProc.output().slice(-2000));

  // nothing drains: what sits in Redis after HOLD_S (or once the producer is done)
  const heldPrefix = newPrefix(`bhold${n}`);
  const before = await usedMemory(env.redis);
  const held = await startIndex(
    indexArgs(bucket, `bhold-${n}`, MODEL),
    env.cliEnv(heldPrefix, genS3Env(env.genUrl)),
    sampler,
  );
  const heldStart = performance.now();
  let exited = false;
  void held.process.exited.then(() => (exited = true));
  while (!exited && performance.now() - heldStart < HOLD_S * 1000) await sleep(250);
  const waiting = await env.redis.llen(`${heldPrefix}:embed:wait`);
  const after = await usedMemory(env.redis);
  const sampleIds = await env.redis.lrange(`${heldPrefix}:embed:wait`, 0, 49);
  const sizes = await Promise.all(
    sampleIds.map(async (id) =>
      Number((await env.redis.memory('USAGE', `${heldPrefix}:embed:${id}`, 'SAMPLES', '0')) ?? 0),
    ),
  );
  const jobHashBytes = sizes.length ? sizes.reduce((a, b) => a + b, 0) / sizes.length : 0;
  await held.process.stop('SIGKILL');
  const heldS = (performance.now() - heldStart) / 1000;
  // the held run's keys go, so that the next size starts from the same Redis
  await env.redis.eval(
    `for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 1`,
    0,
    `${heldPrefix}:*`,
  );
  await env.redis.eval(
    `for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 1`,
    0,
    `${prefix}:*`,
  );

  // the producer alone: no bound, nothing draining (its jobs are deleted afterwards),
  // against a bare listing taken just before it (the machine's load moves)
  const client2 = testS3Client({
    endpoint: env.genUrl,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
    kind: 'minio',
  });
  const bareAgain = await bareListing(client2, bucket);
  client2.destroy();
  const alonePrefix = newPrefix(`balone${n}`);
  const aloneRun = await runIndex(
    indexArgs(bucket, `balone-${n}`, MODEL),
    env.cliEnv(alonePrefix, genS3Env(env.genUrl), {
      MAX_QUEUED_JOBS: '0',
      // BENCH_ALONE_NODE_OPTIONS: node options of the producer alone (a heap cap, to tell lazy GC from growth)
      ...(process.env.BENCH_ALONE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_ALONE_NODE_OPTIONS } : {}),
    }),
    sampler,
    profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/alone-${n}`] : [],
  );
  const a = cost(sampler, [aloneRun.process]);
  await env.redis.eval(
    `for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 1`,
    0,
    `${alonePrefix}:*`,
  );
  if (aloneRun.objects !== n) throw new Error(`the producer alone scanned ${aloneRun.objects} of ${n} objects`);

  const point: ProducerPoint = {
    objects: n,
    alone: {
      scanS: aloneRun.scanS,
      objectsPerS: n / aloneRun.scanS,
      bareObjectsPerS: n / bareAgain.seconds,
      ratioToBare: bareAgain.seconds / aloneRun.scanS,
      peakRssMB: a.hwm / MB,
      cpuSPer1000: (a.cpu / n) * 1000,
    },
    bareListing: { seconds: bare.seconds, objectsPerS: n / bare.seconds },
    index: {
      scanS,
      wallS,
      objectsPerS: n / scanS,
      ratioToBare: bare.seconds / scanS,
      exitCode,
      scanWaits: run.counters.scanWaits,
      scanWaitS: run.counters.scanWaitMs / 1000,
    },
    loadAverage: { before: load0, after: loadavg()[0] ?? 0 },
    redis: {
      baseline,
      peakDelta: r.peak - baseline,
      peakWaiting: r.peakWaiting,
      jobHashBytes,
      jobHashSamples: sizes.length,
      left: { usedMemoryDelta: leftDelta, bytesPerObject: leftDelta / n, runRecordBytes, completedJobs },
    },
    producer: { peakRssMB: p.hwm / MB, cpuS: p.cpu, cpuSPer1000: (p.cpu / n) * 1000 },
    counters: {
      scanned: run.counters.scanned,
      queuedObjects: run.counters.queuedObjects,
      jobsAdded: run.counters.jobsAdded,
      jobsDone: run.counters.jobsDone,
      objectsIndexed: run.counters.objectsIndexed,
    },
    held: {
      seconds: heldS,
      waiting,
      usedMemoryDelta: after - before,
      bytesPerQueuedJob: waiting ? (after - before) / waiting : 0,
      exited,
    },
  };
  log(
    `  ${n}: listing ${point.bareListing.objectsPerS.toFixed(0)}/s, scan+enqueue ${point.index.objectsPerS.toFixed(0)}/s (${(point.index.ratioToBare * 100).toFixed(0)}%; ${point.index.scanWaits} waits, ${point.index.scanWaitS.toFixed(1)} s), load ${point.loadAverage.before.toFixed(1)}-${point.loadAverage.after.toFixed(1)}, Redis peak +${(point.redis.peakDelta / MB).toFixed(1)} MB, ${point.redis.peakWaiting} waiting at most, job hash ${point.redis.jobHashBytes.toFixed(0)} B, producer ${point.producer.peakRssMB.toFixed(0)} MB / ${point.producer.cpuSPer1000.toFixed(2)} CPU s per 1k; held: ${waiting} jobs, ${point.held.bytesPerQueuedJob.toFixed(0)} B/job; alone: ${point.alone.objectsPerS.toFixed(0)}/s against ${point.alone.bareObjectsPerS.toFixed(0)}/s bare (${(point.alone.ratioToBare * 100).toFixed(0)}%), ${point.alone.peakRssMB.toFixed(0)} MB, ${point.alone.cpuSPer1000.toFixed(2)} CPU s per 1k`,
  );
  return point;
}

async function countPoints(qdrantUrl: string, collection: string): Promise<number> {
  const r = await fetch(`${qdrantUrl}/collections/${collection}/points/count`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ exact: true }),
  });
  const body = (await r.json()) as { result?: { count?: number } };
  return body.result?.count ?? -1;
}

async function pipelinePoint(
  env: Env,
  sampler: ProcSampler,
  n: number,
  store: 'generated' | 'minio',
  s3: Record<string, string>,
  bucket: string,
  profileDir: string | undefined,
  log: (s: string) => void,
): Promise<PipelinePoint> {
  await fetch(`${env.simUrl}/_sim/reset`, { method: 'POST' }).then((r) => r.arrayBuffer());
  const prefix = newPrefix(`bpipe${n}`);
  const collection = `bpipe-${store}-${n}`;
  const cliEnv = env.cliEnv(prefix, s3, { WORKER_CONCURRENCY: '6' });
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  // BENCH_WORKER_NODE_OPTIONS: NODE_OPTIONS of the pipeline's workers alone; BENCH_WORKER_NODE_ARGS:
  // node arguments of theirs, space-separated (to try V8 flags NODE_OPTIONS does not take)
  const workerEnv = process.env.BENCH_WORKER_NODE_OPTIONS
    ? { ...cliEnv, NODE_OPTIONS: process.env.BENCH_WORKER_NODE_OPTIONS }
    : cliEnv;
  const workerArgs = (process.env.BENCH_WORKER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const workers = await startWorkers(2, workerEnv, sampler, [...nodeArgs, ...workerArgs]);
  const baseline = await usedMemory(env.redis);
  const watch = new RedisWatch(env.redis, prefix);
  const t0 = performance.now();
  const index = spawnCli(indexArgs(bucket, collection, MODEL), cliEnv, nodeArgs);
  sampler.track(index.pid);
  const runId = (await index.waitFor(/^run (\S+): scanning/m, 120_000))[1] ?? '';
  const { run, doneAt } = await waitRun(env.redis, prefix, runId, 3600, 200);
  await index.exited;
  const r = await watch.stop();
  sampler.sample();
  const w = cost(sampler, workers.processes);
  const p = cost(sampler, [index]);
  await workers.stop();
  const stats = (await (await fetch(`${env.simUrl}/_sim/stats`)).json()) as { inputs: number };
  const points = await countPoints(env.qdrantUrl, collection);
  const wallS = (doneAt - t0) / 1000;
  const point: PipelinePoint = {
    store,
    objects: n,
    wallS,
    wallMsPerObject: (wallS * 1000) / n,
    ceilingMsPerObject: 1000 / ((300 / 60) * 20),
    producer: { peakRssMB: p.hwm / MB, cpuS: p.cpu },
    workers: { peakRssMB: w.hwm / MB, cpuS: w.cpu, startupCpuS: workers.startupCpu },
    cpuSPer1000: ((p.cpu + w.cpu) / n) * 1000,
    cpuSPer1000AfterStartup: ((p.cpu + w.cpu - workers.startupCpu) / n) * 1000,
    redisPeakDelta: r.peak - baseline,
    simulatorInputs: stats.inputs,
    points,
    objectsIndexed: run.counters.objectsIndexed,
    objectsFailed: run.counters.objectsFailed,
  };
  log(
    `  pipeline ${store} ${n}: ${wallS.toFixed(1)} s (${point.wallMsPerObject.toFixed(2)} ms/object, ceiling ${point.ceilingMsPerObject} ms), workers ${point.workers.peakRssMB.toFixed(0)} MB, ${point.cpuSPer1000.toFixed(2)} CPU s/1k (${point.cpuSPer1000AfterStartup.toFixed(2)} after start-up), Redis peak +${(point.redisPeakDelta / MB).toFixed(1)} MB, inputs ${stats.inputs}, points ${points}, indexed ${point.objectsIndexed}, failed ${point.objectsFailed}`,
  );
  await env.redis.eval(
    `for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 1`,
    0,
    `${prefix}:*`,
  );
  return point;
}

/** Fills a MinIO bucket with the generated bucket's objects (PutObject, 16 at a time). */
async function fillMinio(client: S3Client, bucket: string, n: number): Promise<void> {
  await createBucket(client, bucket);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        const i = next++;
        await client.send(
          new PutObjectCommand({ Bucket: bucket, Key: genKey(i), Body: genBody(i), ContentType: 'text/plain' }),
        );
      }
    }),
  );
}

export async function bucketScale(
  opts: {
    sizes: number[];
    pipelineSizes: number[];
    /** Which stores the pipeline runs on. @defaultValue both */
    stores?: readonly ('generated' | 'minio')[];
    profileDir?: string;
    label: string;
  },
  log: (s: string) => void,
): Promise<{ producer: ProducerPoint[]; pipeline: PipelinePoint[] }> {
  const sampler = new ProcSampler();
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const base = benchBaseEnv({ MODEL_OVERRIDES: OVERRIDES });
  const gen = spawnNode('bench/gen-s3-child.ts', [], base);
  const sim = spawnCli(
    [
      'simulate',
      '--port',
      '0',
      '--api-key',
      BENCH_API_KEY,
      '--rate-limits',
      'documented',
      '--latency-ms',
      '150',
      '--latency-per-input-ms',
      '2',
      '--jitter-ms',
      '50',
    ],
    base,
  );
  const qdrant = spawnNode('bench/qdrant-child.ts', [], base);
  const children: NodeProcess[] = [gen, sim, qdrant];
  let minio: Awaited<ReturnType<typeof startMinio>> | undefined;
  try {
    const genUrl = (await gen.waitFor(/gen-s3 listening on (\S+)/))[1] ?? '';
    const simUrl = (await sim.waitFor(/simulator listening on (http:\/\/\S+)/))[1] ?? '';
    const qdrantUrl = (await qdrant.waitFor(/listening on (http:\/\/\S+)/))[1] ?? '';
    const env: Env = {
      redis,
      redisUrl: redisServer.url,
      genUrl,
      simUrl,
      qdrantUrl,
      base,
      cliEnv: (prefix, s3, extra = {}) => ({
        ...base,
        DASHSCOPE_BASE_URL: simUrl,
        REDIS_URL: redisServer.url,
        QUEUE_PREFIX: prefix,
        QDRANT_URL: qdrantUrl,
        ...s3,
        ...extra,
      }),
    };
    const producer: ProducerPoint[] = [];
    for (const n of opts.sizes) producer.push(await producerPoint(env, sampler, n, opts.profileDir, log));
    const pipeline: PipelinePoint[] = [];
    const stores = opts.stores ?? ['generated', 'minio'];
    for (const n of opts.pipelineSizes) {
      if (stores.includes('generated'))
        pipeline.push(
          await pipelinePoint(env, sampler, n, 'generated', genS3Env(genUrl), genBucket(n), opts.profileDir, log),
        );
      if (!stores.includes('minio')) continue;
      minio = await startMinio();
      const client = testS3Client(minio);
      await fillMinio(client, `minio-${n}`, n);
      client.destroy();
      pipeline.push(await pipelinePoint(env, sampler, n, 'minio', s3Env(minio), `minio-${n}`, undefined, log));
      await minio.close();
      minio = undefined;
    }
    const results = {
      label: opts.label,
      at: new Date().toISOString(),
      cli: cliMode(),
      drain: DRAIN,
      holdS: HOLD_S,
      producer,
      pipeline,
    };
    writeFileSync(`${ROOT}/bench/results-bucket-scale-${opts.label}.json`, `${JSON.stringify(results, null, 2)}\n`);
    return { producer, pipeline };
  } finally {
    sampler.stop();
    for (const c of children) await c.stop();
    stopChildren();
    await minio?.close();
    await redis.quit().catch(() => undefined);
    await redisServer.close();
  }
}

const argValue = (argv: readonly string[], name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};

/**
 * `npm run bench -- --bucket-scale [--sizes A,B] [--pipeline-sizes A] [--stores generated,minio]
 * [--profile DIR] [--label NAME]`.
 */
export async function bucketScaleMain(argv: readonly string[]): Promise<void> {
  const list = (v: string | undefined, d: number[]): number[] =>
    v === undefined ? d : v === '' ? [] : v.split(',').map(Number);
  const t0 = performance.now();
  const log = (s: string): void =>
    void process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  const sizes = list(argValue(argv, '--sizes'), [10_000, 100_000, 1_000_000]);
  const pipelineSizes = list(argValue(argv, '--pipeline-sizes'), [10_000]);
  const profileDir = argValue(argv, '--profile');
  const label = argValue(argv, '--label') ?? 'latest';
  const storeList = argValue(argv, '--stores')?.split(',') ?? ['generated', 'minio'];
  const unknown = storeList.filter((s) => s !== 'generated' && s !== 'minio');
  if (unknown.length > 0) throw new Error(`--stores takes generated and minio, not ${unknown.join(', ')}`);
  const stores = storeList as ('generated' | 'minio')[];
  log(
    `bucket-scale: producer at ${sizes.join(', ')}; pipeline at ${pipelineSizes.join(', ')} on ${stores.join(', ')}; mm-ingest ${cliMode() === 'compiled' ? 'compiled (bin/mm-ingest.js, dist/ built now)' : 'through tsx (BENCH_CLI=tsx)'}`,
  );
  await bucketScale({ sizes, pipelineSizes, stores, ...(profileDir ? { profileDir } : {}), label }, log);
}
