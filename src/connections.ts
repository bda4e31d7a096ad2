/**
 * The one place that builds real clients from configuration (used by the CLI and the
 * worker entry point). Everything else receives them.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { EMBED_QUEUE } from '../jobs/embed-job.js';
import type { EmbedJobData } from '../jobs/embed-job.js';
import type { Config } from './config.js';
import { createQdrantStore } from './qdrant-store.js';
import { RunStore } from './runs.js';
import { createS3Store } from './s3-store.js';

/** A single Redis or a cluster: every caller uses only commands both answer alike. */
export type RedisClient = Redis | Cluster;

/**
 * BullMQ's blocking connections must retry forever (maxRetriesPerRequest: null).
 * On a cluster (REDIS_CLUSTER), REDIS_URL lists seed nodes; the client discovers the
 * others and follows MOVED/ASK redirections. Every key we use shares the prefix's hash
 * tag (config.ts refuses a cluster prefix without one), so multi-key commands, MULTI and
 * scripts all stay within one slot.
 */
export function redisConnection(config: Config): RedisClient {
  if (!config.redisCluster) return new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const seeds = config.redisUrl.split(',').map((u) => new URL(u));
  const first = seeds[0] ?? new URL('redis://127.0.0.1:6379');
  const tls = first.protocol === 'rediss:';
  return new Cluster(
    seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    {
      redisOptions: {
        maxRetriesPerRequest: null,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
        ...(tls ? { tls: {} } : {}),
      },
      // ioredis resolves node names to addresses itself; with TLS, keep the names, so that
      // the nodes' certificates (issued for names, as managed services issue them) verify
      ...(tls ? { dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) => callback(null, address) } : {}),
    },
  );
}

export function objectStore(config: Config) {
  return createS3Store({
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
    region: config.awsRegion,
    forcePathStyle: config.s3ForcePathStyle,
  });
}

export function vectorStore(config: Config) {
  return createQdrantStore({ url: config.qdrantUrl, ...(config.qdrantApiKey ? { apiKey: config.qdrantApiKey } : {}) });
}

export function embedQueue(config: Config, connection: RedisClient): Queue<EmbedJobData> {
  return new Queue<EmbedJobData>(EMBED_QUEUE, { connection, prefix: config.queuePrefix });
}

export function runStore(config: Config, connection: RedisClient): RunStore {
  return new RunStore(connection, config.queuePrefix);
}
