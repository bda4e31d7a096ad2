/**
 * `mm-ingest failures`, `retry-failed` and `resume`: the morning after.
 *
 * `failures` lists a run's failed items a page at a time (`--limit`, `--cursor`) and its
 * failed jobs. `retry-failed` queues the failed objects of a run again as a new run (with
 * the old run's settings: retry.ts), marks them `retried` in the old run, and removes the
 * old run's failed jobs from the queue (their objects are in the new run). Objects are
 * fetched afresh, so a bad file that was replaced in the meantime is indexed in its new
 * version.
 */
import type { Command } from 'commander';
import { defaultQueueBound, queueRoom } from '../backpressure.js';
import type { EmbedSettings } from '../embed-job.js';
import { jobObjects } from '../embed-job.js';
import { loadConfig } from '../config.js';
import type { Config } from '../config.js';
import { embedQueue, runStore, vectorStore } from '../connections.js';
import type { RedisClient } from '../connections.js';
import { ConfigError } from '../errors.js';
import { resolveModel } from '../models.js';
import { pausedReason, resume } from '../pause.js';
import { failedJobsOf, removeRetriedJobs, retryFailed } from '../retry.js';
import { finishIfDone } from '../runner.js';
import type { ItemOutcome } from '../runs.js';
import { commandRedis } from './connect.js';
import { positiveInt, withConnectionFlags } from './options.js';
import { printable } from './terminal.js';

/** `qdrant`: the command reads or writes points (checked with Redis before it starts). */
async function withQueue<T>(
  flags: Record<string, unknown>,
  needs: { qdrant?: boolean },
  fn: (ctx: {
    config: Config;
    queue: ReturnType<typeof embedQueue>;
    runs: ReturnType<typeof runStore>;
    redis: RedisClient;
    prefix: string;
    vectors: ReturnType<typeof vectorStore>;
  }) => Promise<T>,
): Promise<T> {
  const config = loadConfig(process.env, flags);
  const vectors = vectorStore(config);
  const redis = await commandRedis(config, needs.qdrant ? { qdrant: vectors } : {});
  const queue = embedQueue(config, redis);
  try {
    return await fn({ config, queue, runs: runStore(config, redis), redis, prefix: config.queuePrefix, vectors });
  } finally {
    await queue.close();
    await redis.quit();
  }
}

async function pickRun(runs: ReturnType<typeof runStore>, id: string | undefined): Promise<string> {
  const runId = id ?? (await runs.latest(1))[0];
  if (!runId || !(await runs.exists(runId)))
    throw new ConfigError('--run', id ? `run ${id} does not exist` : 'there are no runs yet');
  return runId;
}

/**
 * The failed items from `cursor` on: pages read until `limit` failures are met (all of
 * them without a limit), and the cursor to go on from ('0': none left).
 */
async function failedItems(
  runs: ReturnType<typeof runStore>,
  runId: string,
  cursor: string,
  limit: number | undefined,
  onPage: (items: [string, ItemOutcome][]) => void,
): Promise<string> {
  let at = cursor;
  let met = 0;
  do {
    const page = await runs.itemsPage(runId, at, limit ?? 500);
    const failed = page.items.filter(([, o]) => o.status === 'failed');
    met += failed.length;
    onPage(failed);
    at = page.next;
  } while (at !== '0' && (limit === undefined || met < limit));
  return at;
}

export function registerFailureCommands(program: Command): void {
  withConnectionFlags(
    program
      .command('failures')
      .description('list the failed jobs and objects of a run, with their reasons (default: the latest run)')
      .option('--run <id>', 'the run')
      .option('--limit <n>', 'list about n failed objects, then the cursor to go on from', positiveInt('--limit'))
      .option('--cursor <cursor>', 'go on from the cursor a previous --limit page printed')
      .option('--json', 'machine-readable output'),
  ).action(async (flags: { run?: string; json?: boolean; limit?: number; cursor?: string }) => {
    const cursor = flags.cursor ?? '0';
    if (!/^\d+$/.test(cursor))
      throw new ConfigError('--cursor', `must be the cursor a previous page printed (digits), got "${cursor}"`);
    await withQueue(flags, {}, async ({ queue, runs, redis, prefix }) => {
      const runId = await pickRun(runs, flags.run);
      // the run's failed jobs come with the first page
      const failedJobs = [];
      if (cursor === '0') for await (const j of failedJobsOf(queue, redis, runId)) failedJobs.push(j);
      const failedObjects = (await runs.codeCounts(runId))
        .filter((c) => c.status === 'failed')
        .reduce((n, c) => n + c.count, 0);
      const paused = await pausedReason(queue, redis, prefix);
      const more = (next: string): string =>
        `mm-ingest failures --run ${runId} --limit ${flags.limit} --cursor ${next}`;
      if (flags.json) {
        // a Map first: a key named __proto__ stays an item
        const items = new Map<string, ItemOutcome>();
        const next = await failedItems(runs, runId, cursor, flags.limit, (page) => {
          for (const [k, o] of page) items.set(k, o);
        });
        const jobs = failedJobs.map((j) => ({
          id: j.id,
          reason: j.failedReason,
          attempts: j.attemptsMade,
          objects: jobObjects(j.data).map((o) => o[0]),
        }));
        const out = { run: runId, paused: paused ?? null, failedObjects, jobs, items: Object.fromEntries(items) };
        process.stdout.write(`${JSON.stringify({ ...out, next: next === '0' ? null : next }, null, 2)}\n`);
        return;
      }
      if (paused) process.stdout.write(`queue paused: ${printable(paused)}\n`);
      if (cursor === '0')
        process.stdout.write(`run ${runId}: ${failedJobs.length} failed jobs, ${failedObjects} failed objects\n`);
      for (const j of failedJobs)
        process.stdout.write(
          `  job ${j.id} (${jobObjects(j.data).length} objects, ${j.attemptsMade} attempts): ${printable(j.failedReason)}\n`,
        );
      const next = await failedItems(runs, runId, cursor, flags.limit, (page) => {
        for (const [key, o] of page)
          process.stdout.write(`  ${printable(o.code).padEnd(24)} ${printable(`${key}: ${o.reason}`)}\n`);
      });
      if (next !== '0') process.stdout.write(`more: ${printable(more(next))}\n`);
    });
  });

  withConnectionFlags(
    program
      .command('retry-failed')
      .description('queue the failed objects of a run again, as a new run (default: the latest run)')
      .option('--run <id>', 'the run whose failures to retry')
      .option('--code <code>', 'only failures with this code (e.g. InvalidParameter)'),
  ).action(async (flags: { run?: string; code?: string }) => {
    await withQueue(flags, { qdrant: true }, async ({ config, queue, runs, vectors, redis }) => {
      const picked = await runs.get(await pickRun(runs, flags.run));
      // the run named (or the latest) is an interrupted retry's: retrying its run again finishes it
      const unfinished = picked?.retryOf !== undefined && picked.scanStatus === 'scanning';
      const run = unfinished ? await runs.get(picked.retryOf!) : picked;
      const runId = run?.id ?? picked?.retryOf ?? '';
      if (!run) throw new ConfigError('--run', `run ${runId} does not exist (its records expired)`);
      if (!run.settings) throw new ConfigError('--run', `run ${runId} has no recorded settings to retry with`);
      const settings = JSON.parse(run.settings) as EmbedSettings;
      const model = resolveModel(run.model, config.models);
      // the producer's backpressure: a retry of many failures waits for room in the queue too
      const room = queueRoom(queue, {
        bound: config.maxQueuedJobs ?? defaultQueueBound(model, config.concurrency),
        onPause: ({ waiting, bound }) => {
          process.stdout.write(`waiting for room in the queue: ${waiting} jobs waiting, bound ${bound}\n`);
        },
      });
      const done = await retryFailed({ queue, runs, vectors, room }, run, settings, model, {
        ...(flags.code !== undefined ? { code: flags.code } : {}),
      });
      if (!done) {
        process.stdout.write(
          `run ${runId}: no failed objects${flags.code ? ` with code ${flags.code}` : ''} to retry\n`,
        );
        return;
      }
      // the old run's failed jobs are replaced by the new run's
      await removeRetriedJobs(queue, runs, runId, redis);
      // nothing queued (everything was written after all): the run is done now
      await finishIfDone({ runs, vectors }, done.runId);
      process.stdout.write(
        `run ${done.runId}: ${done.resumed ? 'the interrupted retry taken up again: ' : ''}retrying ${done.queuedObjects}${done.resumed ? ' more' : ''} failed objects of run ${runId} in ${done.jobs} jobs${done.written > 0 ? ` (${done.written} others have their points already: not queued again)` : ''}${done.rebuild ? '; the rebuild switches its alias when this run ends with nothing failed' : ''} (follow it with: mm-ingest status --run ${done.runId} --wait)\n`,
      );
    });
  });

  withConnectionFlags(
    program.command('resume').description('resume a queue paused by a fatal API error, once its cause is fixed'),
  ).action(async (flags: Record<string, unknown>) => {
    await withQueue(flags, {}, async ({ queue, redis, prefix }) => {
      const reason = await pausedReason(queue, redis, prefix);
      await resume(queue, redis, prefix);
      process.stdout.write(reason ? `queue resumed (it was paused: ${reason})\n` : 'queue was not paused\n');
    });
  });
}
