/**
 * The worker process: builds the real clients from configuration, runs embed jobs with
 * BullMQ, and drains on SIGTERM/SIGINT (takes no new job, lets the jobs in flight finish
 * within the drain timeout; then a job still running sends no further API request, waits
 * for the one in flight, and goes back to the queue for another worker, without using an
 * attempt; the points it wrote stay, the same ids are overwritten when it is redone).
 *
 * A fatal API error pauses the queue for every worker and puts the job back untouched:
 * `Worker.RateLimitError` returns it to the queue without using an attempt.
 */
import { Worker } from 'bullmq';
import type { Job } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { createEmbedHandler } from '../jobs/embed-handler.js';
import { EMBED_QUEUE, jobNumber, paramsHash, resolveEmbedJob, unitsByObject } from '../src/embed-job.js';
import type { EmbedJobData } from '../src/embed-job.js';
import { readBounds, requireApiKey } from '../src/config.js';
import type { Config } from '../src/config.js';
import {
  embedQueue,
  embeddingClient,
  objectStore,
  redisConnection,
  redisLabel,
  reindexQueue,
  runStore,
  vectorStore,
} from '../src/connections.js';
import { createLogger } from '../src/log.js';
import { RedisParkedVectors } from '../src/parked.js';
import { pauseForReason } from '../src/pause.js';
import { createPrometheusMetrics, startMetricsServer } from '../src/prometheus.js';
import type { MetricsServer } from '../src/prometheus.js';
import { limiterTuning } from '../src/config-rate-limit.js';
import { SendThread } from '../src/send-thread.js';
import { OPEN_GATE, SharedRateLimiter } from '../src/rate-limit.js';
import { redisOutageLog } from '../src/reach.js';
import type { RedisOutageLog } from '../src/reach.js';
import { classifyChanges } from '../src/incremental.js';
import { recordJobResult } from '../src/runner.js';
import type { ItemOutcome, JobResult } from '../src/runs.js';
import { qwenTokens } from '../src/tokens.js';
import { inBullmqTerms, isFinalFailure } from './job-errors.js';

export interface RunningWorker {
  readonly worker: Worker<EmbedJobData, JobResult>;
  /** The `/metrics` server when `METRICS_PORT` is set (rejects if its port cannot be bound). */
  readonly metricsServer: Promise<MetricsServer | undefined>;
  /** The log of Redis outages, for other workers of the process to share. */
  readonly outage: RedisOutageLog;
  /** Stops taking jobs, waits for the ones in flight (up to the drain timeout), closes connections. */
  close(): Promise<void>;
}

/** How long a stopping worker with no job in flight waits for BullMQ's close before it disconnects. */
const CLOSE_IDLE_GRACE_MS = 5000;

export function startEmbedWorker(config: Config, opts: { readonly outage?: RedisOutageLog } = {}): RunningWorker {
  const apiKey = requireApiKey(config); // before any connection: a missing key must not leave one open
  const log = createLogger(config.logLevel, 'mm-ingest-worker');
  const connection = redisConnection(config);
  // a lost Redis is retried forever (BullMQ reconnects); it is logged once per CONNECT_TIMEOUT_MS
  const outage = opts.outage ?? redisOutageLog({ label: redisLabel(config), intervalMs: config.connectTimeoutMs, log });
  outage.watch(connection);
  const queue = embedQueue(config, connection);
  const runs = runStore(config, connection);
  const vectors = vectorStore(config);
  // no metrics server, no collection: the default metrics would watch the event loop for nothing
  const served = config.metricsPort !== undefined;
  // the reindex queue is only counted here (for the queue gauge), whoever consumes it
  const controlQueue = served ? reindexQueue(config, connection) : undefined;
  const registry = new Registry();
  const metrics = controlQueue ? createPrometheusMetrics(registry, { queues: [queue, controlQueue] }) : undefined;
  const metricsServer =
    config.metricsPort === undefined
      ? Promise.resolve(undefined)
      : startMetricsServer(config.metricsPort, registry, config.metricsHost);
  // handled at once, so a port that cannot be bound is no unhandled rejection before the caller awaits it
  metricsServer.then(
    (s) => s && log.info({ host: s.host, port: s.port }, 'metrics server started'),
    (err: unknown) =>
      log.error({ err: (err as Error).message, port: config.metricsPort }, 'metrics server failed to start'),
  );
  // load the tokenizer now (about half a second of blocked event loop), not while the
  // first jobs sleep until their reserved send times: woken late, they would bunch up
  qwenTokens.count('warm up');
  // one limiter per API key (a hash of it), whatever the queue prefix: the quota is the account's
  const gate =
    config.rateLimit === 'shared'
      ? new SharedRateLimiter(
          connection,
          { apiKey, baseUrl: config.baseUrl },
          {
            tuning: limiterTuning(config),
            onState: (model, st) => metrics?.rateLimitState?.(model, st.learnedRpm, st.margin),
            onLate: (model) => metrics?.rateLimitLateWake?.(model),
          },
        )
      : OPEN_GATE;
  // requests leave at their slots from a thread of their own (send-thread.ts)
  const sendThread = config.sendThread === 'on' ? new SendThread() : undefined;
  // booted now, so the first job's request does not wait for it
  void sendThread?.ready();
  const handle = createEmbedHandler({
    store: objectStore(config),
    embedder: embeddingClient(config, { apiKey, ...(sendThread ? { sendThread } : {}) }),
    vectors,
    tokens: qwenTokens,
    runs,
    log,
    gate,
    apiAttempts: config.apiAttempts,
    apiBackoffMs: config.apiBackoffMs,
    quotaPauseAfterMs: config.quotaPauseAfterMs,
    parked: new RedisParkedVectors(connection, config.queuePrefix),
    modelOverrides: config.models,
    fetchConcurrency: config.fetchConcurrency,
    presignSeconds: config.presignSeconds,
    bounds: readBounds(config),
    metrics,
  });

  /** A job's number in its run (counted once by it) and its hash in the queue. */
  const ownJob = (job: Job<EmbedJobData, JobResult>): { number: number | undefined; jobKey: string } => ({
    number: jobNumber(job.data),
    jobKey: queue.toKey(job.id ?? ''),
  });

  // aborted when the drain timeout passes: jobs still running send no further request
  const stopping = new AbortController();
  // jobs in this process's hands: a close with none left has nothing to wait for
  let inFlight = 0;
  const worker: Worker<EmbedJobData, JobResult> = new Worker<EmbedJobData, JobResult>(
    EMBED_QUEUE,
    async (job: Job<EmbedJobData, JobResult>, token?: string) => {
      inFlight++;
      try {
        const result = await handle({ id: job.id, data: job.data, signal: stopping.signal });
        // the run's last job finishes it (a rebuild switches its alias here), and so for
        // the runs that wait for this job too
        await recordJobResult({ runs, vectors }, job.data.runId, job.id ?? '', result, ownJob(job));
        return result;
      } catch (err) {
        if (stopping.signal.aborted && token)
          log.warn({ runId: job.data.runId, jobId: job.id }, 'job given back: the worker is stopping');
        throw await inBullmqTerms(err, {
          job,
          token,
          stopping: stopping.signal.aborted,
          worker,
          pause: async (reason, e) => {
            log.error(
              { runId: job.data.runId, jobId: job.id, code: e.code, requestId: e.requestId },
              `queue paused: ${reason}`,
            );
            await pauseForReason(queue, connection, config.queuePrefix, reason);
          },
        });
      } finally {
        inFlight--;
      }
    },
    {
      connection,
      prefix: config.queuePrefix,
      concurrency: config.concurrency,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.lockDurationMs,
      // a job may be picked up again after a crash a few times before it is failed
      maxStalledCount: 5,
    },
  );

  worker.on('failed', (job, err) => {
    if (!job || err.name === 'RateLimitError') return;
    const final = isFinalFailure(job, err);
    log.warn(
      { runId: job.data.runId, jobId: job.id, attempt: job.attemptsMade, final, err: err.message },
      'embed job failed',
    );
    if (final) {
      void recordFailedJob(job, err).catch((e: unknown) =>
        log.warn({ err: (e as Error).message }, 'could not record a failed job'),
      );
    }
  });
  /**
   * A job failed for good: its objects whose points an attempt already wrote in full (same
   * ETag and params hash) are indexed, not failed, so retry-failed does not buy them again.
   */
  async function recordFailedJob(job: Job<EmbedJobData, JobResult>, err: Error): Promise<void> {
    // a job that cannot be read (unknown format, run record gone) has nothing to record
    const data = await resolveEmbedJob(job.data, (id) => runs.jobSettings(id));
    const code = (err as { code?: string }).code ?? 'job-failed';
    const unitOf = unitsByObject(data);
    const singles = data.objects.filter((_, i) => !unitOf.has(i)).map((o) => ({ key: o[0], etag: o[1] }));
    const written = await classifyChanges(
      vectors,
      data.settings.collection,
      data.bucket,
      singles,
      paramsHash(data.settings),
    ).catch(() => new Map<string, string>());
    // a unit's members carry their unit, so that retry-failed queues it again whole
    const failures = data.objects.flatMap((o, i): [string, ItemOutcome][] => {
      if (written.get(o[0]) === 'unchanged') return [];
      return [[o[0], { status: 'failed', code, reason: err.message, object: o, unit: unitOf.get(i) }]];
    });
    const objects = data.objects.length;
    const indexed = objects - failures.length;
    await runs.recordItems(data.runId, new Map(failures));
    await recordJobResult(
      { runs, vectors },
      data.runId,
      job.id ?? '',
      {
        status: 'failed',
        objects,
        indexed,
        skipped: 0,
        failed: failures.length,
        points: 0,
        error: err.message,
      },
      ownJob(job),
    );
  }

  // during a Redis outage every client on the connection errors at each attempt: the outage log says it once
  worker.on('error', (err) => outage.error(err, (e) => log.warn({ err: e.message }, 'worker error')));
  queue.on('error', (err) => outage.error(err, (e) => log.warn({ err: e.message }, 'queue error')));

  return {
    worker,
    metricsServer,
    outage,
    async close() {
      const closing = worker.close();
      let closed = false;
      void closing.then(
        () => (closed = true),
        () => (closed = true),
      );
      const drainDeadline = Date.now() + config.drainTimeoutMs;
      let idleSince: number | undefined;
      let aborted = false;
      // BullMQ's close waits for the jobs in flight and for its blocking connection; after a
      // Redis restart that connection can wait for ever with no job left, so a close with
      // nothing in flight for CLOSE_IDLE_GRACE_MS disconnects instead of waiting
      while (!closed) {
        const now = Date.now();
        if (inFlight > 0) idleSince = undefined;
        else idleSince ??= now;
        if (idleSince !== undefined && now - idleSince >= CLOSE_IDLE_GRACE_MS) {
          log.warn(
            { graceMs: CLOSE_IDLE_GRACE_MS },
            'no job in flight but the queue connection did not close: disconnecting',
          );
          await worker.disconnect().catch(() => undefined);
          break;
        }
        if (!aborted && now >= drainDeadline) {
          // BullMQ's close(true) cannot cut a close already under way short; instead the jobs
          // stop sending requests and give themselves back, and the close completes
          log.warn(
            { timeoutMs: config.drainTimeoutMs },
            'drain timed out: jobs in flight send no further request and go back to the queue',
          );
          stopping.abort(new Error('the worker is stopping (drain timeout)'));
          aborted = true;
        }
        await sleep(100);
      }
      // the token corrections and successes still waiting for a reservation to carry them
      await gate.flush?.().catch(() => undefined);
      await sendThread?.close();
      await (await metricsServer.catch(() => undefined))?.close();
      await controlQueue?.close();
      await queue.close();
      await connection.quit();
      log.flush();
    },
  };
}
