/**
 * `mm-ingest listen`: keeps collections in step with their buckets between full runs, from
 * the buckets' event notifications (SQS, MinIO's webhook target, MinIO's Redis target),
 * turned into `reindex` jobs with `keys` for the workers (src/listen/).
 */
import type { Command } from 'commander';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { REINDEX_JOB_OPTIONS } from '../../jobs/reindex-job.js';
import type { ReindexResult } from '../../jobs/reindex-job.js';
import { loadConfig } from '../config.js';
import { redisConnection, reindexQueue, runStore } from '../connections.js';
import { ConfigError } from '../errors.js';
import { createLogger } from '../log.js';
import { Listener } from '../listen/listener.js';
import type { BatchQueue } from '../listen/listener.js';
import { mapTargets } from '../listen/map.js';
import { registerListenerMetrics } from '../listen/metrics.js';
import { ListenerState } from '../listen/state.js';
import type { RunningSource } from '../listen/sources.js';
import { startMetricsServer } from '../prometheus.js';
import { isLoopback } from '../dashboard/guard.js';
import { commandRedis } from './connect.js';
import { collect, positiveInt, withConnectionFlags } from './options.js';

interface ListenFlags {
  map?: string[];
  mapFile?: string;
  sqsQueueUrl?: string;
  webhookPort?: number;
  webhookHost?: string;
  redisList?: string;
  eventsRedisUrl?: string;
  metricsPort?: string;
  metricsHost?: string;
}

export function registerListenCommand(program: Command): void {
  withConnectionFlags(
    program
      .command('listen')
      .description(
        'turn bucket event notifications (SQS, MinIO webhook or Redis target) into reindex jobs of the changed keys, until stopped',
      )
      .option('--map <bucket=collection:model>', "where a bucket's events go (repeatable)", collect)
      .option('--map-file <path>', 'a file of bucket=collection:model lines (# comments)')
      .option(
        '--sqs-queue-url <url>',
        'long-poll this SQS queue (S3 event notifications, directly, via SNS or via EventBridge)',
      )
      .option(
        '--webhook-port <n>',
        "serve MinIO's webhook target on this port (needs LISTEN_WEBHOOK_TOKEN)",
        positiveInt('--webhook-port'),
      )
      .option('--webhook-host <host>', 'the interface the webhook listens on (default 127.0.0.1)')
      .option('--redis-list <key>', "consume the list MinIO's Redis target pushes to (format access)")
      .option('--events-redis-url <url>', "the Redis of that list, when it is not the queue's (default REDIS_URL)")
      .option('--batch-keys <n>', 'at most this many keys per reindex job (LISTEN_BATCH_KEYS; default 500)')
      .option(
        '--batch-seconds <s>',
        'a key waits at most this long for others to join its job (LISTEN_BATCH_SECONDS; default 2)',
      )
      .option(
        '--metrics-port <n>',
        'serve Prometheus metrics at /metrics on this port (METRICS_PORT; 0: any free port; default: off)',
      )
      .option('--metrics-host <host>', 'the interface the metrics server listens on (METRICS_HOST; default 127.0.0.1)'),
  ).action(async (flags: ListenFlags) => {
    const config = loadConfig(process.env, flags as Record<string, unknown>);
    const targets = mapTargets(flags.map ?? [], flags.mapFile, config.models);
    // the sources (the SQS client among them) are loaded by this command only
    const { startRedisListSource, startSqsSource, startWebhookSource } = await import('../listen/sources.js');
    if (flags.sqsQueueUrl === undefined && flags.webhookPort === undefined && flags.redisList === undefined) {
      throw new ConfigError(
        'listen',
        'no source of events: give --sqs-queue-url, --webhook-port or --redis-list (or several)',
      );
    }
    if (flags.sqsQueueUrl !== undefined && !/^https?:\/\/[^/]+\/.+/.test(flags.sqsQueueUrl)) {
      throw new ConfigError(
        '--sqs-queue-url',
        `"${flags.sqsQueueUrl}" is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)`,
      );
    }
    const webhookHost = flags.webhookHost ?? '127.0.0.1';
    if (flags.webhookPort !== undefined && config.listenWebhookToken === undefined) {
      throw new ConfigError(
        'LISTEN_WEBHOOK_TOKEN',
        'is not set: the webhook answers only requests bearing it (MinIO: MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>)',
      );
    }
    if (flags.eventsRedisUrl !== undefined && flags.redisList === undefined)
      throw new ConfigError('--events-redis-url', 'only applies with --redis-list');
    const log = createLogger(config.logLevel, 'mm-ingest-listen');
    const connection = await commandRedis(config);
    const state = new ListenerState(connection, config.queuePrefix);
    await state.register(targets);
    const queue = reindexQueue(config, connection);
    const listener = new Listener(
      { state, queue: batchQueue(queue), runs: runStore(config, connection), log },
      { targets, maxKeys: config.listenBatchKeys, maxWaitMs: config.listenBatchSeconds * 1000 },
    );

    const sources: RunningSource[] = [];
    const closers: (() => Promise<unknown>)[] = [];
    const shutdown = async (): Promise<void> => {
      for (const s of sources) await s.stop();
      await listener.stop();
      for (const c of closers) await c();
      await queue.close();
      await connection.quit();
    };
    try {
      if (flags.webhookPort !== undefined) {
        const web = await startWebhookSource(
          listener,
          { host: webhookHost, port: flags.webhookPort, token: config.listenWebhookToken ?? '' },
          log,
        ).catch((err: unknown) => {
          throw new ConfigError(
            '--webhook-port',
            `cannot listen on ${webhookHost}:${flags.webhookPort ?? ''}: ${(err as Error).message}`,
          );
        });
        sources.push(web);
        process.stdout.write(
          `listen: webhook on http://${web.host.includes(':') ? `[${web.host}]` : web.host}:${web.port}/${isLoopback(web.host) ? '' : ' (beyond loopback: every request must bear the token)'}\n`,
        );
      }
      if (flags.redisList !== undefined) {
        if (flags.eventsRedisUrl !== undefined && !/^rediss?:\/\/\S+$/.test(flags.eventsRedisUrl))
          throw new ConfigError('--events-redis-url', 'must be a redis:// or rediss:// URL');
        // a connection of its own: BLMOVE blocks it
        const eventsRedis =
          flags.eventsRedisUrl !== undefined
            ? new Redis(flags.eventsRedisUrl, { maxRetriesPerRequest: null, connectTimeout: config.connectTimeoutMs })
            : redisConnection(config);
        closers.push(() => eventsRedis.quit().catch(() => eventsRedis.disconnect()));
        sources.push(startRedisListSource(listener, eventsRedis, { list: flags.redisList }, log));
        process.stdout.write(
          `listen: Redis list ${flags.redisList} (entries in flight in ${flags.redisList}:processing)\n`,
        );
      }
      if (flags.sqsQueueUrl !== undefined) {
        sources.push(startSqsSource(listener, { queueUrl: flags.sqsQueueUrl, region: config.awsRegion }, log));
        process.stdout.write(`listen: SQS queue ${flags.sqsQueueUrl}\n`);
      }
      if (config.metricsPort !== undefined) {
        const registry = new Registry();
        registerListenerMetrics(registry, state);
        const server = await startMetricsServer(config.metricsPort, registry, config.metricsHost).catch(
          (err: unknown) => {
            throw new ConfigError(
              '--metrics-port',
              `cannot serve metrics on port ${config.metricsPort ?? ''}: ${(err as Error).message}`,
            );
          },
        );
        closers.push(() => server.close());
        process.stdout.write(`metrics on http://${server.host}:${server.port}/metrics\n`);
      }
    } catch (err) {
      await shutdown();
      throw err;
    }
    listener.start();
    process.stdout.write(
      `listen ready: ${targets.map((t) => `${t.bucket} -> ${t.collection} (${t.model})`).join(', ')}; batches of at most ${config.listenBatchKeys} keys or ${config.listenBatchSeconds} s; queue ${config.queuePrefix}:reindex\n`,
    );
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    process.stdout.write(
      `listen: ${signal}, stopping (what is recorded stays pending in Redis for the next listener)\n`,
    );
    await shutdown();
    process.stdout.write('listen: stopped\n');
  });
}

/** The reindex queue for the listener: its batches are reindex jobs with the usual options, under the batch's id. */
function batchQueue(queue: Queue): BatchQueue {
  return {
    async add(id, job) {
      await queue.add('reindex', { ...job, keys: [...job.keys] }, { ...REINDEX_JOB_OPTIONS, jobId: id });
    },
    async state(id) {
      const job = await queue.getJob(id);
      if (!job) return { state: 'missing' };
      const state = await job.getState();
      if (state === 'failed') return { state: 'failed', reason: job.failedReason || 'the reindex job failed' };
      if (state !== 'completed') return { state: 'pending' };
      const runId = (job.returnvalue as ReindexResult | undefined)?.runId;
      return { state: 'completed', ...(runId ? { runId } : {}) };
    },
  };
}
