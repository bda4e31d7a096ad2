/**
 * `mm-ingest failures`, `retry-failed` and `resume`: the morning after.
 *
 * `retry-failed` queues the failed objects of a run again as a new run (with the old
 * run's settings), marks them `retried` in the old run, and removes the old run's failed
 * jobs from the queue (their objects are in the new run). Objects are fetched afresh, so
 * a bad file that was replaced in the meantime is indexed in its new version.
 */
import type { Command } from 'commander';
import { jobObjects, paramsHash } from '../embed-job.js';
import type { EmbedSettings, ObjectTuple, UnitTuple } from '../embed-job.js';
import { loadConfig } from '../config.js';
import { embedQueue, runStore, vectorStore } from '../connections.js';
import type { RedisClient } from '../connections.js';
import { ConfigError } from '../errors.js';
import { newRunId } from '../ids.js';
import { classifyChanges } from '../incremental.js';
import { pausedReason, resume } from '../pause.js';
import { embedJob, queueJobs } from '../producer.js';
import type { BulkJob } from '../producer.js';
import { finishIfDone } from '../runner.js';
import type { ItemOutcome } from '../runs.js';
import { commandRedis } from './connect.js';
import { withConnectionFlags } from './options.js';
import { printable } from './terminal.js';

/** Objects a retry job holds: retried objects are few, and each may be a poison one. */
const RETRY_JOB_OBJECTS = 10;

/** `qdrant`: the command reads or writes points (checked with Redis before it starts). */
async function withQueue<T>(
  flags: Record<string, unknown>,
  needs: { qdrant?: boolean },
  fn: (ctx: {
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
    return await fn({ queue, runs: runStore(config, redis), redis, prefix: config.queuePrefix, vectors });
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

export function registerFailureCommands(program: Command): void {
  withConnectionFlags(
    program
      .command('failures')
      .description('list the failed jobs and objects of a run, with their reasons (default: the latest run)')
      .option('--run <id>', 'the run')
      .option('--json', 'machine-readable output'),
  ).action(async (flags: { run?: string; json?: boolean }) => {
    await withQueue(flags, {}, async ({ queue, runs, redis, prefix }) => {
      const runId = await pickRun(runs, flags.run);
      const failedJobs = (await queue.getFailed()).filter((j) => j.data.runId === runId);
      const items = [...(await runs.items(runId))].filter(([, o]) => o.status === 'failed');
      const paused = await pausedReason(queue, redis, prefix);
      if (flags.json) {
        const jobs = failedJobs.map((j) => ({
          id: j.id,
          reason: j.failedReason,
          attempts: j.attemptsMade,
          objects: jobObjects(j.data).map((o) => o[0]),
        }));
        process.stdout.write(
          `${JSON.stringify({ run: runId, paused: paused ?? null, jobs, items: Object.fromEntries(items) }, null, 2)}\n`,
        );
        return;
      }
      if (paused) process.stdout.write(`queue paused: ${printable(paused)}\n`);
      process.stdout.write(`run ${runId}: ${failedJobs.length} failed jobs, ${items.length} failed objects\n`);
      for (const j of failedJobs)
        process.stdout.write(
          `  job ${j.id} (${jobObjects(j.data).length} objects, ${j.attemptsMade} attempts): ${printable(j.failedReason)}\n`,
        );
      for (const [key, o] of items)
        process.stdout.write(`  ${printable(o.code).padEnd(24)} ${printable(`${key}: ${o.reason}`)}\n`);
    });
  });

  withConnectionFlags(
    program
      .command('retry-failed')
      .description('queue the failed objects of a run again, as a new run (default: the latest run)')
      .option('--run <id>', 'the run whose failures to retry')
      .option('--code <code>', 'only failures with this code (e.g. InvalidParameter)'),
  ).action(async (flags: { run?: string; code?: string }) => {
    await withQueue(flags, { qdrant: true }, async ({ queue, runs, vectors }) => {
      const runId = await pickRun(runs, flags.run);
      const run = await runs.get(runId);
      if (!run?.settings) throw new ConfigError('--run', `run ${runId} has no recorded settings to retry with`);
      const settings = JSON.parse(run.settings) as EmbedSettings;
      const failed = [...(await runs.items(runId))].filter(
        ([, o]) => o.status === 'failed' && o.object && (!flags.code || o.code === flags.code),
      );
      if (failed.length === 0) {
        process.stdout.write(
          `run ${runId}: no failed objects${flags.code ? ` with code ${flags.code}` : ''} to retry\n`,
        );
        return;
      }
      // objects whose points an attempt did write (same ETag and params hash) are not bought again
      const singles = failed.filter(([, o]) => !o.unit).map(([key, o]) => ({ key, etag: o.object![1] }));
      const state = await classifyChanges(vectors, settings.collection, run.bucket, singles, paramsHash(settings));
      const written = failed.filter(([key, o]) => !o.unit && state.get(key) === 'unchanged');
      const retry = failed.filter(([key, o]) => o.unit || state.get(key) !== 'unchanged');
      const allFailures = [...(await runs.items(runId))].filter(([, o]) => o.status === 'failed').length;
      // a rebuild retried whole finishes as a rebuild: its alias moves once nothing failed
      const rebuild = run.mode === 'rebuild' && retry.length + written.length === allFailures;
      const newId = newRunId();
      await runs.create({
        id: newId,
        bucket: run.bucket,
        prefix: run.prefix,
        collection: run.collection,
        model: run.model,
        dimension: run.dimension,
        startedAt: new Date().toISOString(),
        settings: run.settings,
        retryOf: runId,
        ...(rebuild ? { mode: 'rebuild' } : {}),
      });
      const tuples = retry.map(([, o]) => [...o.object!] as ObjectTuple);
      // a unit's members stay together (a group or pair whose request failed failed whole)
      const entries = new Map<string, { tuples: ObjectTuple[]; unit?: readonly ['g' | 'f', string] }>();
      retry.forEach(([key, o], i) => {
        const id = o.unit ? `${o.unit[0]}\u0000${o.unit[1]}` : `\u0001${key}`;
        const e = entries.get(id) ?? { tuples: [], ...(o.unit ? { unit: o.unit } : {}) };
        e.tuples.push(tuples[i]!);
        entries.set(id, e);
      });
      const bulk: BulkJob[] = [];
      let job: { objects: ObjectTuple[]; units: UnitTuple[] } = { objects: [], units: [] };
      const close = (): void => {
        if (job.objects.length === 0) return;
        bulk.push(
          embedJob(newId, run.bucket, settings, {
            objects: job.objects,
            ...(job.units.length > 0 ? { units: job.units } : {}),
          }),
        );
        job = { objects: [], units: [] };
      };
      for (const e of entries.values()) {
        if (job.objects.length + e.tuples.length > RETRY_JOB_OBJECTS) close();
        const first = job.objects.length;
        job.objects.push(...e.tuples);
        if (e.unit) job.units.push([e.unit[0], e.unit[1], e.tuples.map((_, i) => first + i)]);
      }
      close();
      const queued = await queueJobs({ queue, runs }, newId, bulk);
      const retried = new Set(failed.map(([key]) => key));
      // the old run's failed jobs are replaced by the new run's
      for (const job of await queue.getFailed()) {
        if (job.data.runId === runId && jobObjects(job.data).every((o) => retried.has(o[0]))) await job.remove();
      }
      await runs.pageDone(newId, {
        scanned: failed.length,
        skipped: 0,
        filteredOut: 0,
        queuedObjects: tuples.length,
        unchanged: written.length,
        jobsAdded: queued.added,
        jobsDeduplicated: queued.followed,
      });
      await runs.scanFinished(newId, 'complete');
      const marks = new Map<string, ItemOutcome>([
        ...retry.map(([key, o]): [string, ItemOutcome] => [
          key,
          { ...o, status: 'retried', reason: `${o.reason} (retried in run ${newId})` },
        ]),
        ...written.map(([key, o]): [string, ItemOutcome] => [
          key,
          { ...o, status: 'retried', reason: `${o.reason} (its points were written after all: not queued again)` },
        ]),
      ]);
      await runs.recordItems(runId, marks);
      // nothing queued (everything was written after all): the run is done now
      await finishIfDone({ runs, vectors }, newId);
      process.stdout.write(
        `run ${newId}: retrying ${tuples.length} failed objects of run ${runId} in ${bulk.length} jobs${written.length > 0 ? ` (${written.length} others have their points already: not queued again)` : ''}${rebuild ? '; the rebuild switches its alias when this run ends with nothing failed' : ''} (follow it with: mm-ingest status --run ${newId} --wait)\n`,
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
