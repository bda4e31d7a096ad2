/**
 * The benchmark's servers, each in a process of its own so that the two cores are shared
 * the way they would be on one machine: s3rver (test/support/s3.ts), a redis-server of the
 * bench's own on a free port (test/support/redis-server.ts, so INFO memory is ours alone),
 * the API simulator (`mm-ingest simulate`, rate limits `documented`, with latency), and
 * the Qdrant stand-in (bench/qdrant-child.ts), or the real Qdrant at QDRANT_URL.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SimulatorStats } from '../../src/simulator/stats.js';
import { startRedisServer } from '../../test/support/redis-server.js';
import type { RedisServerForTest } from '../../test/support/redis-server.js';
import { s3Env, testS3Client } from '../../test/support/s3.js';
import { startS3rver } from '../../test/support/s3rver.js';
import type { S3rverForTest } from '../../test/support/s3rver.js';
import { spawnCli, spawnNode } from './procs.js';
import type { NodeProcess } from './procs.js';

export const BENCH_API_KEY = 'sk-bench-0123456789abcdef';

export interface Latency {
  readonly fixedMs: number;
  readonly perInputMs: number;
  readonly jitterMs: number;
}

export interface BenchEnv {
  readonly s3: S3rverForTest;
  readonly s3client: S3Client;
  readonly redisServer: RedisServerForTest;
  readonly redis: Redis;
  readonly simUrl: string;
  readonly sim: NodeProcess;
  readonly qdrantUrl: string;
  readonly qdrantApiKey: string | undefined;
  readonly realQdrant: boolean;
  readonly qdrantProcess: NodeProcess | undefined;
  /** MODEL_OVERRIDES given to the simulator and to every CLI process ('' for none). */
  readonly modelOverrides: string;
  /** Environment of a CLI process with its own queue prefix. */
  cliEnv(prefix: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  simStats(): Promise<SimulatorStats>;
  /** Zeroes the simulator's stats and rate windows (between scenarios, so one's quota use does not throttle the next). */
  simReset(): Promise<void>;
  close(): Promise<void>;
}

export const newPrefix = (name: string): string => `bench-${name}-${randomUUID().slice(0, 6)}`;

/** The environment every process a bench starts gets: the bench's key, quiet logs, and `extra`. */
export function benchBaseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DASHSCOPE_API_KEY: BENCH_API_KEY,
    LOG_LEVEL: 'warn',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...extra,
  };
}

export async function startBenchEnv(latency: Latency, modelOverrides: string): Promise<BenchEnv> {
  const s3 = await startS3rver();
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const base = benchBaseEnv(modelOverrides ? { MODEL_OVERRIDES: modelOverrides } : {});
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
      String(latency.fixedMs),
      '--latency-per-input-ms',
      String(latency.perInputMs),
      '--jitter-ms',
      String(latency.jitterMs),
      // the pacing rows say when their 429s came (bench/scenarios/pacing.ts)
      '--capture-requests',
      '2000',
    ],
    base,
  );
  const simUrl = (await sim.waitFor(/simulator listening on (http:\/\/\S+)/))[1] ?? '';
  const realUrl = process.env.QDRANT_URL;
  let qdrantProcess: NodeProcess | undefined;
  let qdrantUrl: string;
  if (realUrl) qdrantUrl = realUrl;
  else {
    qdrantProcess = spawnNode('bench/qdrant-child.ts', [], base);
    qdrantUrl = (await qdrantProcess.waitFor(/listening on (http:\/\/\S+)/))[1] ?? '';
  }
  const qdrantApiKey = process.env.QDRANT_API_KEY || undefined;
  return {
    s3,
    s3client: testS3Client(s3),
    redisServer,
    redis,
    simUrl,
    sim,
    qdrantUrl,
    qdrantApiKey,
    realQdrant: realUrl !== undefined && realUrl !== '',
    qdrantProcess,
    modelOverrides,
    cliEnv: (prefix, extra = {}) => ({
      ...base,
      DASHSCOPE_BASE_URL: simUrl,
      REDIS_URL: redisServer.url,
      QUEUE_PREFIX: prefix,
      QDRANT_URL: qdrantUrl,
      ...(qdrantApiKey ? { QDRANT_API_KEY: qdrantApiKey } : {}),
      ...s3Env(s3),
      ...extra,
    }),
    async simStats() {
      const r = await fetch(`${simUrl}/_sim/stats`);
      return (await r.json()) as SimulatorStats;
    },
    async simReset() {
      const r = await fetch(`${simUrl}/_sim/reset`, { method: 'POST' });
      await r.arrayBuffer();
    },
    async close() {
      await redis.quit().catch(() => undefined);
      await sim.stop();
      await qdrantProcess?.stop();
      await redisServer.close();
      await s3.close();
    },
  };
}

/** Redis `INFO memory` used_memory, bytes. */
export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}
