/**
 * retry-failed's work: the failed objects of a run queued again as a new run, with the old
 * run's settings, through the producer's own queuing (queuing.ts: the same batching, job
 * format, job ids, deduplication and backpressure).
 *
 * The old run's items are read a page at a time (HSCAN), never whole. Each page's failed
 * objects are queued and marked `retried` before the next page is read: a walk that meets
 * an item twice (HSCAN may, while the hash grows) finds it retried the second time, so
 * each failure is queued once. Objects whose points an attempt did write after all (same
 * ETag and params hash) are not bought again. The members of a failed unit (a group or a
 * fused pair) are held until the walk ends, so that the unit is queued whole even when its
 * members fall on different pages.
 *
 * A retry killed before its end leaves its run scanning (`status` says it was interrupted:
 * no process holds its lease). Retrying the same run again finishes that run rather than
 * starting another: the failures of the page it was queuing that went into jobs are marked
 * retried and counted with the page, and the walk goes on with the failures left.
 */
import type { Job, Queue } from 'bullmq';
import type { Cluster, Redis } from 'ioredis';
import type { QueueRoom } from './backpressure.js';
import { unitEtag } from './compose.js';
import type { Entry } from './compose.js';
import { fromTuple, jobObjects, paramsHash, runOfJobId } from './embed-job.js';
import type { EmbedJobData, EmbedSettings, ObjectTuple } from './embed-job.js';
import { newRunId } from './ids.js';
import { classifyChanges } from './incremental.js';
import type { ModelSpec } from './models.js';
import { entryQueuer } from './queuing.js';
import { checkResumable, settleInterrupted } from './retry-resume.js';
import type { ItemOutcome, RunState, RunStore } from './runs.js';
import type { ScannedObject } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/** Objects a retry job holds: retried objects are few, and each may be a poison one. */
export const RETRY_JOB_OBJECTS = 10;

export interface RetryDeps {
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly vectors: VectorStore;
  /** The producer's backpressure. @defaultValue no bound */
  readonly room?: QueueRoom;
}

export interface RetrySummary {
  readonly runId: string;
  /** Objects queued again, and in how many jobs (new ones and ones deduplicated into pending jobs). */
  readonly queuedObjects: number;
  readonly jobs: number;
  /** Failures whose points were written after all: marked retried, not queued. */
  readonly written: number;
  /** The new run finishes the old run's rebuild (every failure of it is retried). */
  readonly rebuild: boolean;
  /** The run is an interrupted retry's, finished now (the counts are this attempt's). */
  readonly resumed: boolean;
}

/** Items of the old run read a page (HSCAN's count). */
const ITEM_PAGE = 500;

/** A failed object as the queue takes it (a job's tuple carries no image format: queuing does not use one). */
const scanned = (bucket: string, t: readonly [string, string, number, number, 't' | 'i' | 'v']): ScannedObject =>
  ({ ...fromTuple([...t] as ObjectTuple), bucket }) as ScannedObject;

/** Retries the failures of `run` (of `code` only, when given); undefined when there are none. */
export async function retryFailed(
  deps: RetryDeps,
  run: RunState,
  settings: EmbedSettings,
  model: ModelSpec,
  opts: { code?: string } = {},
): Promise<RetrySummary | undefined> {
  const failedCounts = (await deps.runs.codeCounts(run.id)).filter((c) => c.status === 'failed');
  // a retry of this run that was interrupted is finished, with its own --code, not begun again
  const open = run.retrying ? await deps.runs.get(run.retrying) : undefined;
  const resuming = open?.scanStatus === 'scanning' ? open : undefined;
  if (resuming) await checkResumable(deps.runs, run, resuming, opts.code);
  const code = resuming ? resuming.retryCode : opts.code;
  if (!resuming && failedCounts.every((c) => code !== undefined && c.code !== code)) return undefined;
  const newId = resuming?.id ?? newRunId();
  // held from before the run exists: a run of a retry with no holder was interrupted
  const release = await deps.runs.holdScan(newId);
  if (!resuming) {
    // the old run names its retry first: a retry killed at any point after is found again
    await deps.runs.markRetrying(run.id, newId);
    await deps.runs.create({
      id: newId,
      bucket: run.bucket,
      prefix: run.prefix,
      collection: run.collection,
      model: run.model,
      dimension: run.dimension,
      startedAt: new Date().toISOString(),
      settings: run.settings ?? JSON.stringify(settings),
      retryOf: run.id,
      ...(code !== undefined ? { retryCode: code } : {}),
    });
  }
  try {
    return await retryInto(deps, run, settings, model, { newId, code, resuming });
  } finally {
    await release();
  }
}

async function retryInto(
  deps: RetryDeps,
  run: RunState,
  settings: EmbedSettings,
  model: ModelSpec,
  at: { newId: string; code: string | undefined; resuming: RunState | undefined },
): Promise<RetrySummary> {
  const { newId, code } = at;
  const opts = { code };
  const queue = entryQueuer(deps, {
    runId: newId,
    bucket: run.bucket,
    model,
    settings,
    mode: 'full',
    maxObjectsPerJob: RETRY_JOB_OBJECTS,
  });
  const total = { scanned: 0, queuedObjects: 0, jobsAdded: 0, jobsDeduplicated: 0, unchanged: 0 };
  // a resumed retry numbers its pages on from those counted
  let pageNumber = at.resuming?.retriedPages ?? 0;
  if (at.resuming) {
    pageNumber += 1;
    const settled = await settleInterrupted(deps, run.id, newId, `retry:${pageNumber}`);
    total.scanned += settled;
    total.queuedObjects += settled;
  }
  /** Queues entries as one page of the new run, and marks their failures retried in the old one. */
  const queuePage = async (
    entries: readonly Entry[],
    retried: readonly [string, ItemOutcome][],
    written: readonly [string, ItemOutcome][],
  ): Promise<void> => {
    pageNumber += 1;
    const pageToken = `retry:${pageNumber}`;
    const { jobIds, ...counts } = await queue(entries, [], { scanned: 0, filteredOut: 0 }, pageToken);
    const page = {
      scanned: retried.length + written.length,
      queuedObjects: counts.queuedObjects,
      jobsAdded: 0,
      jobsDeduplicated: counts.jobsDeduplicated,
      unchanged: written.length,
    };
    // the failures are marked retried before the page is recorded: a retry killed in between
    // leaves them marked and the page pending (a resumed retry counts it: settleInterrupted)
    await deps.runs.recordItems(
      run.id,
      new Map<string, ItemOutcome>([
        ...retried.map(([key, o]): [string, ItemOutcome] => [
          key,
          { ...o, status: 'retried', reason: `${o.reason} (retried in run ${newId})` },
        ]),
        ...written.map(([key, o]): [string, ItemOutcome] => [
          key,
          { ...o, status: 'retried', reason: `${o.reason} (its points were written after all: not queued again)` },
        ]),
      ]),
    );
    // the page's jobs are counted as it is recorded, in one step
    page.jobsAdded = await deps.runs.pageDone(newId, { ...page, jobIds, pageToken });
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += page[k];
  };

  const units = new Map<string, { unit: readonly ['g' | 'f', string]; members: [string, ItemOutcome][] }>();
  for await (const page of deps.runs.itemPages(run.id, ITEM_PAGE)) {
    const failed = page.filter(
      ([, o]) => o.status === 'failed' && o.object && (opts.code === undefined || o.code === opts.code),
    );
    const singles: [string, ItemOutcome][] = [];
    for (const item of failed) {
      const unit = item[1].unit;
      if (!unit) singles.push(item);
      else {
        const id = `${unit[0]}\u0000${unit[1]}`;
        const held = units.get(id) ?? { unit, members: [] };
        held.members.push(item);
        units.set(id, held);
      }
    }
    if (singles.length === 0) continue;
    // objects whose points an attempt did write (same ETag and params hash) are not bought again
    const ids = singles.map(([key, o]) => ({ key, etag: o.object![1] }));
    const state = await classifyChanges(deps.vectors, settings.collection, run.bucket, ids, paramsHash(settings));
    const written = singles.filter(([key]) => state.get(key) === 'unchanged');
    const retry = singles.filter(([key]) => state.get(key) !== 'unchanged');
    await queuePage(
      retry.map(([, o]) => ({ object: scanned(run.bucket, o.object!) })),
      retry,
      written,
    );
  }
  // a unit's members stay together (a group or pair whose request failed failed whole)
  let chunk: { entries: Entry[]; items: [string, ItemOutcome][] } = { entries: [], items: [] };
  for (const { unit, members } of units.values()) {
    const objects = members.map(([, o]) => scanned(run.bucket, o.object!));
    const kind = unit[0] === 'g' ? 'group' : 'pair';
    chunk.entries.push({ unit: { kind, id: unit[1], etag: unitEtag(objects), members: objects } });
    chunk.items.push(...members);
    if (chunk.items.length >= ITEM_PAGE) {
      await queuePage(chunk.entries, chunk.items, []);
      chunk = { entries: [], items: [] };
    }
  }
  if (chunk.items.length > 0) await queuePage(chunk.entries, chunk.items, []);

  // a rebuild retried whole (no failure of it left) finishes as a rebuild: its alias moves once nothing failed
  const left = (await deps.runs.codeCounts(run.id)).some((c) => c.status === 'failed' && c.count > 0);
  const rebuild = run.mode === 'rebuild' && !left;
  if (rebuild) await deps.runs.setMode(newId, 'rebuild');
  await deps.runs.scanFinished(newId, 'complete');
  return {
    runId: newId,
    queuedObjects: total.queuedObjects,
    jobs: total.jobsAdded + total.jobsDeduplicated,
    written: total.unchanged,
    rebuild,
    resumed: at.resuming !== undefined,
  };
}

/**
 * The failed jobs of one run: walks the queue's failed set with ZSCAN, a page at a time,
 * fetching only that run's jobs (a job id starts with its run's).
 */
export async function* failedJobsOf(
  queue: Queue<EmbedJobData>,
  redis: Redis | Cluster,
  runId: string,
): AsyncGenerator<Job<EmbedJobData>> {
  let cursor = '0';
  do {
    const [next, flat] = await redis.zscan(queue.keys.failed!, cursor, 'COUNT', 200);
    cursor = next;
    for (let i = 0; i < flat.length; i += 2) {
      if (runOfJobId(flat[i]!) !== runId) continue;
      const job = await queue.getJob(flat[i]!);
      if (job) yield job;
    }
  } while (cursor !== '0');
}

/** Removes the old run's failed jobs whose objects are all retried now (they are in the new run). */
export async function removeRetriedJobs(
  queue: Queue<EmbedJobData>,
  runs: RunStore,
  runId: string,
  redis: Redis | Cluster,
): Promise<number> {
  let removed = 0;
  for await (const job of failedJobsOf(queue, redis, runId)) {
    const states = await runs.itemStatuses(
      runId,
      jobObjects(job.data).map((o) => o[0]),
    );
    if (states.every((s) => s === 'retried')) {
      await job.remove();
      removed += 1;
    }
  }
  return removed;
}
