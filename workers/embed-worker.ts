/**
 * The worker process: builds the real clients from configuration, runs embed jobs with
 * BullMQ, and drains on SIGTERM/SIGINT (takes no new job, lets the jobs in flight
 * finish, then exits 0).
 */
import { Worker } from 'bullmq';
import type { Job } from 'bullmq';
import { createEmbedHandler } from '../jobs/embed-handler.js';
import { EMBED_QUEUE } from '../jobs/embed-job.js';
import type { EmbedJobData } from '../jobs/embed-job.js';
import { requireApiKey } from '../src/config.js';
import type { Config } from '../src/config.js';
import { objectStore, redisConnection, runStore, vectorStore } from '../src/connections.js';
import { DashScopeClient } from '../src/embedder.js';
import { createLogger } from '../src/log.js';
import type { JobResult } from '../src/runs.js';
import { qwenTokens } from '../src/tokens.js';

export interface RunningWorker {
  readonly worker: Worker<EmbedJobData, JobResult>;
  /** Stops taking jobs, waits for the ones in flight, closes connections. */
  close(): Promise<void>;
}

export function startEmbedWorker(config: Config): RunningWorker {
  const apiKey = requireApiKey(config); // before any connection: a missing key must not leave one open
  const log = createLogger(config.logLevel, 'mm-ingest-worker');
  const connection = redisConnection(config);
  const runs = runStore(config, connection);
  const handle = createEmbedHandler({
    store: objectStore(config),
    embedder: new DashScopeClient({ apiKey, baseUrl: config.baseUrl, timeoutMs: config.requestTimeoutMs }),
    vectors: vectorStore(config),
    tokens: qwenTokens,
    runs,
    log,
    modelOverrides: config.models,
    fetchConcurrency: config.fetchConcurrency,
    presignSeconds: config.presignSeconds,
  });

  const worker = new Worker<EmbedJobData, JobResult>(
    EMBED_QUEUE,
    async (job: Job<EmbedJobData, JobResult>) => {
      const result = await handle({ id: job.id, data: job.data });
      await runs.recordJob(job.data.runId, job.id ?? '', result);
      return result;
    },
    { connection, prefix: config.queuePrefix, concurrency: config.concurrency },
  );

  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    log.warn({ runId: job.data.runId, jobId: job.id, attempt: job.attemptsMade, final, err: err.message }, 'embed job failed');
    if (final) {
      const objects = job.data.objects.length;
      const reason = { status: 'failed' as const, code: (err as { code?: string }).code ?? 'job-failed', reason: err.message };
      void runs
        .recordItems(job.data.runId, new Map(job.data.objects.map(([key]) => [key, reason])))
        .then(() => runs.recordJob(job.data.runId, job.id ?? '', { status: 'failed', objects, indexed: 0, skipped: 0, failed: objects, points: 0, error: err.message }))
        .catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not record a failed job'));
    }
  });
  worker.on('error', (err) => log.warn({ err: err.message }, 'worker error'));

  return {
    worker,
    async close() {
      await worker.close();
      await connection.quit();
      log.flush();
    },
  };
}
