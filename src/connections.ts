/**
 * The one place that builds real clients from configuration (used by the CLI and the
 * worker entry point). Everything else receives them.
 */
import { Queue } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { EMBED_QUEUE } from './embed-job.js';
import type { EmbedJobData } from './embed-job.js';
import { requireApiKey } from './config.js';
import type { Config } from './config.js';
import { DashScopeClient } from './embedder.js';
import type { SendThread } from './send-thread.js';
import { createQdrantStore } from './qdrant-store.js';
import { serviceLabel } from './reach.js';
import type { ServiceLabel } from './reach.js';
import { RunStore } from './runs.js';
import { createS3Store } from './s3-store.js';
import type { S3Store } from './s3-store.js';

/** A single Redis or a cluster: every caller uses only commands both answer alike. */
export type RedisClient = Redis | Cluster;

/**
 * BullMQ's blocking connections must retry forever (maxRetriesPerRequest: null).
 * On a cluster (REDIS_CLUSTER), REDIS_URL lists seed nodes; the client discovers the
 * others and follows MOVED/ASK redirections. Every key we use shares the prefix's hash
 * tag (config.ts refuses a cluster prefix without one), so multi-key commands, MULTI and
 * scripts all stay within one slot.
 */
export function redisConnection(config: Config, options: Pick<RedisOptions, 'retryStrategy'> = {}): RedisClient {
  // a TCP connect that hangs (a firewall dropping packets) errors after the same bound as a silent server
  const common = { maxRetriesPerRequest: null, connectTimeout: config.connectTimeoutMs };
  if (!config.redisCluster) return new Redis(config.redisUrl, { ...common, ...options });
  const seeds = config.redisUrl.split(',').map((u) => new URL(u));
  const first = seeds[0] ?? new URL('redis://127.0.0.1:6379');
  const tls = first.protocol === 'rediss:';
  return new Cluster(
    seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    {
      redisOptions: {
        ...common,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
        ...(tls ? { tls: {} } : {}),
      },
      // ioredis resolves node names to addresses itself; with TLS, keep the names, so that
      // the nodes' certificates (issued for names, as managed services issue them) verify
      ...(tls
        ? {
            dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) =>
              callback(null, address),
          }
        : {}),
    },
  );
}

/** How Redis is named in messages: its URL (a cluster's seeds) with passwords masked. */
export function redisLabel(config: Config): ServiceLabel {
  return serviceLabel(config.redisCluster ? 'Redis Cluster' : 'Redis', config.redisUrl);
}

export function s3Label(config: Config): ServiceLabel {
  return serviceLabel('S3', config.s3Endpoint === '' ? `AWS S3 (${config.awsRegion})` : config.s3Endpoint, [
    process.env.AWS_SECRET_ACCESS_KEY,
  ]);
}

export function qdrantLabel(config: Config): ServiceLabel {
  return serviceLabel('Qdrant', config.qdrantUrl, [config.qdrantApiKey]);
}

export function objectStore(config: Config): S3Store {
  return createS3Store({
    endpoint: config.s3Endpoint,
    region: config.awsRegion,
    forcePathStyle: config.s3ForcePathStyle,
    listAhead: config.listAheadPages,
  });
}

export function vectorStore(config: Config) {
  return createQdrantStore({ url: config.qdrantUrl, apiKey: config.qdrantApiKey });
}

/** The control queue that reindex requests go to (`mm-ingest reindex`, the dashboard, any BullMQ client). */
export const REINDEX_QUEUE = 'reindex';

export function reindexQueue(config: Config, connection: RedisClient): Queue {
  const queue = new Queue(REINDEX_QUEUE, { connection, prefix: config.queuePrefix });
  quiet(queue);
  return queue;
}

/**
 * The embedding API client (the worker's, `search`'s, `doctor`'s): one place builds it.
 * `timeoutMs` defaults to REQUEST_TIMEOUT_MS; doctor bounds its probe by CONNECT_TIMEOUT_MS.
 */
export function embeddingClient(
  config: Config,
  opts: { readonly apiKey?: string; readonly timeoutMs?: number; readonly sendThread?: SendThread } = {},
): DashScopeClient {
  return new DashScopeClient({
    apiKey: opts.apiKey ?? requireApiKey(config),
    baseUrl: config.baseUrl,
    timeoutMs: opts.timeoutMs ?? config.requestTimeoutMs,
    ...(opts.sendThread ? { sendThread: opts.sendThread } : {}),
  });
}

/**
 * Entries BullMQ keeps in the embed queue's events stream (its default is 10,000, about 1 MB
 * of Redis at some 107 B an entry, two entries a queued job). Nothing here reads that stream
 * (runs follow their jobs through the run records; the dashboard reads the jobs): it is
 * only there for a QueueEvents listener of the operator's, which still sees every event as
 * it happens. Redis trims by whole stream nodes (MAXLEN ~), so it may keep about 100 more.
 */
export const EMBED_EVENTS_MAX_LEN = 1000;

export function embedQueue(config: Config, connection: RedisClient): Queue<EmbedJobData> {
  // every embed Queue sets the bound (BullMQ stores it in the queue's meta hash, where the
  // workers' scripts read it), so one of another setting never restores the default
  const queue = new Queue<EmbedJobData>(EMBED_QUEUE, {
    connection,
    prefix: config.queuePrefix,
    streams: { events: { maxLen: EMBED_EVENTS_MAX_LEN } },
  });
  quiet(queue);
  return queue;
}

/**
 * A queue repeats its connection's errors, which whoever watches the connection reports (a
 * command's check, a worker's outage log); without a listener BullMQ prints each one with
 * its stack trace, once per reconnection attempt.
 */
export function quiet(queue: { on(event: 'error', listener: (err: Error) => void): unknown }): void {
  queue.on('error', () => {});
}

export function runStore(config: Config, connection: RedisClient): RunStore {
  return new RunStore(connection, config.queuePrefix, config.runRetentionDays * 24 * 3600 * 1000);
}
