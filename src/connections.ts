/**
 * The one place that builds real clients from configuration (used by the CLI and the
 * worker entry point). Everything else receives them.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { EMBED_QUEUE } from '../jobs/embed-job.js';
import type { EmbedJobData } from '../jobs/embed-job.js';
import type { Config } from './config.js';
import { createQdrantStore } from './qdrant-store.js';
import { RunStore } from './runs.js';
import { createS3Store } from './s3-store.js';

/** BullMQ's blocking connections must retry forever (maxRetriesPerRequest: null). */
export function redisConnection(config: Config): Redis {
  return new Redis(config.redisUrl, { maxRetriesPerRequest: null });
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

export function embedQueue(config: Config, connection: Redis): Queue<EmbedJobData> {
  return new Queue<EmbedJobData>(EMBED_QUEUE, { connection, prefix: config.queuePrefix });
}

export function runStore(config: Config, connection: Redis): RunStore {
  return new RunStore(connection, config.queuePrefix);
}
