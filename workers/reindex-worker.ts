/**
 * The reindex worker: consumes the `reindex` control queue (one scan at a time per
 * process) and queues embed jobs for the embed workers. Started by `mm-ingest worker`.
 */
import { Worker } from 'bullmq';
import { createReindexHandler } from '../jobs/reindex-job.js';
import type { ReindexResult } from '../jobs/reindex-job.js';
import type { Config } from '../src/config.js';
import {
  REINDEX_QUEUE,
  embedQueue,
  objectStore,
  redisConnection,
  redisLabel,
  runStore,
  vectorStore,
} from '../src/connections.js';
import { createLogger } from '../src/log.js';
import { redisOutageLog } from '../src/reach.js';
import type { RedisOutageLog } from '../src/reach.js';
import { inBullmqTerms } from './job-errors.js';

export interface RunningReindexWorker {
  readonly worker: Worker<unknown, ReindexResult>;
  close(): Promise<void>;
}

/** `outage`: the process's log of Redis outages (the embed worker's), so that one outage is one line per interval. */
export function startReindexWorker(
  config: Config,
  opts: { readonly outage?: RedisOutageLog } = {},
): RunningReindexWorker {
  const log = createLogger(config.logLevel, 'mm-ingest-reindex');
  const connection = redisConnection(config);
  const outage = opts.outage ?? redisOutageLog({ label: redisLabel(config), intervalMs: config.connectTimeoutMs, log });
  outage.watch(connection);
  const queue = embedQueue(config, connection);
  const handle = createReindexHandler({
    config,
    store: objectStore(config),
    vectors: vectorStore(config),
    queue,
    runs: runStore(config, connection),
  });
  // a crashed worker's scan is picked up again after the lock lapses, and resumes its run
  // BullMQ stores a failure's message and stack: without the secrets a store's message may hold
  const worker: Worker<unknown, ReindexResult> = new Worker<unknown, ReindexResult>(
    REINDEX_QUEUE,
    async (job, token) =>
      handle(job).catch(async (err: unknown) =>
        Promise.reject(await inBullmqTerms(err, { job, token, stopping: false })),
      ),
    {
      connection,
      prefix: config.queuePrefix,
      concurrency: 1,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.lockDurationMs,
      maxStalledCount: 5,
    },
  );
  worker.on('completed', (job, result) => log.info({ jobId: job.id, ...result }, 'reindex queued'));
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, err: err.message }, 'reindex job failed'));
  worker.on('error', (err) => outage.error(err, (e) => log.warn({ err: e.message }, 'reindex worker error')));
  return {
    worker,
    async close() {
      await worker.close();
      await queue.close();
      await connection.quit();
    },
  };
}
