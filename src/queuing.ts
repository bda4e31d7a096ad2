/**
 * Queuing: how every path that adds embed jobs adds them (a scan's pages, a list of keys,
 * retry-failed). Entries are grouped into jobs of about one request (the Batcher), wait
 * for room in the queue (backpressure), and are added in bulk with their job ids and
 * deduplication ids, so that the same content is never pending twice; a run counts the
 * jobs new to it and follows the ones deduplicated into other runs' pending jobs.
 */
import type { JobsOptions, Queue } from 'bullmq';
import {
  EMBED_JOB_OPTIONS,
  embedContentId,
  embedJobId,
  jobContents,
  packObjects,
  paramsHash,
  runOfJobId,
  unitParamsHash,
} from './embed-job.js';
import type { EmbedJobData, EmbedSettings, ObjectTuple, UnitTuple } from './embed-job.js';
import { NO_BOUND } from './backpressure.js';
import type { QueueRoom } from './backpressure.js';
import { Batcher } from './batcher.js';
import { entryObjects, unitPointKey } from './compose.js';
import type { Entry } from './compose.js';
import { classifyChanges, dropPoints } from './incremental.js';
import type { Change } from './incremental.js';
import type { ModelSpec } from './models.js';
import type { ItemOutcome, PageCounts, RunStore } from './runs.js';
import type { SkippedObject } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/** What queuing needs: the queue, the run records, the points (incremental checks) and the room. */
export interface QueueDeps {
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly vectors: VectorStore;
  /** Room in the queue: jobs are queued only while it holds fewer than its bound (backpressure.ts). @defaultValue no bound */
  readonly room?: QueueRoom;
}

/**
 * `incremental`: objects whose points are complete and current are not queued;
 * `full`: everything is queued; `rebuild`: everything, into a new collection (rebuild.ts).
 */
export type IndexMode = 'incremental' | 'full' | 'rebuild';

export interface QueueOptions {
  readonly runId: string;
  readonly bucket: string;
  readonly model: ModelSpec;
  readonly settings: EmbedSettings;
  /** @defaultValue incremental */
  readonly mode?: IndexMode;
  /** Objects a job holds at most (the Batcher's bound). @defaultValue 50 */
  readonly maxObjectsPerJob?: number;
}

/** Queues one page; the caller records it with the ids (RunStore.pageDone counts its jobs). */
export type Queuer = (
  entries: readonly Entry[],
  skipped: readonly SkippedObject[],
  listed: { scanned: number; filteredOut: number },
  /** The token the caller records the page by (RunStore.pageDone). */
  pageToken: string,
) => Promise<Required<PageCounts> & { jobIds: string[] }>;

/** A page's entries looked up and grouped into jobs, not yet queued (QueuePhases.plan). */
export interface QueuePlan {
  readonly jobs: readonly Entry[][];
  readonly skipped: readonly SkippedObject[];
  readonly counts: Required<PageCounts>;
}

/**
 * Queuing in two steps, so that a scan can look up and group one page while the page
 * before is still being added (producer.ts): `plan` only reads (the points, for the
 * incremental check); `commit` waits for room and writes (the jobs, the run's records,
 * the skipped objects' old points). Plans may be made ahead; commits must run one at a
 * time, in page order.
 */
export interface QueuePhases {
  plan(
    entries: readonly Entry[],
    skipped: readonly SkippedObject[],
    listed: { scanned: number; filteredOut: number },
  ): Promise<QueuePlan>;
  /**
   * Waits for room in the queue (then calls `onRoom`), adds the jobs and records the skips;
   * resolves with the page's counts and the ids its jobs were added under. The jobs are not
   * counted here (`jobsAdded` is 0): the caller hands the ids to RunStore.pageDone, which
   * counts them as it records the page. Their ids are stored as the page's pending ones
   * before they are added (RunStore.intend), so that a producer stopped in between leaves
   * them countable (RunStore.settlePending).
   */
  commit(
    plan: QueuePlan,
    opts: { pageToken: string; onRoom?(): void },
  ): Promise<Required<PageCounts> & { jobIds: string[] }>;
}

/**
 * Queues a page's entries (a scan's page, a stage walk's chunk, a list of keys): in
 * incremental mode, only those whose points are missing, incomplete or out of date;
 * records the page's skips (and removes the points of objects skipped as unpaired, which
 * may have been embedded before). Returns the page's counts and its jobs' ids; the caller
 * records the page with them (RunStore.pageDone), which counts the jobs.
 */
export function entryQueuer(deps: QueueDeps, opts: QueueOptions): Queuer {
  const phases = queuePhases(deps, opts);
  return async (entries, skipped, listed, pageToken) =>
    phases.commit(await phases.plan(entries, skipped, listed), { pageToken });
}

export function queuePhases(deps: QueueDeps, opts: QueueOptions): QueuePhases {
  const mode = opts.mode ?? 'incremental';
  const { settings } = opts;
  const batcher = new Batcher({
    model: opts.model,
    imageMode: settings.imageMode,
    maxBodyBytes: settings.maxBodyBytes,
    ...(settings.chunkTokens !== undefined ? { chunkTokens: settings.chunkTokens } : {}),
    ...(opts.maxObjectsPerJob !== undefined ? { maxObjectsPerJob: opts.maxObjectsPerJob } : {}),
  });
  const idOf = (e: Entry): { key: string; etag: string } =>
    'unit' in e ? { key: unitPointKey(e.unit), etag: e.unit.etag } : e.object;
  const plan: QueuePhases['plan'] = async (entries, skipped, listed) => {
    let changes: Map<string, Change> | undefined;
    if (mode === 'incremental') {
      const singles = entries.filter((e) => !('unit' in e)).map(idOf);
      const units = entries.filter((e) => 'unit' in e).map(idOf);
      const { collection } = settings;
      changes = new Map([
        ...(await classifyChanges(deps.vectors, collection, opts.bucket, singles, paramsHash(settings))),
        ...(await classifyChanges(deps.vectors, collection, opts.bucket, units, unitParamsHash(settings))),
      ]);
    }
    // one pass: each entry's change, the objects of each kind, the entries to queue
    const objects = { new: 0, changed: 0, unchanged: 0 };
    const toQueue: Entry[] = [];
    for (const e of entries) {
      const c = changes?.get(idOf(e).key) ?? 'new';
      objects[c] += entryObjects(e).length;
      if (c !== 'unchanged') toQueue.push(e);
    }
    // (synchronous from here: plans made ahead never interleave in the batcher)
    const jobs: Entry[][] = [];
    for (const e of toQueue) {
      const closed = batcher.add(e);
      if (closed) jobs.push(closed);
    }
    const last = batcher.flush();
    if (last) jobs.push(last);
    return {
      jobs,
      skipped,
      counts: {
        scanned: listed.scanned,
        skipped: skipped.length,
        filteredOut: listed.filteredOut,
        queuedObjects: objects.new + objects.changed,
        jobsAdded: 0,
        jobsDeduplicated: 0,
        unchanged: changes ? objects.unchanged : 0,
        new: objects.new,
        changed: objects.changed,
        seenMarked: 0,
      },
    };
  };
  const commit: QueuePhases['commit'] = async ({ jobs, skipped, counts }, how) => {
    // backpressure: the page's jobs wait for room in the queue (and the listing with them)
    await (deps.room ?? NO_BOUND).wait(jobs.length);
    how.onRoom?.();
    let bulk = jobs.map((entries) => embedJob(opts.runId, opts.bucket, settings, jobContents(entries)));
    // the ids go first: a producer stopped after adding and before the page is recorded
    // leaves them for the resumed scan to count (RunStore.settlePending); each job gets its
    // number in the run there, by which its result is counted once
    if (bulk.length > 0) {
      const first = await deps.runs.intend(
        opts.runId,
        how.pageToken,
        bulk.map((j) => j.opts.jobId),
      );
      bulk = bulk.map((j, i) => ({ ...j, data: { ...j.data, n: first + i } }));
    }
    const queued = bulk.length > 0 ? await addBulk(deps.queue, bulk) : { jobIds: [], followed: [] };
    await follow(deps.runs, deps.queue, opts.runId, queued.followed);
    await deps.runs.recordItems(
      opts.runId,
      new Map<string, ItemOutcome>(
        skipped.map((s) => [s.object.key, { status: 'skipped', code: s.code, reason: s.reason }]),
      ),
    );
    // an object skipped now (emptied, no longer supported, too large, unpaired) may have
    // been indexed before: its old points no longer stand for it
    await dropPoints(
      deps.vectors,
      settings.collection,
      opts.bucket,
      skipped.map((s) => s.object.key),
    );
    return { ...counts, jobsAdded: 0, jobsDeduplicated: queued.followed.length, jobIds: queued.jobIds };
  };
  return { plan, commit };
}

export interface BulkJob {
  readonly name: 'embed';
  readonly data: EmbedJobData;
  readonly opts: JobsOptions & { jobId: string };
}

/** The embed job of these contents, with its id and deduplication id. */
export function embedJob(
  runId: string,
  bucket: string,
  settings: EmbedSettings,
  contents: { objects: ObjectTuple[]; units?: UnitTuple[] },
): BulkJob {
  const contentId = embedContentId(bucket, settings, contents.objects, contents.units);
  // the bucket and settings are the run record's: the job holds the run id and its objects, packed
  const data: EmbedJobData = {
    v: 2,
    runId,
    o: packObjects(contents.objects),
    ...(contents.units ? { units: contents.units } : {}),
  };
  return {
    name: 'embed',
    data,
    opts: { ...EMBED_JOB_OPTIONS, jobId: embedJobId(runId, contentId), deduplication: { id: contentId } },
  };
}

/**
 * Adds jobs in bulk. A job whose content (settings + keys + ETags) is already pending in
 * the queue, from this run or another, is deduplicated by BullMQ and not added again.
 */
async function addBulk(
  queue: Queue<EmbedJobData>,
  bulk: readonly BulkJob[],
): Promise<{ jobIds: string[]; followed: { jobId: string; runId: string }[] }> {
  const result = await queue.addBulk([...bulk]);
  // A deduplicated add returns the pending job of the same content, with its own id.
  const jobIds = result.flatMap((job, i) => (job.id !== undefined && job.id === bulk[i]?.opts.jobId ? [job.id] : []));
  // (the returned job carries this add's data: the pending job's run is in its id)
  const followed = result.flatMap((job, i) =>
    job.id !== undefined && job.id !== bulk[i]?.opts.jobId ? [{ jobId: job.id, runId: runOfJobId(job.id) }] : [],
  );
  return { jobIds, followed };
}

/**
 * The run waits for the pending jobs of other runs that hold its objects, and counts what
 * they did: the worker that ends such a job records its result in every run following it,
 * and a job that ended before this run followed it is recorded from its result as it is
 * followed, in the same step (RunStore.follow).
 */
async function follow(
  runs: RunStore,
  queue: Queue<EmbedJobData>,
  runId: string,
  followed: readonly { jobId: string; runId: string }[],
): Promise<void> {
  const own = followed.filter((f) => f.runId !== runId);
  await runs.follow(
    runId,
    own.map((f) => ({ jobId: f.jobId, runId: f.runId, jobKey: queue.toKey(f.jobId) })),
  );
}
