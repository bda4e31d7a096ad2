/** `mm-ingest index`, `worker` and `status`: the pipeline's commands. */
import type { Command } from 'commander';
import { startEmbedWorker } from '../../workers/embed-worker.js';
import { startReindexWorker } from '../../workers/reindex-worker.js';
import { loadConfig } from '../config.js';
import { embedQueue, objectStore, runStore, vectorStore } from '../connections.js';
import { ConfigError } from '../errors.js';
import { resolveModel } from '../models.js';
import { parseRunRequest } from '../run-request.js';
import { finishIfDone, startRun } from '../runner.js';
import { pausedReason } from '../pause.js';
import { progressLine } from './progress.js';
import { printable } from './terminal.js';
import { isFinished } from '../runs.js';
import { formatPacing, pacingView } from '../rate-limit-view.js';
import { commandRedis } from './connect.js';
import { listenerLines } from './listen-status.js';
import { ListenerState } from '../listen/state.js';
import { collect, positiveInt, withConnectionFlags } from './options.js';
import { followRun, reportEnd } from './follow-run.js';

/** Items `status` prints (the first met): `failures` and the dashboard page through the rest. */
const STATUS_ITEMS = 20;

/** `index`'s flags: the run's own are checked by parseRunRequest (run-request.ts), the others by loadConfig. */
interface IndexFlags {
  key?: string[];
  wait?: boolean;
  [flag: string]: unknown;
}

/** Where to scrape the metrics from this machine; a wildcard address says that it listens on every interface. */
function metricsUrl(server: { host: string; port: number }): string {
  const wildcard = server.host === '0.0.0.0' || server.host === '::';
  const shown = wildcard ? '127.0.0.1' : server.host.includes(':') ? `[${server.host}]` : server.host;
  return `http://${shown}:${server.port}/metrics${wildcard ? ` (listening on ${server.host})` : ''}`;
}

/** The model's spec, or undefined for a model no longer in the catalog. */
function knownModel(
  name: string,
  overrides: Parameters<typeof resolveModel>[1],
): ReturnType<typeof resolveModel> | undefined {
  try {
    return resolveModel(name, overrides);
  } catch {
    return undefined;
  }
}

export function registerPipelineCommands(program: Command): void {
  withConnectionFlags(
    program
      .command('index')
      .description('scan a bucket and queue its objects for embedding into a Qdrant collection')
      .requiredOption('--bucket <name>', 'the S3 bucket')
      .option('--prefix <prefix>', 'only keys under this prefix (default: the whole bucket)')
      .requiredOption('--collection <name>', 'the Qdrant collection (created if missing)')
      .requiredOption('--model <name>', 'the embedding model')
      .option('--dimension <n>', "vector dimension (default: the model's)", positiveInt('--dimension'))
      .option('--include <glob>', 'only keys matching (repeatable)', collect)
      .option('--exclude <glob>', 'leave out keys matching (repeatable)', collect)
      .option('--min-size <bytes>', 'leave out smaller objects', positiveInt('--min-size'))
      .option('--max-size <bytes>', 'leave out larger objects', positiveInt('--max-size'))
      .option('--page-size <n>', 'keys per listing page (default 1000)', positiveInt('--page-size'))
      .option('--image-mode <mode>', 'inline (base64) or url (presigned; the API must reach the store) (IMAGE_MODE)')
      .option('--chunk-tokens <n>', "largest text chunk in tokens (CHUNK_TOKENS; default: the model's limit)")
      .option('--chunk-overlap <n>', 'tokens shared by consecutive chunks (CHUNK_OVERLAP; default 0)')
      .option('--run-id <id>', 'continue this run (its scan resumes after the last queued page)')
      .option(
        '--mode <mode>',
        'incremental (default: skip objects whose points are current), full (embed everything), rebuild (a new collection behind the alias COLLECTION, switched at the end)',
      )
      .option('--prune', 'after a completed scan, delete the points of objects under the prefix that no longer exist')
      .option('--fps <rate>', "video frame sampling in [0, 1] passed to the API (default: the API's 1.0)", Number)
      .option('--instruct <text>', 'a task description passed to the API (English recommended); changing it re-embeds')
      .option(
        '--group-images <rule>',
        'tongyi models: one multi_images vector per item, the item being the image\'s folder ("folder") or a key pattern\'s first capture group ("pattern:<regex>"); items of more than 8 images are split in key order into parts of 8',
      )
      .option(
        '--fuse-sidecar <exts>',
        'qwen3-vl-embedding: one fused vector per image or video and its sidecar text, the same key with one of these extensions (".txt" or ".txt,.md")',
      )
      .option(
        '--fuse-unpaired <what>',
        'with --fuse-sidecar: skip (default) or alone (embed objects without a partner on their own)',
      )
      .option(
        '--key <key>',
        'index exactly these keys instead of scanning (repeatable); deleted keys lose their points',
        collect,
      )
      .option('--wait', 'follow the run to its end; exit 1 if anything failed'),
  ).action(async (flags: IndexFlags) => {
    const config = loadConfig(process.env, flags);
    // the run's flags, checked once (run-request.ts) and handed to the runner as they are
    const request = parseRunRequest({ ...flags, keys: flags.key }, 'flag');
    resolveModel(request.model, config.models); // a configuration error before any connection
    const vectors = vectorStore(config);
    const store = objectStore(config);
    // a scan's listing thread loads while the command connects (list-thread.ts)
    if (!request.keys) store.prepareListing();
    const connection = await commandRedis(config, { s3: { store, bucket: request.bucket }, qdrant: vectors });
    const queue = embedQueue(config, connection);
    const runs = runStore(config, connection);
    try {
      const started = await startRun(
        {
          config,
          store,
          vectors,
          queue,
          runs,
          onWait: (w) =>
            void process.stdout.write(
              'waiting' in w
                ? `run ${w.runId}: listing paused: the queue holds ${w.waiting} jobs waiting (MAX_QUEUED_JOBS ${w.bound}); it goes on as workers take them\n`
                : `run ${w.runId}: listing goes on (waited ${(w.waitedMs / 1000).toFixed(1)} s)\n`,
            ),
          onStart: ({ runId, target }) =>
            void process.stdout.write(
              `${printable(`run ${runId}: scanning s3://${request.bucket}/${request.prefix ?? ''} into ${target} with ${request.model}`)}\n`,
            ),
        },
        request,
      );
      const { runId, summary } = started;
      if (summary) {
        process.stdout.write(
          `run ${runId}: scanned ${summary.scanned} objects (${summary.skipped} skipped, ${summary.filteredOut} filtered out, ${summary.unchanged} unchanged, ${summary.new} new, ${summary.changed} changed, ${summary.deleted} deleted); queued ${summary.queuedObjects} in ${summary.jobsAdded} jobs (${summary.jobsDeduplicated} already pending)\n`,
        );
      } else if (started.resumed) {
        process.stdout.write(`run ${runId}: its scan already completed\n`);
      }
      if (flags.wait) {
        const paused = (): Promise<string | undefined> => pausedReason(queue, connection, config.queuePrefix);
        const end = await followRun(runs, runId, paused, () => finishIfDone({ runs, vectors }, runId));
        const run = end.run;
        if (run.notes.rebuild && !run.notes.rebuild.startsWith('not switched'))
          process.stdout.write(`run ${runId}: rebuild ${run.notes.rebuild}\n`);
        if (run.notes.prune) process.stdout.write(`run ${runId}: ${run.notes.prune}\n`);
        reportEnd(runId, { ...end, run });
      }
    } finally {
      await queue.close();
      await connection.quit();
    }
  });

  withConnectionFlags(
    program
      .command('worker')
      .description('run embed jobs from the queue until stopped (SIGTERM/SIGINT drain: jobs in flight finish)')
      .option('--concurrency <n>', 'jobs at once in this process (WORKER_CONCURRENCY; default 4)')
      .option('--no-reindex', 'do not also consume the reindex control queue')
      .option(
        '--metrics-port <n>',
        'serve Prometheus metrics at /metrics on this port (METRICS_PORT; 0: any free port; default: off)',
      )
      .option(
        '--metrics-host <host>',
        'the interface the metrics server listens on (METRICS_HOST; default 127.0.0.1; 0.0.0.0: every interface)',
      ),
  ).action(async (flags: Record<string, unknown>) => {
    const config = loadConfig(process.env, flags);
    const embed = startEmbedWorker(config);
    // one outage log for the process: a lost Redis is one line per interval, not one per worker
    const reindex = flags.reindex === false ? undefined : startReindexWorker(config, { outage: embed.outage });
    const running = { close: async () => void (await Promise.all([embed.close(), reindex?.close()])) };
    // a worker started while Redis is down waits for it (its outage log says so) and can be stopped meanwhile
    const signalled = new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    let started = false;
    const ready = Promise.all([
      embed.worker.waitUntilReady().then(() => void (started = true)),
      reindex?.worker.waitUntilReady(),
    ]).then(() => undefined);
    ready.catch(() => {});
    const early = await Promise.race([ready, signalled]);
    if (early !== undefined) {
      // no job was taken without Redis: nothing to drain, and a close would wait for Redis
      process.stdout.write(`worker: ${early} before Redis answered, stopping\n`);
      if (started) await running.close();
      process.stdout.write('worker: stopped\n');
      process.exit(0);
    }
    const metricsServer = await embed.metricsServer.catch(async (err: unknown) => {
      await running.close();
      throw new ConfigError(
        '--metrics-port',
        `cannot serve metrics on port ${config.metricsPort ?? ''}: ${(err as Error).message}`,
      );
    });
    process.stdout.write(
      `worker ready: queue ${config.queuePrefix}:embed, concurrency ${config.concurrency}${reindex ? `; queue ${config.queuePrefix}:reindex` : ''}\n`,
    );
    if (metricsServer) process.stdout.write(`metrics on ${metricsUrl(metricsServer)}\n`);
    const signal = await signalled;
    process.stdout.write(`worker: ${signal}, draining (no new jobs; the ones in flight finish)\n`);
    await running.close();
    process.stdout.write('worker: stopped\n');
  });

  withConnectionFlags(
    program
      .command('status')
      .description('queue counts and the progress of a run (default: the latest)')
      .option('--run <id>', 'the run to show')
      .option('--wait', 'follow the run to its end; exit 1 if anything failed, 3 if the queue is paused')
      .option('--watch', 'the same as --wait')
      .option('--json', 'machine-readable output'),
  ).action(async (flags: { run?: string; json?: boolean; wait?: boolean; watch?: boolean }) => {
    const config = loadConfig(process.env, flags);
    const following = flags.wait === true || flags.watch === true;
    // a follower may finish the run it follows (a rebuild's switch): Qdrant too
    const vectors = vectorStore(config);
    const connection = await commandRedis(config, following ? { qdrant: vectors } : {});
    const queue = embedQueue(config, connection);
    const runs = runStore(config, connection);
    try {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
      const runId = flags.run ?? (await runs.latest(1))[0];
      const run = runId ? await runs.get(runId) : undefined;
      if (flags.run && !run) throw new ConfigError('--run', `run ${flags.run} does not exist`);
      // the run's outcome counts, and only the first items met: a run may have millions
      const codes = run ? await runs.codeCounts(run.id) : [];
      const items = new Map(run ? (await runs.itemsPage(run.id, '0', STATUS_ITEMS)).items.slice(0, STATUS_ITEMS) : []);
      const itemCount = codes.reduce((n, c) => n + c.count, 0);
      const paused = await pausedReason(queue, connection, config.queuePrefix);
      // what the shared limiter has learned of the run's model for this key (none without a key)
      const spec = run ? knownModel(run.model, config.models) : undefined;
      const pacing = spec
        ? await pacingView(connection, config, spec.name, { rpm: spec.rpm, tpm: spec.tpm })
        : undefined;
      // the listener's lag and counts, when one ever ran under this prefix
      const listenerState = new ListenerState(connection, config.queuePrefix);
      const listener = (await listenerState.exists()) ? await listenerState.snapshot() : undefined;
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ queue: counts, paused: paused ?? null, run: run ?? null, itemCounts: codes, items: Object.fromEntries(items), listener: listener ?? null, rateLimit: pacing ?? null }, null, 2)}\n`,
        );
        return;
      }
      process.stdout.write(
        `queue ${config.queuePrefix}:embed: ${Object.entries(counts)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}\n`,
      );
      if (listener) for (const line of listenerLines(listener)) process.stdout.write(`${line}\n`);
      if (paused) process.stdout.write(`queue paused: ${printable(paused)}\n`);
      if (pacing) process.stdout.write(`${formatPacing(pacing)}\n`);
      if (run && following) {
        const isPaused = (): Promise<string | undefined> => pausedReason(queue, connection, config.queuePrefix);
        reportEnd(run.id, await followRun(runs, run.id, isPaused, () => finishIfDone({ runs, vectors }, run.id)));
        return;
      }
      if (!run) {
        process.stdout.write('no runs yet\n');
        return;
      }
      process.stdout.write(`${progressLine(run)}${isFinished(run) ? ' [finished]' : ''}\n`);
      for (const c of codes)
        process.stdout.write(`  ${c.status.padEnd(7)} ${printable(c.code).padEnd(22)} ${c.count}\n`);
      for (const [key, o] of items)
        process.stdout.write(`  ${o.status.padEnd(7)} ${o.code.padEnd(22)} ${printable(`${key}: ${o.reason}`)}\n`);
      if (itemCount > items.size)
        process.stdout.write(
          `  (${itemCount - items.size} more: mm-ingest failures --run ${run.id} --limit 100, or the dashboard)\n`,
        );
    } finally {
      await queue.close();
      await connection.quit();
    }
  });
}
