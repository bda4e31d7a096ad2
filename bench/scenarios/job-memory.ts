/**
 * The job-memory scenario (`npm run bench -- --job-memory [--jobs 3000] [--label NAME]`):
 * where the Redis memory of a queued embed job goes. `mm-ingest index` runs on a generated
 * bucket (bench/gen-s3-child.ts) with MAX_QUEUED_JOBS=JOBS and nothing draining, so it
 * queues JOBS jobs of 20 short texts and waits; then every key of the run's prefix is
 * measured with MEMORY USAGE (SAMPLES 0: every element), by family (BullMQ's job hashes,
 * its deduplication keys, events stream and wait list, our run records, the rest),
 * against the `used_memory` delta, and one job hash is taken apart field by field. What a
 * job hash would take in Redis's compact hash encoding (listpack, used when every value is
 * at most `hash-max-listpack-value` bytes, 64 by default) is measured on a copy restored
 * under a raised limit. A redis-server of the scenario's own, so nothing else is counted.
 *
 * Writes bench/results-job-memory-NAME.json and prints the table.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../test/support/redis-server.js';
import { benchBaseEnv, newPrefix, usedMemory } from '../lib/env.js';
import { genBucket } from '../lib/gen-store.js';
import { indexArgs, startIndex } from '../lib/pipeline.js';
import { ProcSampler, ROOT, spawnNode, stopChildren } from '../lib/procs.js';

const MODEL = 'qwen3-vl-embedding';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface JobMemory {
  label: string;
  at: string;
  jobs: number;
  loadAverage: number;
  usedMemoryDelta: number;
  /** Bytes by family (MEMORY USAGE, SAMPLES 0), each over the jobs queued. */
  families: Record<string, { keys: number; bytes: number; perJob: number }>;
  eventsStream: { entries: number; perJob: number };
  jobHash: {
    encoding: string;
    bytes: number;
    fields: Record<string, number>;
    /** The same hash restored with hash-max-listpack-value raised above its longest value. */
    listpackBytes: number;
  };
}

async function memoryUsage(redis: Redis, key: string): Promise<number> {
  return Number((await redis.memory('USAGE', key, 'SAMPLES', '0')) ?? 0);
}

async function keysOf(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  return keys;
}

export async function jobMemory(opts: { jobs: number; label: string }, log: (s: string) => void): Promise<JobMemory> {
  const sampler = new ProcSampler();
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const base = benchBaseEnv({ DASHSCOPE_BASE_URL: 'http://127.0.0.1:9' });
  const gen = spawnNode('bench/gen-s3-child.ts', [], base);
  const qdrant = spawnNode('bench/qdrant-child.ts', [], base);
  try {
    const genUrl = (await gen.waitFor(/gen-s3 listening on (\S+)/))[1] ?? '';
    const qdrantUrl = (await qdrant.waitFor(/listening on (http:\/\/\S+)/))[1] ?? '';
    const prefix = newPrefix('jobmem');
    const objects = opts.jobs * 20 + 20_000;
    const baseline = await usedMemory(redis);
    const { process: producer, runId } = await startIndex(
      indexArgs(genBucket(objects), 'jobmem', MODEL),
      {
        ...base,
        REDIS_URL: redisServer.url,
        QUEUE_PREFIX: prefix,
        QDRANT_URL: qdrantUrl,
        MAX_QUEUED_JOBS: String(opts.jobs),
        S3_ENDPOINT: genUrl,
        S3_FORCE_PATH_STYLE: 'true',
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'bench',
        AWS_SECRET_ACCESS_KEY: 'bench-secret',
      },
      sampler,
    );
    // the producer queues up to its bound and waits there
    const waitKey = `${prefix}:embed:wait`;
    for (let i = 0; i < 1200; i++) {
      if ((await redis.hexists(`${prefix}:run:${runId}`, 'scanWaiting')) === 1) break;
      await sleep(250);
    }
    const jobs = await redis.llen(waitKey);
    if (jobs === 0) throw new Error(`nothing queued:\n${producer.output().slice(-2000)}`);
    const used = (await usedMemory(redis)) - baseline;

    const ids = await redis.lrange(waitKey, 0, -1);
    const jobKeys = new Set(ids.map((id) => `${prefix}:embed:${id}`));
    const all = await keysOf(redis, `${prefix}:*`);
    const family = (key: string): string => {
      if (jobKeys.has(key)) return 'job hashes';
      if (key.startsWith(`${prefix}:embed:de:`)) return 'deduplication keys';
      if (key === `${prefix}:embed:events`) return 'events stream';
      if (key === waitKey) return 'wait list';
      if (key.startsWith(`${prefix}:run:`))
        return `run record ${key.slice(`${prefix}:run:${runId}`.length) || '(hash)'}`;
      return `other ${key.slice(prefix.length + 1)}`;
    };
    const families: JobMemory['families'] = {};
    for (const key of all) {
      const f = family(key);
      const bytes = await memoryUsage(redis, key);
      const entry = (families[f] ??= { keys: 0, bytes: 0, perJob: 0 });
      entry.keys += 1;
      entry.bytes += bytes;
    }
    for (const f of Object.values(families)) f.perJob = f.bytes / jobs;
    const entries = await redis.xlen(`${prefix}:embed:events`);

    // one job hash, field by field, and in the compact encoding
    const sampleKey = `${prefix}:embed:${ids[Math.floor(ids.length / 2)]}`;
    const hash = await redis.hgetall(sampleKey);
    const fields = Object.fromEntries(Object.entries(hash).map(([k, v]) => [k, Buffer.byteLength(v)]));
    const encoding = String(await redis.object('ENCODING', sampleKey));
    const longest = Math.max(...Object.values(fields));
    const dump = await redis.dumpBuffer(sampleKey);
    const before = await redis.config('GET', 'hash-max-listpack-value');
    await redis.config('SET', 'hash-max-listpack-value', String(longest + 1));
    await redis.restore(`${prefix}:listpack-copy`, 0, dump);
    const listpackBytes = await memoryUsage(redis, `${prefix}:listpack-copy`);
    const listpackEncoding = String(await redis.object('ENCODING', `${prefix}:listpack-copy`));
    await redis.config('SET', 'hash-max-listpack-value', String((before as string[])[1] ?? '64'));
    await producer.stop('SIGKILL');

    const result: JobMemory = {
      label: opts.label,
      at: new Date().toISOString(),
      jobs,
      loadAverage: loadavg()[0] ?? 0,
      usedMemoryDelta: used,
      families,
      eventsStream: { entries, perJob: entries / jobs },
      jobHash: { encoding, bytes: await memoryUsage(redis, sampleKey), fields, listpackBytes },
    };
    const measured = Object.values(families).reduce((n, f) => n + f.bytes, 0);
    log(`${jobs} jobs queued; used_memory +${used} B (${(used / jobs).toFixed(0)} B a job)`);
    log(`| family | keys | bytes | per queued job |`);
    log(`|---|---|---|---|`);
    for (const [f, v] of Object.entries(families).sort((a, b) => b[1].bytes - a[1].bytes))
      log(`| ${f} | ${v.keys} | ${v.bytes} | ${v.perJob.toFixed(0)} |`);
    log(`| all keys (MEMORY USAGE) | ${all.length} | ${measured} | ${(measured / jobs).toFixed(0)} |`);
    log(`events stream: ${entries} entries (${(entries / jobs).toFixed(2)} a job)`);
    log(
      `job hash ${sampleKey.slice(prefix.length + 1)}: ${encoding}, ${result.jobHash.bytes} B; fields ${JSON.stringify(fields)}; as ${listpackEncoding}: ${listpackBytes} B`,
    );
    writeFileSync(`${ROOT}/bench/results-job-memory-${opts.label}.json`, `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    sampler.stop();
    await gen.stop();
    await qdrant.stop();
    stopChildren();
    await redis.quit().catch(() => undefined);
    await redisServer.close();
  }
}

export async function jobMemoryMain(argv: readonly string[]): Promise<void> {
  const at = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const jobs = Number(at('--jobs') ?? 3000);
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new Error(`--jobs must be a whole number of jobs, got ${at('--jobs')}`);
  const t0 = performance.now();
  const log = (s: string): void =>
    void process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  await jobMemory({ jobs, label: at('--label') ?? 'latest' }, log);
}
