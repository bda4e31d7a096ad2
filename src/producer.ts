/**
 * The producer: scan the bucket page by page, group the objects of each page into jobs
 * (about one API request each), and add them to the queue in bulk. A page's jobs are all
 * queued before the run records the page as done, so a scan restarted with the same run
 * continues from the last recorded page and loses nothing.
 *
 * The scan is overlapped three deep: while page N is queued and recorded (commit), page
 * N+1 is classified, looked up in the vector store and grouped (prepare), and page N+2 is
 * listed (scanner.ts). Commits run one at a time in page order, and a page is taken for
 * preparing only once the page before has room in the queue, so a producer waiting on
 * backpressure holds that page and one listed ahead, as before.
 *
 * With a composition (compose.ts), objects that may belong to a unit are staged in Redis
 * as they are listed, and their units are formed and queued once the listing is complete
 * (a unit's members may be listed pages apart).
 */
import type { Queue } from 'bullmq';
import type { EmbedJobData, EmbedSettings } from './embed-job.js';
import type { QueueRoom } from './backpressure.js';
import type { ReadBounds } from './bounds.js';
import { alone, completeStages, formUnits, stageOf, unitPointKey } from './compose.js';
import type { Composition, Entry } from './compose.js';
import { prune } from './incremental.js';
import type { ModelSpec } from './models.js';
import type { ObjectStore } from './object-store.js';
import { queuePhases } from './queuing.js';
import { FIRST_PAGE } from './runs.js';
import type { IndexMode, QueuePhases, QueuePlan } from './queuing.js';
import type { PageCounts, RunStore } from './runs.js';
import { scanPages } from './scanner.js';
import type { ScannedObject, ScanPage, SkippedObject } from './scanner.js';
import type { VectorStore } from './vector-store.js';

export { embedJob, entryQueuer } from './queuing.js';
export type { BulkJob, IndexMode, Queuer } from './queuing.js';

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
  const phases = queuePhases(deps, opts);
  const add = (counts: PageCounts): void => {
    for (const k of Object.keys(counts) as (keyof PageCounts)[]) total[k] += counts[k] ?? 0;
  };
  // The page being committed (queued and recorded) while the next is prepared.
  let committing: Promise<void> | undefined;
  // the jobs of a page a stopped producer was queuing count before the scan goes on
  const settle = (): Promise<number> => deps.runs.settlePending(opts.runId, (j) => deps.queue.toKey(j));
  // where a resumed run stands: a listing complete is not listed again (its pages are
  // counted, and a page counted counts none of its jobs again), nor a compose chunk or a prune done
  const at = await deps.runs.get(opts.runId);
  try {
    await settle();
    const listing = at?.listed
      ? []
      : scanPages(deps.store, {
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
        });
    for await (const page of listing) {
      // Prepared (staged, marked seen, looked up, grouped) while the page before is added:
      // all of it only reads or writes what a page listed again writes the same way.
      const { plan, seenMarked } = await preparePage(deps, opts, phases, page);
      // Pages are committed one at a time, in order: a page is recorded done only after
      // its jobs are queued and after every page before it is recorded, so the resume
      // token never passes a page whose jobs are not all queued.
      await committing;
      let roomed!: () => void;
      const room = new Promise<void>((resolve) => (roomed = resolve));
      committing = (async () => {
        const pageToken = page.token ?? FIRST_PAGE;
        const { jobIds, ...counts } = await phases.commit(plan, { onRoom: roomed, pageToken });
        // the page's jobs are counted as the page is recorded, in one step
        counts.jobsAdded = await deps.runs.pageDone(opts.runId, {
          ...counts,
          seenMarked,
          jobIds,
          pageToken,
          ...(page.nextToken !== undefined ? { nextToken: page.nextToken } : {}),
        });
        add({ ...counts, seenMarked });
        total.pages += 1;
        deps.onPage?.({ pageNumber: page.pageNumber, scanned: total.scanned, jobsAdded: total.jobsAdded });
      })();
      // Once the page has room in the queue, the next one is taken (and the one after it
      // listed): a producer waiting for room holds this page and one listed ahead, no more.
      await Promise.race([room, committing]);
    }
    await committing;
    committing = undefined;
    if (compose) await queueStaged(deps, opts, compose, phases, add, at?.composedChunks ?? 0);
  } catch (err) {
    // a page still being committed finishes (or fails) before the scan is marked failed
    await committing?.catch(() => undefined);
    // a failed scan may end the run: the jobs it added all count first
    await settle().catch(() => undefined);
    await deps.runs.scanFinished(opts.runId, 'failed', (err as Error).message);
    throw err;
  }
  const run = await deps.runs.get(opts.runId);
  if (opts.mode === 'rebuild' && (run?.counters.scanned ?? total.scanned) === 0) {
    // a mistyped prefix must not replace a live index with an empty one
    const reason = `nothing listed under the prefix: s3://${opts.bucket}/${opts.prefix} has no object to index`;
    // (resumed, it lists again: objects may have come since)
    await deps.runs.relist(opts.runId);
    await deps.runs.scanFinished(opts.runId, 'failed', reason);
    return total;
  }
  // Only a scan that listed everything may prune: an interrupted one never gets here.
  if (opts.prune && !run?.pruned) {
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
      await deps.runs.pruneDone(opts.runId, total.deleted);
    }
  }
  await deps.runs.scanFinished(opts.runId, 'complete');
  if (compose) await deps.runs.dropStage(opts.runId);
  return total;
}

/**
 * A page's part before queuing: objects of composed units wait in the run's stage until
 * the listing is complete, the others are looked up and grouped into jobs; with --prune,
 * the keys it listed are marked seen.
 */
async function preparePage(
  deps: ProduceDeps,
  opts: ProduceOptions,
  phases: QueuePhases,
  page: ScanPage,
): Promise<{ plan: QueuePlan; seenMarked: number }> {
  const compose = opts.settings.compose;
  const entries: Entry[] = [];
  const skipped = [...page.skipped];
  const staged: { stage: string; object: ScannedObject }[] = [];
  for (const o of page.objects) {
    const stage = compose ? stageOf(o, compose) : undefined;
    if (stage !== undefined) staged.push({ stage, object: o });
    else if (!compose) entries.push({ object: o });
    else {
      const f = alone(o, compose);
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
  const plan = await phases.plan(entries, skipped, {
    scanned: page.objects.length + page.skipped.length,
    filteredOut: page.filteredOut,
  });
  return { plan, seenMarked };
}

/**
 * Once the listing is complete, every unit is: walks the stage in order, forms each
 * stage's units and queues them like a page. Each chunk of the walk is counted once (by
 * its number): a producer that crashed during the walk walks again and skips the chunks
 * counted (`counted`: the stage does not change once the listing is complete, so chunk k is
 * the same units again).
 */
async function queueStaged(
  deps: ProduceDeps,
  opts: ProduceOptions,
  compose: Composition,
  phases: QueuePhases,
  add: (counts: PageCounts) => void,
  counted: number,
): Promise<void> {
  let chunk = 0;
  for await (const stages of completeStages(deps.runs.staged(opts.runId))) {
    chunk += 1;
    if (chunk <= counted) continue;
    const entries: Entry[] = [];
    const skipped: SkippedObject[] = [];
    for (const { stage, members } of stages) {
      const f = formUnits(stage, members as ScannedObject[], compose);
      entries.push(...f.entries);
      skipped.push(...f.skipped);
    }
    const seen = opts.prune ? entries.map((e) => ('unit' in e ? unitPointKey(e.unit) : e.object.key)) : [];
    await deps.runs.markSeen(opts.runId, seen);
    const plan = await phases.plan(entries, skipped, { scanned: 0, filteredOut: 0 });
    const pageToken = `compose:${chunk}`;
    const { jobIds, ...counts } = await phases.commit(plan, { pageToken });
    const page = { ...counts, seenMarked: seen.length };
    page.jobsAdded = await deps.runs.pageDone(opts.runId, { ...page, jobIds, pageToken });
    add(page);
  }
}
