/**
 * The producer: scan the bucket page by page, group the objects of each page into jobs
 * (about one API request each), and add them to the queue in bulk. A page's jobs are all
 * queued before the run records the page as done, so a scan restarted with the same run
 * continues from the last recorded page and loses nothing.
 *
 * With a composition (compose.ts), objects that may belong to a unit are staged in Redis
 * as they are listed, and their units are formed and queued once the listing is complete
 * (a unit's members may be listed pages apart).
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
import type { ReadBounds } from './bounds.js';
import { alone, completeStages, entryObjects, formUnits, stageOf, unitPointKey } from './compose.js';
import type { Composition, Entry } from './compose.js';
import { classifyChanges, dropPoints, prune } from './incremental.js';
import type { Change } from './incremental.js';
import type { ModelSpec } from './models.js';
import type { ObjectStore } from './object-store.js';
import type { ItemOutcome, PageCounts, RunStore } from './runs.js';
import { scanPages } from './scanner.js';
import type { ScannedObject, SkippedObject } from './scanner.js';
import type { VectorStore } from './vector-store.js';

/**
 * `incremental`: objects whose points are complete and current are not queued;
 * `full`: everything is queued; `rebuild`: everything, into a new collection (rebuild.ts).
 */
export type IndexMode = 'incremental' | 'full' | 'rebuild';

export interface ProduceOptions {
  readonly runId: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly include?: readonly string[] | undefined;
  readonly exclude?: readonly string[] | undefined;
  readonly minSize?: number | undefined;
  readonly maxSize?: number | undefined;
  readonly pageSize?: number | undefined;
  readonly model: ModelSpec;
  /** Texts and images over these are skipped at scan. @defaultValue DEFAULT_BOUNDS (bounds.ts) */
  readonly bounds?: ReadBounds;
  readonly settings: EmbedSettings;
  /** Continue listing after this token (a resumed run). */
  readonly resumeToken?: string | undefined;
  /** @defaultValue incremental */
  readonly mode?: IndexMode;
  /** After a completed scan, delete the points of objects under the prefix that are gone. */
  readonly prune?: boolean;
  /** When the run started (ISO): prune never deletes a point indexed since (a concurrent run wrote it). */
  readonly startedAt?: string;
}

export interface ProduceDeps {
  readonly store: ObjectStore;
  readonly queue: Queue<EmbedJobData>;
  readonly runs: RunStore;
  readonly vectors: VectorStore;
  /** Room in the queue: jobs are queued only while it holds fewer than its bound (backpressure.ts). @defaultValue no bound */
  readonly room?: QueueRoom;
  readonly onPage?: (page: { pageNumber: number; scanned: number; jobsAdded: number }) => void;
}

/** What a scan did: its pages' counts, its pages, and the objects pruned. */
export interface ProduceSummary extends Required<PageCounts> {
  pages: number;
  deleted: number;
}

export const emptySummary = (): ProduceSummary => ({
  scanned: 0,
  skipped: 0,
  filteredOut: 0,
  queuedObjects: 0,
  jobsAdded: 0,
  jobsDeduplicated: 0,
  pages: 0,
  unchanged: 0,
  new: 0,
  changed: 0,
  deleted: 0,
  seenMarked: 0,
});

export async function produce(deps: ProduceDeps, opts: ProduceOptions): Promise<ProduceSummary> {
  const total = emptySummary();
  const compose = opts.settings.compose;
  const queueing = entryQueuer(deps, opts);
  const add = (counts: PageCounts): void => {
    for (const k of Object.keys(counts) as (keyof PageCounts)[]) total[k] += counts[k] ?? 0;
  };
  try {
    for await (const page of scanPages(deps.store, {
      bucket: opts.bucket,
      prefix: opts.prefix,
      model: opts.model,
      ...(opts.bounds ? { bounds: opts.bounds } : {}),
      ...(opts.include ? { include: opts.include } : {}),
      ...(opts.exclude ? { exclude: opts.exclude } : {}),
      ...(opts.minSize !== undefined ? { minSize: opts.minSize } : {}),
      ...(opts.maxSize !== undefined ? { maxSize: opts.maxSize } : {}),
      ...(opts.pageSize !== undefined ? { pageSize: opts.pageSize } : {}),
      ...(opts.resumeToken !== undefined ? { startAfterToken: opts.resumeToken } : {}),
    })) {
      // Objects of composed units wait in the run's stage until the listing is complete;
      // the others are queued with their page.
      const entries: Entry[] = [];
      const skipped = [...page.skipped];
      const staged: { stage: string; object: ScannedObject }[] = [];
      for (const o of page.objects) {
        const stage = compose ? stageOf(o, compose) : undefined;
        if (stage !== undefined) staged.push({ stage, object: o });
        else {
          const f = compose ? alone(o, compose) : { entries: [{ object: o }], skipped: [] };
          entries.push(...f.entries);
          skipped.push(...f.skipped);
        }
      }
      await deps.runs.stage(opts.runId, staged);
      let seenMarked = 0;
      if (opts.prune) {
        // a staged object is seen through its unit, once the unit is formed; an unpaired one not at all
        const unseen = new Set([
          ...staged.map((s) => s.object.key),
          ...skipped.filter((s) => s.code === 'unpaired').map((s) => s.object.key),
        ]);
        const seen = page.listedKeys.filter((k) => !unseen.has(k));
        await deps.runs.markSeen(opts.runId, seen);
        seenMarked = seen.length;
      }
      const counts = {
        ...(await queueing(entries, skipped, {
          scanned: page.objects.length + page.skipped.length,
          filteredOut: page.filteredOut,
        })),
        seenMarked,
      };
      await deps.runs.pageDone(opts.runId, {
        ...counts,
        ...(page.token !== undefined ? { pageToken: page.token } : {}),
        ...(page.nextToken !== undefined ? { nextToken: page.nextToken } : {}),
      });
      add(counts);
      total.pages += 1;
      deps.onPage?.({ pageNumber: page.pageNumber, scanned: total.scanned, jobsAdded: total.jobsAdded });
    }
    if (compose) await queueStaged(deps, opts, compose, queueing, add);
  } catch (err) {
    await deps.runs.scanFinished(opts.runId, 'failed', (err as Error).message);
    throw err;
  }
  const run = await deps.runs.get(opts.runId);
  if (opts.mode === 'rebuild' && (run?.counters.scanned ?? total.scanned) === 0) {
    // a mistyped prefix must not replace a live index with an empty one
    const reason = `nothing listed under the prefix: s3://${opts.bucket}/${opts.prefix} has no object to index`;
    await deps.runs.scanFinished(opts.runId, 'failed', reason);
    return total;
  }
  // Only a scan that listed everything may prune: an interrupted one never gets here.
  if (opts.prune) {
    const marked = run?.counters.seenMarked ?? total.seenMarked;
    const held = await deps.runs.seenCount(opts.runId);
    if (held < marked) {
      // the seen-set expired or was lost: pruning with it would delete live objects' points
      await deps.runs.note(
        opts.runId,
        'prune',
        `not pruned: the run's seen-set holds ${held} of the ${marked} keys it listed (expired or lost); nothing was deleted, run a new --prune scan`,
      );
    } else {
      const before = opts.startedAt ?? run?.startedAt ?? new Date().toISOString();
      total.deleted = await prune(deps.vectors, opts.settings.collection, opts.bucket, opts.prefix, before, (keys) =>
        deps.runs.seen(opts.runId, keys),
      );
      await deps.runs.addCounter(opts.runId, 'deleted', total.deleted);
      await deps.runs.dropSeen(opts.runId);
    }
  }
  await deps.runs.scanFinished(opts.runId, 'complete');
  if (compose) await deps.runs.dropStage(opts.runId);
  return total;
}

export type Queuer = (
  entries: readonly Entry[],
  skipped: readonly SkippedObject[],
  listed: { scanned: number; filteredOut: number },
) => Promise<Required<PageCounts>>;

/**
 * Once the listing is complete, every unit is: walks the stage in order, forms each
 * stage's units and queues them like a page. Each chunk of the walk is counted once (by
 * its number), so a producer that crashed during the walk lists and walks again.
 */
async function queueStaged(
  deps: ProduceDeps,
  opts: ProduceOptions,
  compose: Composition,
  queueing: Queuer,
  add: (counts: PageCounts) => void,
): Promise<void> {
  let chunk = 0;
  for await (const stages of completeStages(deps.runs.staged(opts.runId))) {
    const entries: Entry[] = [];
    const skipped: SkippedObject[] = [];
    for (const { stage, members } of stages) {
      const f = formUnits(stage, members as ScannedObject[], compose);
      entries.push(...f.entries);
      skipped.push(...f.skipped);
    }
    const seen = opts.prune ? entries.map((e) => ('unit' in e ? unitPointKey(e.unit) : e.object.key)) : [];
    await deps.runs.markSeen(opts.runId, seen);
    const counts = { ...(await queueing(entries, skipped, { scanned: 0, filteredOut: 0 })), seenMarked: seen.length };
    chunk += 1;
    await deps.runs.pageDone(opts.runId, { ...counts, pageToken: `compose:${chunk}` });
    add(counts);
  }
}

/**
 * Queues a page's entries (a scan's page, a stage walk's chunk, a list of keys): in
 * incremental mode, only those whose points are missing, incomplete or out of date;
 * records the page's skips (and removes the points of objects skipped as unpaired, which
 * may have been embedded before). Returns the page's counts; the caller records the page.
 */
export function entryQueuer(
  deps: Omit<ProduceDeps, 'onPage'>,
  opts: Pick<ProduceOptions, 'runId' | 'bucket' | 'model' | 'settings' | 'mode'>,
): Queuer {
  const mode = opts.mode ?? 'incremental';
  const { settings } = opts;
  const batcher = new Batcher({
    model: opts.model,
    imageMode: settings.imageMode,
    maxBodyBytes: settings.maxBodyBytes,
    ...(settings.chunkTokens !== undefined ? { chunkTokens: settings.chunkTokens } : {}),
  });
  const idOf = (e: Entry): { key: string; etag: string } =>
    'unit' in e ? { key: unitPointKey(e.unit), etag: e.unit.etag } : e.object;
  return async (entries, skipped, listed) => {
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
    const change = (e: Entry): Change => changes?.get(idOf(e).key) ?? 'new';
    const objectsOf = (c: Change): number =>
      entries.filter((e) => change(e) === c).reduce((n, e) => n + entryObjects(e).length, 0);
    const toQueue = entries.filter((e) => change(e) !== 'unchanged');
    const jobs: Entry[][] = [];
    for (const e of toQueue) {
      const closed = batcher.add(e);
      if (closed) jobs.push(closed);
    }
    const last = batcher.flush();
    if (last) jobs.push(last);

    // backpressure: the page's jobs wait for room in the queue (and the listing with them)
    await (deps.room ?? NO_BOUND).wait(jobs.length);
    const queued = await enqueue(deps.queue, opts, jobs);
    const added = await deps.runs.newJobs(opts.runId, queued.jobIds);
    await follow(deps.runs, opts.runId, queued.followed);
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
    return {
      scanned: listed.scanned,
      skipped: skipped.length,
      filteredOut: listed.filteredOut,
      queuedObjects: toQueue.reduce((n, e) => n + entryObjects(e).length, 0),
      jobsAdded: added,
      jobsDeduplicated: queued.followed.length,
      unchanged: changes ? objectsOf('unchanged') : 0,
      new: objectsOf('new'),
      changed: objectsOf('changed'),
      seenMarked: 0,
    };
  };
}

/**
 * Adds jobs in bulk. A job whose content (settings + keys + ETags) is already pending in
 * the queue, from this run or another, is deduplicated by BullMQ and not added again.
 */
async function enqueue(
  queue: Queue<EmbedJobData>,
  opts: Pick<ProduceOptions, 'runId' | 'bucket' | 'settings'>,
  jobs: readonly Entry[][],
): Promise<{ jobIds: string[]; followed: { jobId: string; runId: string }[] }> {
  if (jobs.length === 0) return { jobIds: [], followed: [] };
  const bulk = jobs.map((entries) => embedJob(opts.runId, opts.bucket, opts.settings, jobContents(entries)));
  return addBulk(queue, bulk);
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
 * Queues ready-made jobs for a run (retry-failed's): adds them, counts the new ones, and
 * follows those deduplicated into other runs' pending jobs. Returns both counts.
 */
export async function queueJobs(
  deps: Pick<ProduceDeps, 'queue' | 'runs'>,
  runId: string,
  bulk: readonly BulkJob[],
): Promise<{ added: number; followed: number }> {
  if (bulk.length === 0) return { added: 0, followed: 0 };
  const queued = await addBulk(deps.queue, bulk);
  const added = await deps.runs.newJobs(runId, queued.jobIds);
  await follow(deps.runs, runId, queued.followed);
  return { added, followed: queued.followed.length };
}

/**
 * The run waits for the pending jobs of other runs that hold its objects, and counts what
 * they did. A job that ended before this run started following it is recorded here from
 * its own run's record (the worker that ended it records it in every follower it saw).
 */
async function follow(
  runs: RunStore,
  runId: string,
  followed: readonly { jobId: string; runId: string }[],
): Promise<void> {
  const own = followed.filter((f) => f.runId !== runId);
  if (
    (await runs.follow(
      runId,
      own.map((f) => f.jobId),
    )) === 0
  )
    return;
  for (const f of own) {
    const result = await runs.jobResult(f.runId, f.jobId);
    if (result) await runs.recordJob(runId, f.jobId, result);
  }
}
